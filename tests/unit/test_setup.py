"""The two README promises about set-up: e.sh exports the environment, configs/cnn.gin reaches 95% on digits."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SHOW = 'printf "%s|%s|%s|%s" "$DATA_DIR" "$RESULTS_DIR" "$PYTHONPATH" "${MY_API_TOKEN:-}"'


def source_e_sh(folder, env_file=None, script=SHOW, venv=True, **preset):
    """Source a copy of e.sh in bash, in `folder`; `venv`: a .venv whose activate puts this Python (with
    python-dotenv) first on PATH, as `make setup`'s does."""
    shutil.copy(ROOT / "e.sh", folder / "e.sh")
    if venv:
        (folder / ".venv" / "bin").mkdir(parents=True)
        (folder / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    if env_file is not None:
        (folder / ".env").write_text(env_file)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), **preset}  # no Neptune variables
    return subprocess.run(
        ["bash", "-c", f"source ./e.sh && {script}"], cwd=folder, env=env, capture_output=True, text=True
    )


def test_e_sh_defaults_without_env_file(tmp_path):
    out = source_e_sh(tmp_path, venv=False)
    assert out.returncode == 0
    assert out.stdout == f"{tmp_path}/data|{tmp_path}/results|{tmp_path}|"
    assert "make setup" in out.stderr  # no environment yet: says how to make one


def test_e_sh_loads_env_file_first(tmp_path):
    out = source_e_sh(tmp_path, "DATA_DIR=/scratch/data\nMY_API_TOKEN=abc123def\n")
    assert out.stdout == f"/scratch/data|{tmp_path}/results|{tmp_path}|abc123def"


def test_variables_set_in_the_shell_win_over_env_file(tmp_path):
    out = source_e_sh(tmp_path, "DATA_DIR=/scratch/data\nMY_API_TOKEN=abc123def\n", DATA_DIR="/fast/ssd/data")
    assert out.stdout == f"/fast/ssd/data|{tmp_path}/results|{tmp_path}|abc123def"


def test_e_sh_reads_env_file_as_python_dotenv_does(tmp_path):
    """No line of .env is evaluated by the shell: $, $$, spaces and $(...) stay as written (only ${NAME} is
    replaced, as python-dotenv and so every bin/ script do), quotes and comments as dotenv reads them, a name that is
    no shell variable is skipped, and a variable already exported still wins."""
    env_file = (
        "PASSWORD=pa$$word$HOME\n"
        "SPACED=a b\n"
        "INJECTED=$(touch injected)`touch injected2`\n"
        "QUOTED='single $HOME'\n"
        'DOUBLE="x # not a comment"\n'
        "COMMENTED=y # a comment\n"
        "export EXPORTED=1\n"
        "BRACED=${HOME}/data\n"
        "$(touch${IFS}pwned)=1\n"
        "PRESET=from-env-file\n"
    )
    names = ["PASSWORD", "SPACED", "INJECTED", "QUOTED", "DOUBLE", "COMMENTED", "EXPORTED", "BRACED", "PRESET"]
    script = "printf '%s\\n' " + " ".join(f'"${name}"' for name in names)
    out = source_e_sh(tmp_path, env_file, script=script, PRESET="from-shell")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "pa$$word$HOME",
        "a b",
        "$(touch injected)`touch injected2`",
        "single $HOME",
        "x # not a comment",
        "y",
        "1",
        f"{tmp_path}/data",
        "from-shell",
    ]
    assert not [p.name for p in tmp_path.iterdir() if "injected" in p.name or "pwned" in p.name]
    assert "is not a shell variable name; skipped" in out.stderr
