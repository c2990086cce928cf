#!/usr/bin/env python
"""Where a training step's time goes: py-spy samples (100 Hz) of
the training part of the epochs (validation and set-up excluded) of bin/train.py and of bench/handwritten.py
on digits (configs/cnn.gin, 60 epochs), sorted into categories, converted to ms per step with each run's own
throughput (median over epochs 2..). One run each: shares are indicative (a few hundred samples).

Needs py-spy (`pip install py-spy` into .venv); prints a note and exits 0 without it.
"""

from __future__ import annotations

import collections
import csv
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import PY, ROOT, header, row, timed  # noqa: E402

BINDINGS = "training_loop.n_epochs=60"
BATCH = 64
HANDWRITTEN = (ROOT / "bench" / "handwritten.py").read_text().splitlines()
LOOP = [
    next(i for i, line in enumerate(HANDWRITTEN, 1) if marker in line)  # the training part of an epoch
    for marker in ("for epoch in range(n_epochs)", "train_end = time.perf_counter()")
]
RULES = [  # (category, patterns in the stack or in the hand-written loop's current line); first match wins
    ("metric logging: `self.log`", ["LightningModule.log ("]),
    ("backward", ["run_backward"]),
    ("forward (model)", ["Module._call_impl"]),
    ("loss + accuracy", ["cross_entropy (", "SupervisedLearning._step", "loss_sum +=", "correct +="]),
    ("optimizer (Adam math, zero_grad)", ["_single_tensor_adam", "_multi_tensor_adam", "_init_group", "zero_grad"]),
    (
        "data fetch (index, transform, DataLoader)",
        ["fetchers.py", "dataloader.py", "transform (", "batches (", "transform(train.x"],
    ),
    ("template callbacks (src/callbacks)", ["src/callbacks/"]),
]
OTHER = "other: Lightning loops, hooks, bookkeeping"


def pyspy() -> str | None:
    return shutil.which("py-spy") or (
        str(Path(PY).parent / "py-spy") if (Path(PY).parent / "py-spy").exists() else None
    )


def categorize(raw: str, training: str, excluded: tuple[str, ...]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, n = line.rsplit(" ", 1)
        if training not in stack or any(e in stack for e in excluded):
            continue
        here = [int(n) for n in re.findall(r"main \(handwritten\.py:(\d+)\)", stack)]
        if here and not LOOP[0] <= here[-1] < LOOP[1]:
            continue  # the hand-written main() outside its training loop (imports, data loading, evaluation)
        text = stack + (HANDWRITTEN[here[-1] - 1] if here else "")
        counts[next((name for name, patterns in RULES if any(p in text for p in patterns)), OTHER)] += int(n)
    return counts


def record(spy: str, cmd: list[str], out: Path) -> str:
    """The command's stdout; py-spy's samples go to `out`."""
    return timed([spy, "record", "-r", "100", "-f", "raw", "-o", str(out), "--", *cmd])[1].stdout


def main() -> None:
    spy = pyspy()
    if spy is None:
        print("py-spy not installed (`.venv/bin/pip install py-spy`): profile skipped")
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_profile_"))
    try:
        record(spy, [PY, "bin/train.py", str(tmp / "run"), "configs/cnn.gin", "-b", BINDINGS], tmp / "harness.txt")
        with open(tmp / "run" / "history.csv") as f:
            harness_rate = statistics.median(float(r["examples_per_s"]) for r in list(csv.DictReader(f))[1:])
        printed = record(spy, [PY, "bench/handwritten.py", "configs/cnn.gin", "-b", BINDINGS], tmp / "floor.txt")
        result = json.loads(next(line for line in printed.splitlines()[::-1] if line.startswith("{")))
        floor_rate = statistics.median(result["examples_per_s"][1:])
        harness = categorize((tmp / "harness.txt").read_text(), "_TrainingEpochLoop.advance", ("_EvaluationLoop",))
        floor = categorize((tmp / "floor.txt").read_text(), "main (", ("evaluate (",))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ms = {"harness": 1000 * BATCH / harness_rate, "floor": 1000 * BATCH / floor_rate}
    print(
        f"Digits, batch {BATCH}, under py-spy: harness {ms['harness']:.2f} ms/step, floor {ms['floor']:.2f} ms/step\n"
    )
    header("where a training step's time goes", "harness ms/step (share)", "floor ms/step (share)")
    for name in [*(name for name, _ in RULES), OTHER]:
        cells = []
        for label, counts in (("harness", harness), ("floor", floor)):
            share = counts[name] / max(sum(counts.values()), 1)
            cells.append(f"{share * ms[label]:.2f} ({100 * share:.0f}%)" if counts[name] else "–")
        row(name, *cells)


if __name__ == "__main__":
    main()
