"""Shared test helpers: the repository root and a fast in-process training on toy digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Small and fast: toy digits, a narrow CNN, no sanity check, no TensorBoard.
FAST = [
    "digits.toy = True",
    "digits.batch_size = 32",
    "cnn.width = 8",
    "training_loop.loggers = []",
    "training_loop.num_sanity_val_steps = 0",
    "training_loop.n_epochs = 3",
]


@pytest.fixture
def train():
    """train(save_dir, *bindings, configs=("configs/cnn.gin",)) -> metrics, in this process."""

    def run(save_dir, *bindings, configs=("configs/cnn.gin",)):
        from src import config
        from src.training_loop import training_loop

        files = [str(ROOT / c) for c in configs]
        all_bindings = [*FAST, *bindings]
        config.parse(files, all_bindings)
        return training_loop(str(save_dir), config_files=files, bindings=all_bindings)

    return run


def evaluate_by_hand(run, checkpoint: str, split: str, batch_size: int):
    """(mean loss, accuracy) of a digits run's saved weights on a split, each example weighted once (gin must hold
    the run's data bindings)."""
    import torch
    import torch.nn.functional as F

    from src.data import DATA
    from src.results import load_model

    data = DATA.get("digits")(seed=0)
    model, x, y = load_model(run, checkpoint), data.splits[split].x, data.splits[split].y
    with torch.no_grad():
        logits = torch.cat(
            [model(data.transform(x[i : i + batch_size], train=False)) for i in range(0, len(y), batch_size)]
        )
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()


@pytest.fixture
def env():
    """Environment for subprocesses running bin/ scripts."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "DATA_DIR": os.environ.get("DATA_DIR", "data")}


def lock_holder(run) -> subprocess.Popen:
    """Another process holding the run folder's lock (as a training would), until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from src.run import lock; lock.acquire({str(run)!r}); "
            "print('locked', flush=True); time.sleep(300)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture(autouse=True)
def fresh_gin_config():
    """Bindings parsed by one test (e.g. digits.toy = True) must not leak into the next."""
    yield
    import gin

    gin.clear_config()


def experiment_folder(tmp_path, monkeypatch, template: str) -> Path:
    """An experiment folder `exp` with `template` as its template_config.gin; results under tmp_path/results."""
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "template_config.gin").write_text(template)
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    return folder


# --- Markers: `make test-fast` deselects `slow` and `slurm` -------------------------------------------------------
# A test is `slow` when it trains or starts processes, which these fixtures do; nothing to list by hand, so a new
# test of that kind (yours too) is marked by what it uses. `slurm`: the tests that need the local SLURM cluster.
SLURM_FILES = {"test_slurm.py"}
SLOW_FIXTURES = {"train", "env", "experiment", "fork", "slurm", "place"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLURM_FILES or "slurm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
