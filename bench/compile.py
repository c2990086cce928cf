#!/usr/bin/env python
"""torch.compile vs eager (training_loop.compile, src/training/speed.py), side by side, alternating eager, compiled, ...

1. One training step (forward, backward, Adam) of configs/cnn.gin's model on random batches of each workload's shape,
   in a fresh process each: the first step (compilation included) and the median of the next 30 steps, in ms.
2. bin/train.py with training_loop.compile = False / True: process wall time (imports, data, compilation, training,
   test), training examples/s (history.csv, median of epochs 2..) and compile_time_s (meta.json).

Each compiled process gets an empty inductor cache (TORCHINDUCTOR_CACHE_DIR): the compilation measured is a cold one,
as on a fresh machine; later runs of the same model on the same machine compile faster (inductor's on-disk cache).
Runs on whatever device Lightning picks (a GPU where there is one). Workloads: digits (batch 64, 1x8x8) and
CIFAR-10-sized (a fake cifar-10-batches-py; batch 128, 3x32x32, 2 epochs of 25 batches).
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CIFAR_BINDINGS,
    PY,
    alternate_many,
    disturbed_note,
    env,
    fake_cifar,
    fmt,
    header,
    med,
    repeats,
    row,
    timed,
)  # noqa: E402

CIFAR = CIFAR_BINDINGS
WORKLOADS = {  # name -> (batch size, input shape, bin/train.py bindings)
    "digits": (64, (1, 8, 8), ("training_loop.n_epochs=5",)),
    "CIFAR-10-sized": (128, (3, 32, 32), CIFAR),
}


def child_step(workload: str, compiled: bool) -> None:
    """In a fresh process: print {"first_ms", "step_ms"} of configs/cnn.gin's model on the workload's batches."""
    import torch

    from src import config
    from src.models import MODELS
    from src.training import speed

    batch, shape, _ = WORKLOADS[workload]
    config.parse([str(Path(__file__).resolve().parents[1] / "configs/cnn.gin")])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = MODELS.build("cnn", input_shape=shape, n_outputs=10).to(device)
    speed.apply(model, "default" if compiled else None, channels_last=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, *shape, device=device), torch.randint(0, 10, (batch,), device=device)

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - start)

    first = step()
    print(json.dumps({"first_ms": first, "step_ms": statistics.median(step() for _ in range(30))}))


def step_run(workload: str, compiled: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_inductor_") as cache:
        _, done = timed(
            [PY, __file__, "--step", workload, "compiled" if compiled else "eager"],
            env=env(TORCHINDUCTOR_CACHE_DIR=cache),
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_run(bindings: tuple[str, ...], compiled: bool, data_dir: str) -> dict:
    tmp = tempfile.mkdtemp(prefix="bench_compile_")
    switches = (f"training_loop.compile={compiled}", "training_loop.loggers=[]")
    try:
        wall, _ = timed(
            [PY, "bin/train.py", f"{tmp}/run", "configs/cnn.gin", "-b", "#".join(bindings + switches)],
            env=env(DATA_DIR=data_dir, TORCHINDUCTOR_CACHE_DIR=f"{tmp}/inductor"),
        )
        with open(f"{tmp}/run/history.csv") as f:
            rates = [float(r["examples_per_s"]) for r in csv.DictReader(f)]
        meta = json.loads(Path(f"{tmp}/run/meta.json").read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"wall": wall, "rate": med(rates[1:]), "compile": meta.get("compile_time_s", 0.0)}


def main() -> None:
    n = repeats(3)
    data_dir = tempfile.mkdtemp(prefix="bench_cifar_")
    try:
        fake_cifar(data_dir)
        print("One training step (configs/cnn.gin's model, Adam), fresh process each, cold inductor cache:\n")
        header(
            "workload",
            "eager: first step ms",
            "eager: step ms",
            "compiled: first step ms",
            "compiled: step ms",
            "speed-up (eager / compiled step)",
        )
        for name in WORKLOADS:
            got = alternate_many(
                {m: lambda m=m, w=name: step_run(w, m == "compiled") for m in ("eager", "compiled")}, n, warmup=False
            )
            e, c = got["eager"], got["compiled"]
            ratios = [a["step_ms"] / b["step_ms"] for a, b in zip(e, c, strict=True)]
            row(
                name,
                fmt([r["first_ms"] for r in e]),
                fmt([r["step_ms"] for r in e]),
                fmt([r["first_ms"] for r in c], digits=0),
                fmt([r["step_ms"] for r in c]),
                fmt(ratios),
            )
        print("\nbin/train.py (configs/cnn.gin), training_loop.compile = False vs True, cold inductor cache:\n")
        header(
            "workload",
            "eager: wall s",
            "compiled: wall s",
            "compiled: compile_time_s (meta.json)",
            "eager: examples/s",
            "compiled: examples/s",
        )
        for name, (_, _, bindings) in WORKLOADS.items():
            got = alternate_many(
                {m: lambda m=m, b=bindings: train_run(b, m == "compiled", data_dir) for m in ("eager", "compiled")},
                n,
                warmup=False,
            )
            e, c = got["eager"], got["compiled"]
            row(
                name,
                fmt([r["wall"] for r in e], digits=1),
                fmt([r["wall"] for r in c], digits=1),
                fmt([r["compile"] for r in c], digits=1),
                fmt([r["rate"] for r in e], digits=0),
                fmt([r["rate"] for r in c], digits=0),
            )
        disturbed_note()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--step"]:
        child_step(sys.argv[2], sys.argv[3] == "compiled")
    else:
        main()
