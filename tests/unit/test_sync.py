"""bin/sync.sh copies the code and nothing else."""

import os
import shutil
import subprocess

import pytest

from tests.helpers import ROOT


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing in CI: .ci/run installs it")
        pytest.skip(f"{tool} is not installed")


def test_sync_copies_code_not_results(tmp_path):
    require("rsync")
    dest = tmp_path / "remote"
    out = subprocess.run(["bash", "bin/sync.sh", str(dest)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (dest / "src" / "training_loop.py").read_text() == (ROOT / "src" / "training_loop.py").read_text()
    assert (dest / "bin" / "train.py").is_file() and (dest / "results" / "README.md").is_file()
    for excluded in (".venv", ".git", "data"):
        assert not (dest / excluded).exists(), excluded
    assert [p.name for p in (dest / "results").iterdir()] == ["README.md"]


def test_sync_usage_error():
    out = subprocess.run(["bash", "bin/sync.sh"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "usage: bin/sync.sh DEST" in out.stderr
