"""What tests share: the repository root, the fast toy bindings, reading and comparing run folders, fake data and
fake run folders, another process holding a run's lock. (Fixtures are conftest.py's.)"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Small and fast: toy digits, a narrow CNN, no sanity check, no TensorBoard.
FAST = [
    "digits.toy = True",
    "digits.batch_size = 32",
    "cnn.width = 8",
    "training_loop.loggers = []",
    "training_loop.num_sanity_val_steps = 0",
    "training_loop.n_epochs = 3",
]
TIMING = ("epoch_time", "examples_per_s")  # history.csv's columns that differ by nature between two runs


def history(run: Path, timing: bool = False) -> pd.DataFrame:
    """A run's history.csv, without the timing columns unless asked."""
    table = pd.read_csv(Path(run) / "history.csv")
    return table if timing else table.drop(columns=[c for c in TIMING if c in table])


def eval_results(run: Path) -> dict:
    return json.loads((Path(run) / "eval_results.json").read_text())


def assert_same_runs(a: Path, b: Path, checkpoints: tuple[str, ...] = ("best.ckpt", "last.ckpt")) -> None:
    """Two runs ended the same: every history column but the timing ones, the test metrics, and the checkpoints'
    epochs and weights, bit for bit (compared here, not by src/analysis/compare.py, which this must not trust)."""
    import torch

    history_a, history_b = history(a), history(b)
    assert list(history_a.columns) == list(history_b.columns)
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    assert eval_results(a) == eval_results(b)
    for name in checkpoints:
        state_a, state_b = (torch.load(Path(run) / name, weights_only=True) for run in (a, b))
        assert state_a["epoch"] == state_b["epoch"], name
        weights_a, weights_b = state_a["state_dict"], state_b["state_dict"]
        assert weights_a.keys() == weights_b.keys(), name
        for key in weights_a:
            assert torch.equal(weights_a[key], weights_b[key]), (name, key)


def evaluate_by_hand(run: Path, checkpoint: str, split: str, batch_size: int) -> tuple[float, float]:
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


def lock_holder(run: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock (as a training would), until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from src.run import lock; lock.acquire({str(run)!r}); print('locked', flush=True); "
            "time.sleep(300)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batches(n_per_batch: int, seed: int = 0) -> dict[str, bytes]:
    """The pickled files of a fake `cifar-10-batches-py` (random uint8 images, the real format)."""
    rng = np.random.RandomState(seed)
    return {
        name: pickle.dumps(
            {
                b"data": rng.randint(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                b"labels": [int(v) for v in rng.randint(0, 10, n_per_batch)],
            }
        )
        for name in CIFAR_FILES
    }


def fake_cifar_folder(root: Path, n_per_batch: int = 128) -> Path:
    """`root/cifar-10-batches-py` written out: DATA_DIR (or cifar10.root) for the cifar10 data set."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, payload in cifar_batches(n_per_batch).items():
        (folder / name).write_bytes(payload)
    return root


def make_cifar_archive(folder: Path, n_per_batch: int = 12) -> tuple[Path, str]:
    """(path, md5) of a tiny archive with the real CIFAR-10 layout, as the download serves it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in cifar_batches(n_per_batch).items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    path = folder / "cifar-10-python.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path, hashlib.md5(buffer.getvalue()).hexdigest()


FAKE_HISTORY = "epoch,valid_acc,valid_loss\n1,0.5,1.2\n2,0.75,0.9\n"


def fake_run(
    folder: Path,
    bindings: dict,
    history_table: dict | str = FAKE_HISTORY,
    directions: dict | None = None,
    status: str = "FINISHED",
) -> Path:
    """A run folder as analysis code reads it, without training: config.gin, metrics.json (by default a classifier's
    directions: accuracies up, losses down, as the template records them), history.csv and a status file."""
    folder.mkdir(parents=True)
    (folder / "config.gin").write_text("".join(f"{k} = {v!r}\n" for k, v in bindings.items()))
    if isinstance(history_table, str):
        (folder / "history.csv").write_text(history_table)
        columns = history_table.split("\n", 1)[0].split(",")
    else:
        pd.DataFrame(history_table).to_csv(folder / "history.csv", index=False)
        columns = list(history_table)
    if directions is None:
        directions = {c: "max" if c.endswith("_acc") else "min" for c in columns if c.endswith(("_acc", "_loss"))}
    main = next(iter(directions), "valid_loss")
    (folder / "metrics.json").write_text(json.dumps({"main": main, "directions": directions}))
    (folder / status).touch()
    return folder


def experiment_folder(tmp_path: Path, monkeypatch, template: str) -> Path:  # noqa: ANN001
    """An experiment folder `exp` with `template` as its template_config.gin; results under tmp_path/results."""
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "template_config.gin").write_text(template)
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    return folder


WIDE = {f"block{i}.parameter_{i}": [f"value_{i}_{j}_quite_long" for j in range(3)] for i in range(12)}


def mixed_runs(root: Path) -> Path:
    """Three runs whose twelve bindings all differ, with long values: far wider than any terminal."""
    for j in range(3):
        fake_run(root / f"run{j}", {"supervised.lr": 0.1 * (j + 1), **{k: v[j] for k, v in WIDE.items()}})
    return root


def wait_for(job_id: str, timeout: float = 400) -> None:
    """Until SLURM job `job_id` has left the queue (cancelled and a test failure after `timeout` s)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        queued = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True)
        if queued.returncode == 0 and not queued.stdout.strip():
            return
        time.sleep(1)
    subprocess.run(["scancel", job_id])
    pytest.fail(f"SLURM job {job_id} did not finish in {timeout} s")
