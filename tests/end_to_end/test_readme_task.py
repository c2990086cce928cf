"""The README's "Add your own task" section, followed to the letter in a copy of the repository: its four files
train (on two DDP processes too), are ranked by their declared metric, and keep the template's own tests and lint
green."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from tests.helpers import ROOT


def readme_files() -> dict[str, str]:
    """path -> text of every code block of the section whose first line is `# <path>`."""
    section = (ROOT / "README.md").read_text().split("## Add your own task", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S)
    return {b.splitlines()[0][2:].strip(): b for b in blocks if re.match(r"# (src|configs)/\S+\n", b)}


@pytest.fixture(scope="module")
def fork(tmp_path_factory):
    """A copy of the repository (as git sees it) with the README's files added."""
    copy = tmp_path_factory.mktemp("fork")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_bytes((ROOT / name).read_bytes())
    added = readme_files()
    assert set(added) == {
        "src/data/noisy_sines.py",
        "src/models/conv_denoiser.py",
        "src/modules/denoising.py",
        "configs/denoise.gin",
    }
    for name, text in added.items():
        (copy / name).write_text(text)
    return copy


def run(fork, *args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(fork), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=fork, env=env, capture_output=True, text=True, timeout=timeout)


def test_readme_task_trains_resumes_and_is_ranked_by_its_metric(fork, tmp_path):
    run_dir = tmp_path / "denoise"
    for epochs in (2, 3):  # a run, then the same command resumed with more epochs
        out = run(fork, "bin/train.py", str(run_dir), "configs/denoise.gin", "-b", f"training_loop.n_epochs={epochs}")
        assert out.returncode == 0, out.stderr[-2000:]
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3] and list(history["step"]) == [16, 32, 48]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["main"] == "valid_snr_db" and record["directions"]["valid_snr_db"] == "max"
    script = (
        "from src.results import load_data, load_model, load_runs\n"
        f"x, y = next(iter(load_data({str(run_dir)!r}).test_dataloader()))  # a data module that is no in-memory one\n"
        f"assert load_model({str(run_dir)!r})(x).shape == y.shape\n"
        f"print(load_runs({str(run_dir)!r}).iloc[0].to_json())\n"
    )
    out = run(fork, "-c", script)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout)
    assert row["best_valid_snr_db"] == pytest.approx(history["valid_snr_db"].max())
    assert row["best_valid_loss"] == pytest.approx(history["valid_loss"].min())
    assert row["status"] == "finished" and "eval_test_snr_db" in row


def test_readme_task_on_two_ddp_processes(fork, tmp_path):
    """A plain DataLoader-based data module under DDP: each process reads half of each epoch."""
    run_dir = tmp_path / "ddp"
    bindings = "training_loop.n_epochs=1#training_loop.accelerator='cpu'#training_loop.devices=2"
    out = run(
        fork, "bin/train.py", str(run_dir), "configs/denoise.gin", "-b", bindings + "#training_loop.strategy='ddp'"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(pd.read_csv(run_dir / "history.csv")["step"]) == [8]  # 800 examples / 2 processes / batch 50


def test_readme_task_keeps_the_templates_tests_and_lint_green(fork):
    tests = run(
        fork,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/unit/test_registry.py",
        "tests/unit/test_imports.py",
    )
    assert tests.returncode == 0, tests.stdout[-2000:]
    for args in (["check", "."], ["format", "--check", "."]):
        lint = run(fork, "-m", "ruff", *args)
        assert lint.returncode == 0, lint.stdout[-2000:]


def test_readme_python_examples_pass_lint(tmp_path):
    """Every python block of the README, copied as it is into a file, passes `make lint` (ruff check and format)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        (tmp_path / f"example_{i}.py").write_text(block)
    first_party = "lint.isort.known-first-party = ['src']"  # as inside the repository
    config = ["--config", str(ROOT / "pyproject.toml"), "--config", first_party]
    for args in (["check", *config, "."], ["format", "--check", *config, "."]):
        lint = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=tmp_path, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout[-3000:]
