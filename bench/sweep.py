#!/usr/bin/env python
"""Sweeps: wall time of a whole batch.sh run by `bin/run_local.py` with warm starts (the default: jobs forked from a
server that imported torch and Lightning once), with `--cold` (each job a fresh bin/train.py process), and by
`bash batch.sh` (one fresh process after the other). All variants of a sweep alternate, each repetition on a fresh
RESULTS_DIR; warm figures include starting the server. SWEEP_REPEATS repetitions (default 2), no warm-up round;
each waits for idle cores, but other processes' CPU is not checked afterwards (warm jobs' CPU is not the runner's).
Also the training speed (median examples/s of the runs' epochs 2..): a warm child trains as fast as a fresh process.
`python bench/sweep.py WORD...` runs only the sweeps whose name holds one of the words (tune_lr, toy, CIFAR).

- tune_lr small: experiments/tune_lr's grid (4 runs x 3 epochs on digits; its folder copied to a temporary one);
- 1-epoch toy runs, the worst case for start-up: 6 runs of 1 epoch on toy digits;
- CIFAR-10-sized: 2 runs of cnn.gin on a fake CIFAR-10 (50,000 random images) (2 epochs of 10 batches of 128), where the
  start-up is a small part of a run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
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
    row,
    timed,
)

TOY = "include 'configs/cnn.gin'\n" + "\n".join(
    [
        "digits.toy = True",
        "cnn.width = 8",
        "training_loop.loggers = []",
        "training_loop.num_sanity_val_steps = 0",
        "training_loop.n_epochs = 1",
    ]
)
CIFAR = "include 'configs/cnn.gin'\n" + "\n".join(
    [
        "training_loop.data = 'cifar10'",
        "training_loop.n_epochs = 2",
        "training_loop.limit_train_batches = 10",
        "training_loop.limit_val_batches = 2",
        "training_loop.limit_test_batches = 2",
        "training_loop.loggers = []",
    ]
)


def tune_lr_small(tmp: Path) -> tuple[Path, dict]:
    """A fresh tune_lr/small batch.sh whose runs go to a new RESULTS_DIR under `tmp`."""
    experiment = Path(tempfile.mkdtemp(dir=tmp)) / "tune_lr"
    shutil.copytree(ROOT / "experiments" / "tune_lr", experiment, ignore=shutil.ignore_patterns("small", "large"))
    run_env = env(RESULTS_DIR=str(experiment.parent / "results"))
    timed([PY, str(experiment / "main.py"), "prepare", "--name", "small"], env=run_env)
    return experiment / "small" / "batch.sh", run_env


def templated(template: str, axis: str, values: list, **extra: str):
    """A batch maker: a fresh experiment folder with `template` swept over `axis`, in a new RESULTS_DIR."""

    def make(tmp: Path) -> tuple[Path, dict]:
        from src.searches.experiment import grid, prepare

        folder = Path(tempfile.mkdtemp(dir=tmp)) / "exp"
        folder.mkdir()
        (folder / "template_config.gin").write_text(template + "\n")
        run_env = env(RESULTS_DIR=str(folder.parent / "results"), **extra)
        saved = os.environ.get("RESULTS_DIR")
        os.environ["RESULTS_DIR"] = run_env["RESULTS_DIR"]
        try:
            return prepare(folder, "s", grid({axis: values})).batch, run_env
        finally:
            os.environ.pop("RESULTS_DIR") if saved is None else os.environ.update(RESULTS_DIR=saved)

    return make


def training_speed(batch: Path) -> float:
    """The median training examples/s of the batch's runs' epochs 2.. (history.csv), all runs finished."""
    import csv

    from src.run import layout
    from src.run.status import status_of
    from src.runners.batch import read_batch

    jobs, rates = read_batch(batch), []
    assert jobs and all(status_of(j.run_dir) == "finished" for j in jobs), f"unfinished runs in {batch}"
    for job in jobs:
        with open(job.run_dir / layout.HISTORY) as f:
            epochs = [float(r["examples_per_s"]) for r in csv.DictReader(f)]
            rates += epochs[1:] or epochs  # 1-epoch runs: their only epoch
    return med(rates)


def variant(make, command):
    """A function timing one sweep: a fresh batch, then `command(batch)` run to completion: (wall s, examples/s)."""

    def run() -> tuple[float, float]:
        batch, run_env = make(TMP)
        wall = timed(command(batch), env=run_env)[0]
        return wall, training_speed(batch)

    return run


def local(*options: str):
    return lambda batch: [PY, "bin/run_local.py", str(batch), *options]


def bash(batch: Path) -> list[str]:
    return ["bash", str(batch)]


def ratio(a: list[float], b: list[float], unit: str = "x") -> str:
    r = [x / y for x, y in zip(a, b, strict=True)]
    return f"{med(r):.2f}{unit} ({min(r):.2f}–{max(r):.2f})"


TMP = Path(tempfile.mkdtemp(prefix="bench_sweep_"))


def main() -> None:
    n = 1 if SMOKE else int(os.environ.get("SWEEP_REPEATS", 2))
    data_dir = fake_cifar(TMP / "data")
    sweeps = {
        "tune_lr small (4 runs x 3 epochs, digits)": (
            tune_lr_small,
            {
                "`bash batch.sh`": bash,
                "run_local --jobs 1": local("--jobs", "1"),
                "run_local --jobs 2 --cold": local("--jobs", "2", "--cold"),
                "run_local --jobs 2": local("--jobs", "2"),
            },
            [
                ("run_local --jobs 2 --cold", "run_local --jobs 2", ">= 2x"),
                ("`bash batch.sh`", "run_local --jobs 1", ""),
                ("`bash batch.sh`", "run_local --jobs 2", ""),
            ],
        ),
        "6 runs x 1 epoch, toy digits (worst case)": (
            templated(TOY, "training_loop.seed", list(range(2 if SMOKE else 6))),
            {"run_local --jobs 2 --cold": local("--jobs", "2", "--cold"), "run_local --jobs 2": local("--jobs", "2")},
            [("run_local --jobs 2 --cold", "run_local --jobs 2", "")],
        ),
        "CIFAR-10-sized (2 runs x 2 epochs of 10 batches of 128, cnn.gin)": (
            templated(CIFAR, "training_loop.seed", [0, 1], DATA_DIR=str(data_dir)),
            {"run_local --jobs 2 --cold": local("--jobs", "2", "--cold"), "run_local --jobs 2": local("--jobs", "2")},
            [("run_local --jobs 2 --cold", "run_local --jobs 2", "")],
        ),
    }
    words = ["toy"] if SMOKE else sys.argv[1:] or [""]  # smoke: the quickest sweep, with 2 runs
    chosen = {name: sweep for name, sweep in sweeps.items() if any(word in name for word in words)}
    header("sweep", "runner", "wall time", "training examples/s", "comparison", "wall ratio", "speed ratio", "target")
    try:
        for name, (make, variants, comparisons) in chosen.items():
            fns = {label: variant(make, cmd) for label, cmd in variants.items()}
            # unguarded: the forkserver, not the runner, reaps warm jobs, so the guard would count them as foreign
            runs = alternate_many(fns, n, warmup=False, guard=False)
            walls = {label: [r[0] for r in results] for label, results in runs.items()}
            speeds = {label: [r[1] for r in results] for label, results in runs.items()}
            for label in runs:
                row(name, label, fmt(walls[label], "s"), fmt(speeds[label], digits=0), "", "", "", "")
            for slow, fast, target in comparisons:
                row(
                    name,
                    "",
                    "",
                    "",
                    f"{slow} / {fast}",
                    ratio(walls[slow], walls[fast]),
                    ratio(speeds[fast], speeds[slow], ""),
                    target,
                )
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    disturbed_note()


if __name__ == "__main__":
    main()
