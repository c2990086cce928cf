#!/usr/bin/env python
"""Sweep: the tune_lr "small" grid (4 runs of 3 epochs on digits) run with `bash batch.sh` (one job after the
other, each with all cores) vs `bin/run_local.py batch.sh --jobs 2` (two at a time, one thread each), alternating,
each repetition on a fresh RESULTS_DIR. 3 repetitions by default (SWEEP_REPEATS): a pair takes ~40 s.

The experiment folder (main.py and template_config.gin of experiments/tune_lr) is copied to a temporary folder,
so `prepare` writes its configs and batch.sh there, not into the repository.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, ROOT, alternate, disturbed_note, env, fmt, header, med, row, timed  # noqa: E402


def prepared_batch(tmp: Path) -> tuple[Path, dict]:
    """A fresh tune_lr/small batch.sh whose runs go to a new RESULTS_DIR under `tmp`."""
    experiment = Path(tempfile.mkdtemp(dir=tmp)) / "tune_lr"
    shutil.copytree(ROOT / "experiments" / "tune_lr", experiment, ignore=shutil.ignore_patterns("small", "large"))
    run_env = env(RESULTS_DIR=str(experiment.parent / "results"))
    timed([PY, str(experiment / "main.py"), "prepare", "--name", "small"], env=run_env)
    return experiment / "small" / "batch.sh", run_env


def check_finished(batch: Path, run_env: dict) -> None:
    runs = list((Path(run_env["RESULTS_DIR"]) / "tune_lr" / "small").iterdir())
    assert len(runs) == 4 and all((r / "FINISHED").is_file() for r in runs), f"unfinished runs in {batch}"


def main() -> None:
    n = int(os.environ.get("SWEEP_REPEATS", 3))
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))

    def sequential():
        batch, run_env = prepared_batch(tmp)
        wall = timed(["bash", str(batch)], env=run_env)[0]
        check_finished(batch, run_env)
        return wall

    def parallel():
        batch, run_env = prepared_batch(tmp)
        wall = timed([PY, "bin/run_local.py", str(batch), "--jobs", "2"], env=run_env)[0]
        check_finished(batch, run_env)
        return wall

    try:
        a, b = alternate(sequential, parallel, n, warmup=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    header("tune_lr small (4 runs x 3 epochs, digits)", "wall time", "speed-up vs bash", "target")
    row("`bash batch.sh` (sequential)", fmt(a, "s"), "1.00", "")
    speedups = [x / y for x, y in zip(a, b, strict=True)]
    row(
        "`bin/run_local.py batch.sh --jobs 2`",
        fmt(b, "s"),
        f"{med(speedups):.2f}x ({min(speedups):.2f}–{max(speedups):.2f})",
        ">= 1.5x",
    )
    disturbed_note()


if __name__ == "__main__":
    main()
