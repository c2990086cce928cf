#!/usr/bin/env python
"""Harness overhead: the template's training (bin/train.py) vs Lightning alone (bench/lightning_alone.py: the same
module, model and data in a bare `pl.Trainer`) vs the hand-written floor (bench/handwritten.py), alternating
template, Lightning, floor, template, ... in fresh processes, on whatever device the run would use.

Per run: training throughput = median over epochs 2.. of `examples_per_s` (history.csv for the template; the same
definition in the other two: examples / time from the epoch's start to its validation's start), and the process's
wall time (imports, data, training, validation, test, and for the template: checkpoints, logs, run folder).

    python bench/harness_overhead.py                 # the CPU workloads below
    BENCH_SMOKE=1 python bench/harness_overhead.py   # each once, tiny: does the comparison still run?

Workloads: digits (configs/cnn.gin, 20 epochs of 19 batches of 64) and CIFAR-10-sized (a fake
cifar-10-batches-py of 50,000 + 10,000 random uint8 3x32x32 images; configs/cnn.gin on cifar10, batch 128,
2 epochs of 25 batches, 5 validation and 5 test batches). bench/gpu.py runs the same three on a GPU, in one process.
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
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
    smoke_sized,
    timed,
)

WORKLOADS = {
    "digits, 20 epochs": (64, ("training_loop.n_epochs=20",)),
    "CIFAR-10-sized, 2x25 batches": (128, CIFAR_BINDINGS),
}
WAYS = {  # name -> the command that trains the configs and bindings and prints or writes per-epoch examples/s
    "template": "bin/train.py",
    "Lightning alone": "bench/lightning_alone.py",
    "floor": "bench/handwritten.py",
}


def throughput(way: str, config: str, bindings: str, run_env: dict) -> tuple[float, float]:
    """(median examples/s of the epochs after the first, process wall time) of one fresh process."""
    if way == "template":
        tmp = tempfile.mkdtemp(prefix="bench_harness_")
        try:
            wall, _ = timed([PY, WAYS[way], f"{tmp}/run", config, "-b", bindings], env=run_env)
            with open(f"{tmp}/run/history.csv") as f:
                rates = [float(r["examples_per_s"]) for r in csv.DictReader(f)]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        wall, done = timed([PY, WAYS[way], config, "-b", bindings], env=run_env)
        rates = json.loads(done.stdout.strip().splitlines()[-1])["examples_per_s"]
    return med(rates[1:] or rates), wall


def ratio_cell(a: list[float], b: list[float], suffix: str = "") -> str:
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return f"{med(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}){suffix}"


def main() -> None:
    n = repeats()
    data_dir = tempfile.mkdtemp(prefix="bench_cifar_")
    try:
        fake_cifar(data_dir)
        header("workload", "measure", *WAYS, "template / Lightning", "template / floor", "Lightning / floor")
        for name, (batch, bindings) in WORKLOADS.items():
            joined = "#".join(smoke_sized(bindings))
            run_env = env(DATA_DIR=data_dir)
            runs = alternate_many(
                {way: functools.partial(throughput, way, "configs/cnn.gin", joined, run_env) for way in WAYS},
                n,
            )
            template, lightning, floor = ([x[0] for x in runs[way]] for way in WAYS)
            pairs = (ratio_cell(template, lightning), ratio_cell(template, floor), ratio_cell(lightning, floor))
            row(name, "training examples/s", *(fmt(r, digits=0) for r in (template, lightning, floor)), *pairs)
            steps = [[1000 * batch / x for x in rates] for rates in (template, lightning, floor)]
            row(name, "ms per training step", *(fmt(s) for s in steps), "", "", "")
            walls = [[x[1] for x in runs[way]] for way in WAYS]
            row(name, "process wall time", *(fmt(w, "s") for w in walls), "", ratio_cell(walls[0], walls[2], "x"), "")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    disturbed_note()


if __name__ == "__main__":
    main()
