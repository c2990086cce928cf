"""The two README promises about set-up: e.sh exports the environment, configs/cnn.gin reaches 95% on digits."""

import shutil
import subprocess

from tests.helpers import ROOT


def source_e_sh(folder, env_file=None, **preset):
    shutil.copy(ROOT / "e.sh", folder / "e.sh")
    if env_file is not None:
        (folder / ".env").write_text(env_file)
    script = 'source ./e.sh && printf "%s|%s|%s|%s" "$DATA_DIR" "$RESULTS_DIR" "$PYTHONPATH" "${MY_API_TOKEN:-}"'
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), **preset}  # no Neptune variables, no venv
    return subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True)


def test_e_sh_defaults_without_env_file(tmp_path):
    out = source_e_sh(tmp_path)
    assert out.returncode == 0
    assert out.stdout == f"{tmp_path}/data|{tmp_path}/results|{tmp_path}|"
    assert "make setup" in out.stderr  # no environment yet: says how to make one


def test_e_sh_loads_env_file_first(tmp_path):
    out = source_e_sh(tmp_path, "DATA_DIR=/scratch/data\nMY_API_TOKEN=abc123def\n")
    assert out.stdout == f"/scratch/data|{tmp_path}/results|{tmp_path}|abc123def"


def test_variables_set_in_the_shell_win_over_env_file(tmp_path):
    out = source_e_sh(tmp_path, "DATA_DIR=/scratch/data\nMY_API_TOKEN=abc123def\n", DATA_DIR="/fast/ssd/data")
    assert out.stdout == f"/fast/ssd/data|{tmp_path}/results|{tmp_path}|abc123def"
