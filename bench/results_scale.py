#!/usr/bin/env python
"""Results at scale: `src.results.load_runs(DIR)` (in this process) and `bin/runs.py DIR --csv` (fresh process)
on 100 / 1,000 / 5,000 fake finished runs of 100 epochs each, then a cProfile of load_runs at 1,000 runs.

Each fake run holds the operative config.gin of a real (quick) training with its lr and seed changed,
a 100-row history.csv with the real columns, eval_results.json, meta.json, HEARTBEAT and FINISHED.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, SMOKE, alternate, disturbed_note, fmt, header, med, repeats, row, timed  # noqa: E402

SIZES = (100,) if SMOKE else (100, 1_000, 5_000)
COLUMNS = ["epoch", "step", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "epoch_time", "examples_per_s"]


def real_run(tmp: Path) -> Path:
    """A real, quick training (debug config) whose files the fake runs copy."""
    timed(
        [PY, "bin/train.py", str(tmp / "real"), "configs/cnn.gin#configs/debug.gin", "-b", "training_loop.loggers=[]"]
    )
    return tmp / "real"


def fake_runs(real: Path, root: Path, n: int) -> Path:
    config = (real / "config.gin").read_text()
    meta, beat = (real / "meta.json").read_text(), (real / "HEARTBEAT").read_text()
    rng = random.Random(0)
    for i in range(n):
        run = root / f"exp{i % 10}" / f"lr={i}_seed={i % 3}"
        run.mkdir(parents=True)
        lr = 10 ** rng.uniform(-4, -1)
        (run / "config.gin").write_text(
            config.replace("supervised.lr = 0.003", f"supervised.lr = {lr:.4g}").replace(
                "training_loop.seed = 0", f"training_loop.seed = {i % 3}"
            )
        )
        lines = [",".join(COLUMNS)] + [
            ",".join(
                str(v) for v in (e, 19 * e, 1 / e, 1 - 1 / (e + 1), 1.1 / e, 1 - 1.1 / (e + 1), lr, 0.1, 12000.0 + e)
            )
            for e in range(1, 101)
        ]
        (run / "history.csv").write_text("\n".join(lines) + "\n")
        (run / "eval_results.json").write_text(json.dumps({"checkpoint": "best", "test_acc": 0.98, "test_loss": 0.05}))
        (run / "meta.json").write_text(meta)
        (run / "HEARTBEAT").write_text(beat)
        (run / "FINISHED").write_text("2026-11-21T00:00:00+00:00\n")
    return root


def main() -> None:
    from src.results import load_runs

    tmp = Path(tempfile.mkdtemp(prefix="bench_results_"))
    try:
        real = real_run(tmp)
        header("runs (100 epochs each)", "`load_runs(DIR)`", "per run", "`bin/runs.py DIR --csv` (process)", "target")
        for n in SIZES:
            root = fake_runs(real, tmp / f"runs{n}", n)
            reps = repeats() if n <= 1_000 else max(3, repeats() // 2)

            def load(root=root, n=n):
                start = time.perf_counter()
                assert len(load_runs(root)) == n
                return time.perf_counter() - start

            def cli(root=root):
                return timed([PY, "bin/runs.py", str(root), "--csv"])[0]

            loads, clis = alternate(load, cli, reps, warmup=False, labels=(f"load_runs {n}", f"runs.py {n}"))
            row(
                f"{n:,}",
                fmt(loads, "s"),
                f"{1000 * med(loads) / n:.2f} ms",
                fmt(clis, "s"),
                "< 2 s at 1,000, linear" if n == 1_000 else "",
            )
        if not SMOKE:
            profile(load_runs, tmp / "runs1000")  # still there: the fake runs of every size are kept until the end
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    disturbed_note()


def profile(load_runs, root: Path) -> None:
    """Where load_runs spends its time: its direct callees, and theirs one level down (cProfile)."""
    profiler = cProfile.Profile()
    profiler.runcall(load_runs, root)
    stats = pstats.Stats(profiler).stats
    key = next(k for k in stats if k[2] == "load_runs")
    total = stats[key][3]

    def callees(parent):  # [(cumulative seconds under `parent`, callee)]
        return sorted(((v[4][parent][3], k) for k, v in stats.items() if parent in v[4]), reverse=True)

    print(f"\ncProfile of load_runs at 1,000 runs ({total:.2f} s under the profiler): its callees, and theirs\n")
    header("function", "seconds", "share of load_runs")
    for seconds, callee in callees(key):
        if seconds >= 0.02 * total:
            row(
                f"`{callee[2]}` ({Path(callee[0]).name}:{callee[1]})", f"{seconds:.2f}", f"{100 * seconds / total:.0f}%"
            )
            for sub_seconds, sub in callees(callee)[:3]:
                if sub_seconds >= 0.02 * total:
                    row(
                        f"&nbsp;&nbsp;↳ `{sub[2]}` ({Path(sub[0]).name}:{sub[1]})",
                        f"{sub_seconds:.2f}",
                        f"{100 * sub_seconds / total:.0f}%",
                    )


if __name__ == "__main__":
    main()
