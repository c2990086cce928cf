#!/usr/bin/env python
"""Start-up: seconds from process start to the end of the first training step of bin/train.py (the first
`step 1/` line of ProgressLog, printed and flushed at the end of step 1) vs the floor: seconds from process start
until `python -c "import torch, pytorch_lightning; print('imported')"` has printed (the same line-on-stdout method;
the floor's interpreter exit, ~1 s, is reported apart), alternating. Then the heavy imports of a training process
(`python -X importtime`), split into those the floor already pays and those the template adds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, ROOT, alternate, disturbed_note, env, fmt, header, repeats, row, timed  # noqa: E402

FLOOR = [PY, "-c", "import torch, pytorch_lightning; print('imported', flush=True)"]
BINDINGS = (
    "training_loop.n_epochs=1#progress_log.every_n_steps=1#training_loop.limit_train_batches=2"
    "#training_loop.limit_val_batches=1#training_loop.limit_test_batches=1"
)


def train_command(save_dir: str, *python_flags: str) -> list[str]:
    return [PY, *python_flags, "bin/train.py", save_dir, "configs/cnn.gin", "-b", BINDINGS]


def until_line(cmd: list[str], prefix: str) -> tuple[float, float]:
    """(seconds from Popen to the first stdout line starting with `prefix`, seconds from then to the exit)."""
    start = time.perf_counter()
    with subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as p:
        for line in p.stdout:
            if line.startswith(prefix):
                seen = time.perf_counter()
                break
        else:
            raise RuntimeError(f"{cmd} printed no {prefix!r} line (exit {p.wait()})")
        p.stdout.read()
    return seen - start, time.perf_counter() - seen


def first_step() -> tuple[float, float]:
    tmp = tempfile.mkdtemp(prefix="bench_startup_")
    try:
        return until_line(train_command(f"{tmp}/run"), "step 1/")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def floor() -> tuple[float, float]:
    return until_line(FLOOR, "imported")


def import_times(cmd: list[str]) -> dict[str, tuple[float, str]]:
    """{top-level package: (seconds, first importer)} from `python -X importtime`: a package's time is the sum of
    the cumulative times of its imports made from another package (what importing it costs, dependencies included)."""
    lines = []
    for line in timed(cmd)[1].stderr.splitlines():
        if m := re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line):
            lines.append((len(m[2]) // 2, int(m[1]) / 1e6, m[3]))
    packages: dict[str, tuple[float, str]] = {}
    for i, (depth, seconds, name) in enumerate(lines):  # post-order: the parent is the next line one level up
        parent = next((n for d, _, n in lines[i + 1 :] if d == depth - 1), "the script or a lazy import")
        top = name.split(".")[0]
        if parent.split(".")[0] != top:
            total, importer = packages.get(top, (0.0, parent))
            packages[top] = (total + seconds, importer)
    return packages


def heavy_imports(limit: float = 0.03) -> None:
    tmp = tempfile.mkdtemp(prefix="bench_importtime_")
    try:
        train = import_times(train_command(f"{tmp}/run", "-X", "importtime"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    in_floor = import_times([PY, "-X", "importtime", *FLOOR[1:]])
    print("\nImports of one bin/train.py process, by top-level package (>= 30 ms, dependencies included):\n")
    header("package", "import s", "first imported by", "in the floor?")
    for name, (seconds, importer) in sorted(train.items(), key=lambda kv: -kv[1][0]):
        if seconds >= limit:
            row(
                f"`{name}`",
                f"{seconds:.2f}",
                importer if " " in importer else f"`{importer}`",
                "yes" if name in in_floor else "**no: template**",
            )


def main() -> None:
    a, b = alternate(first_step, floor, repeats(), labels=("bin/train.py", "floor"))
    header("measure", "seconds", "target")
    row("`bin/train.py` (digits, cnn.gin): process start to end of step 1", fmt([x[0] for x in a], "s"), "")
    row('floor: `python -c "import torch, pytorch_lightning"`, start to imports done', fmt([y[0] for y in b], "s"), "")
    row("difference (paired)", fmt([x[0] - y[0] for x, y in zip(a, b, strict=True)], "s"), "<= 1.0 s")
    row("floor: interpreter exit after those imports (every process pays it)", fmt([y[1] for y in b], "s"), "")
    heavy_imports()
    disturbed_note()


if __name__ == "__main__":
    main()
