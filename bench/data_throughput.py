#!/usr/bin/env python
"""Data beyond memory: the file-backed (cifar10_files: torchdata's StatefulDataLoader over sharded arrays) and
streaming (cifar10_stream: litdata) data modules against the in-memory one (cifar10), on the same data, with workers.

1. Throughput: the CIFAR-10-sized CNN step (configs/cnn.gin on a fake cifar-10-batches-py of 50,000 + 10,000 random
   images, batch 128, 2 epochs of 25 batches, 5 validation and 5 test batches; bench/common.py's CIFAR workload),
   in-memory vs files vs stream with 2 workers, alternating, fresh processes. Per run: the training throughput of the
   epochs after the first (`examples_per_s` of history.csv; worker start-up counts, as it does in every epoch).
   Target: files and stream >= 0.9 of in-memory (the loader is not the bottleneck). For contrast, files read in the
   training process (num_workers=0): what the reading costs without workers competing for the cores. Then each loader
   alone (2 workers, its next 100 training batches after the first, in this process): batches/s against the
   training's steps/s, the headroom the loader leaves the training.
2. Memory: peak memory of a training that reads every example once (1 epoch over the whole training set, a tiny
   CNN, batch 256, 2 workers) at two sizes 10x apart (5,000 and 50,000 CIFAR-sized training images: 15 and 154 MB
   of uint8). Measured as the peak over time of the process tree's PSS (main process and workers: shared pages
   counted once, split between the processes sharing them), sampled every 0.1 s: the main process's own peak RSS
   would miss the workers, and a sum of RSS counts the pages they share with it (torch's libraries) three times.
   Target: files and stream at 10x the data within 10 % of the small size's; in-memory for contrast (it holds the
   data). litdata keeps up to 4 chunks of a worker's memory-mapped (4 MB each here): bounded by the chunk size, not
   the data set's.

    python bench/data_throughput.py                 # both
    BENCH_SMOKE=1 python bench/data_throughput.py   # each once, tiny: does it still run?
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CIFAR_BINDINGS,
    PY,
    ROOT,
    SMOKE,
    alternate_many,
    disturbed_note,
    env,
    fake_cifar,
    fmt,
    header,
    med,
    repeats,
    row,
    smoke_sized,
    wait_idle,
)

WORKERS = 2
MODULES = {"in-memory": "cifar10", "files": "cifar10_files", "stream": "cifar10_stream"}
IN_PROCESS = "files, num_workers=0 (read in the training process: for contrast)"


def bindings(name: str, extra: tuple[str, ...] = (), workers: int = WORKERS) -> str:
    data = [f"training_loop.data='{name}'", "training_loop.loggers=[]"]
    if name != "cifar10":
        data.append(f"{name}.num_workers={workers}")
        if SMOKE:  # the smoke-sized fake CIFAR-10's validation split (SMOKE_BINDINGS sets cifar10's)
            data.append(f"{name}.n_valid=500")
    return "#".join([*smoke_sized((*CIFAR_BINDINGS, *extra)), *data])


def examples_per_s(data_dir: str, name: str, workers: int = WORKERS) -> float:
    """Training throughput of one fresh run: the median of epochs 2.. of history.csv's examples_per_s."""
    tmp = tempfile.mkdtemp(prefix="bench_data_")
    try:
        done = subprocess.run(
            [PY, "bin/train.py", f"{tmp}/run", "configs/cnn.gin", "-b", bindings(name, workers=workers)],
            cwd=ROOT,
            env=env(DATA_DIR=data_dir),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
        with open(f"{tmp}/run/history.csv") as f:
            rates = [float(r["examples_per_s"]) for r in csv.DictReader(f)]
        return med(rates[1:] or rates)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tree(pid: int) -> list[int]:
    """pid and its descendants."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def pss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:  # ended meanwhile
            pass
    return total / 1024


def peak_memory(cmd: list[str], run_env: dict) -> tuple[float, float]:
    """(peak PSS of the process tree, peak RSS of the process itself), MB."""
    process = subprocess.Popen(cmd, cwd=ROOT, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, stop = [0.0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], pss_mb(tree(process.pid)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    stop.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {process.stderr.read().decode()[-3000:]}")
    return peak[0], usage.ru_maxrss / 1024


def fake_splits(n_train: int, n_valid: int = 500, n_test: int = 500, seed: int = 0) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        split: (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64))
        for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test))
    }


def memory_section(n: int) -> None:
    """Peak memory at two data set sizes 10x apart, for each module."""
    from src.data import array_shards, streaming
    from src.data.cifar10 import TEST_FILE, TRAIN_FILES

    sizes = (500, 5000) if SMOKE else (5000, 50000)
    extra = (
        "training_loop.n_epochs=1",
        "training_loop.limit_train_batches=1.0",
        "training_loop.limit_val_batches=2",
        "training_loop.limit_test_batches=2",
        "cnn.width=4",
        "cnn.n_blocks=1",
        *(("training_loop.limit_train_batches=3",) if SMOKE else ()),
    )
    root = Path(tempfile.mkdtemp(prefix="bench_data_memory_"))
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for size in sizes:
            splits = fake_splits(size)
            folder = root / str(size)
            (folder / "cifar-10-batches-py").mkdir(parents=True)
            write_cifar_batches(folder / "cifar-10-batches-py", splits, TRAIN_FILES, TEST_FILE)
            n_valid = len(splits["valid"][1])
            (folder / "files").mkdir()
            array_shards.write(folder / "files", splits, {"name": "cifar10_files", "toy": False, "n_valid": n_valid},
                               shard_size=2000)  # fmt: skip
            (folder / "stream").mkdir()
            streaming.write(folder / "stream", splits, {"name": "cifar10_stream", "toy": False, "n_valid": n_valid})
        for label, name in MODULES.items():
            for size in sizes:
                folder = root / str(size)
                location = {
                    "cifar10_files": f"root='{folder / 'files'}'",
                    "cifar10_stream": f"input_dir='{folder / 'stream'}'",
                }
                where = f"{name}.n_valid={n_valid}" + (f"#{name}.{location[name]}" if name in location else "")
                batch = f"{name}.batch_size=256"
                cmd = [PY, "bin/train.py", f"{root}/run-{label}-{size}", "configs/cnn.gin", "-b",
                       "#".join([bindings(name, extra), where, batch])]  # fmt: skip
                runs[label, size] = []
                for _ in range(n):
                    shutil.rmtree(f"{root}/run-{label}-{size}", ignore_errors=True)
                    runs[label, size].append(peak_memory(cmd, env(DATA_DIR=str(folder))))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    header("data (2 workers)", f"peak PSS, {sizes[0]:,} images", f"{sizes[1]:,} images", "ratio", "target")
    for label in MODULES:
        small, big = [r[0] for r in runs[label, sizes[0]]], [r[0] for r in runs[label, sizes[1]]]
        row(
            label + (" (for contrast: no workers, holds the data)" if label == "in-memory" else ""),
            fmt(small, "MB", 0),
            fmt(big, "MB", 0),
            f"{med(big) / med(small):.3f}",
            "" if label == "in-memory" else "<= 1.10",
        )


def write_cifar_batches(folder: Path, splits: dict, train_files: list[str], test_file: str) -> None:
    """The splits as a cifar-10-batches-py folder (train + valid in the training batches, test in the test batch)
    for the in-memory module, which splits its own validation set off (its examples differ from the others' then:
    memory does not care)."""
    import pickle

    import numpy as np

    x = np.concatenate([splits["train"][0], splits["valid"][0]]).reshape(-1, 3072)
    y = np.concatenate([splits["train"][1], splits["valid"][1]])
    parts = np.array_split(np.arange(len(y)), len(train_files))
    for name, idx in [*zip(train_files, parts, strict=True), (test_file, None)]:
        data, labels = (x[idx], y[idx]) if idx is not None else (splits["test"][0].reshape(-1, 3072), splits["test"][1])
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [int(v) for v in labels]}, f, protocol=4)


def throughput_section(n: int) -> None:
    from src.data.streaming import Cifar10Stream

    data_dir = tempfile.mkdtemp(prefix="bench_data_cifar_")
    old = os.environ.get("DATA_DIR")
    os.environ["DATA_DIR"] = data_dir  # where the modules find cifar-10-batches-py and prepare their folders
    try:
        fake_cifar(data_dir)
        n_valid = 500 if SMOKE else 5000
        from src.data.files import Cifar10Files

        Cifar10Files(n_valid=n_valid).prepare()
        Cifar10Stream(n_valid=n_valid).prepare()
        fns = {label: (lambda name=name: examples_per_s(data_dir, name)) for label, name in MODULES.items()}
        fns[IN_PROCESS] = lambda: examples_per_s(data_dir, "cifar10_files", workers=0)
        results = alternate_many(fns, n, warmup=False)  # (each run is a fresh process: nothing to warm)
        alone = {label: loader_alone(module) for label, module in (("files", Cifar10Files), ("stream", Cifar10Stream))}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if old is None:
            os.environ.pop("DATA_DIR", None)
        else:
            os.environ["DATA_DIR"] = old
    base = med(results["in-memory"])
    header("data", "examples/s (training, epochs 2..)", "/ in-memory", "target")
    for label in [*MODULES, IN_PROCESS]:
        ratio = med(results[label]) / base
        target = "" if label in ("in-memory", IN_PROCESS) else ">= 0.9"
        named = label if label in ("in-memory", IN_PROCESS) else f"{label}, {WORKERS} workers"
        row(named, fmt(results[label], "", 0), f"{ratio:.3f}", target)
    print()
    header(f"loader alone ({WORKERS} workers)", "batches/s", "training steps/s (its module, as above)", "headroom")
    for label, rates in alone.items():
        steps = med(results[label]) / BATCH
        row(label, f"{rates:.0f}", f"{steps:.1f}", f"{rates / steps:.0f}x")


BATCH = 128  # cifar10's batch size, which configs/cnn.gin keeps


def loader_alone(module: type, n_batches: int = 100) -> float:
    """Batches/s of a data module's training loader alone (its workers started: timed from its first batch)."""
    data = module(n_valid=500 if SMOKE else 5000, num_workers=WORKERS)
    data.prepare_data()
    loader = data.train_dataloader()
    n = min(n_batches, len(loader) - 1)
    wait_idle()
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    for _ in range(n):
        next(batches)
    rate = n / (time.perf_counter() - start)
    del batches, loader, data  # (its workers end with it)
    return rate


def main() -> None:
    n = repeats()
    throughput_section(n)
    memory_section(max(1, n // 2) if not SMOKE else 1)
    disturbed_note()


if __name__ == "__main__":
    main()
