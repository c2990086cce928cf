#!/usr/bin/env python
"""Harness overhead: the template's training (bin/train.py) vs the hand-written floor (bench/handwritten.py); fresh
processes, alternating harness, floor, harness, floor, ... (Lightning alone in between:
bench/investigations/bare_lightning.py and interleaved_epochs.py.)

Per run: training throughput = median over epochs 2.. of `examples_per_s` (history.csv for the harness; the same
definition in the floor: examples / time from epoch start to validation start), and the process's wall time
(imports, data, training, validation, test, and for the harness: checkpoints, logs, run folder).

Workloads: digits (configs/cnn.gin, 20 epochs of 19 batches of 64) and CIFAR-10-sized (a fake
cifar-10-batches-py of 50,000 + 10,000 random uint8 3x32x32 images; configs/cnn.gin on cifar10, batch 128,
2 epochs of 25 batches, 5 validation and 5 test batches).
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
WORKLOADS = {"digits, 20 epochs": (64, ("training_loop.n_epochs=20",)), "CIFAR-10-sized, 2x25 batches": (128, CIFAR)}


def harness(bindings: str, run_env: dict) -> tuple[float, float]:
    tmp = tempfile.mkdtemp(prefix="bench_harness_")
    try:
        wall, _ = timed([PY, "bin/train.py", f"{tmp}/run", "configs/cnn.gin", "-b", bindings], env=run_env)
        with open(f"{tmp}/run/history.csv") as f:
            rates = [float(r["examples_per_s"]) for r in csv.DictReader(f)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return med(rates[1:]), wall


def handwritten(bindings: str, run_env: dict) -> tuple[float, float]:
    wall, done = timed([PY, "bench/handwritten.py", "configs/cnn.gin", "-b", bindings], env=run_env)
    return med(json.loads(done.stdout.strip().splitlines()[-1])["examples_per_s"][1:]), wall


def ratio_cell(a: list[float], b: list[float], suffix: str = "") -> str:
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return f"{med(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}){suffix}"


def main() -> None:
    n = repeats()
    data_dir = tempfile.mkdtemp(prefix="bench_cifar_")
    try:
        fake_cifar(data_dir)
        header(
            "workload",
            "measure",
            "harness (bin/train.py)",
            "floor (bench/handwritten.py)",
            "harness / floor",
        )
        for name, (batch, bindings) in WORKLOADS.items():
            joined, run_env = "#".join(bindings), env(DATA_DIR=data_dir)
            runs = alternate_many(
                {
                    f"harness {name}": functools.partial(harness, joined, run_env),
                    f"floor {name}": functools.partial(handwritten, joined, run_env),
                },
                n,
            )
            a, b = runs.values()
            rate_a, rate_b = ([x[0] for x in r] for r in (a, b))
            row(name, "training examples/s", *(fmt(r, digits=0) for r in (rate_a, rate_b)), ratio_cell(rate_a, rate_b))
            step_a, step_b = ([1000 * batch / x for x in r] for r in (rate_a, rate_b))
            difference = med([x - y for x, y in zip(step_a, step_b, strict=True)])
            row(name, "ms per training step", *(fmt(s) for s in (step_a, step_b)), f"{difference:+.2f} ms")
            wall_a, wall_b = ([x[1] for x in r] for r in (a, b))
            row(name, "process wall time", *(fmt(w, "s") for w in (wall_a, wall_b)), ratio_cell(wall_a, wall_b, "x"))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    disturbed_note()


if __name__ == "__main__":
    main()
