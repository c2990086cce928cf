"""Training speed of the current tree against another commit, side by side: `python bench/compare_commits.py REV`.

A guard for refactors of the training path: each round trains the same config with the other commit's code (a
temporary `git worktree`) and with this tree's, alternately, in fresh processes; the figure is the median
examples/s of the epochs after the first (history.csv), and the ratio current / REV. Workloads: digits (the
default config, 8 epochs) and a CIFAR-10-sized fake (ResNet-20, 3 epochs of 20 batches).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PY, ROOT, SMOKE, SMOKE_BINDINGS, alternate, env, fake_cifar, fmt, header, machine, repeats, row

WORKLOADS = {
    "digits": ("configs/cnn.gin", "training_loop.n_epochs=8#training_loop.loggers=[]"),
    "cifar10-sized": (
        "configs/cnn_full.gin",
        "training_loop.n_epochs=3#training_loop.limit_train_batches=20#training_loop.limit_val_batches=2"
        "#training_loop.limit_test_batches=2#training_loop.loggers=[]#cifar10.n_valid=256",
    ),
}


def throughput(root: Path, config: str, bindings: str, data_dir: str, out: Path) -> float:
    """Median examples/s over the epochs after the first of one fresh training with the code in `root`."""
    import pandas as pd

    run = Path(tempfile.mkdtemp(dir=out))
    if SMOKE:
        bindings = "#".join((bindings, *SMOKE_BINDINGS))
    cmd = [PY, "bin/train.py", str(run), config, "-b", bindings]
    done = subprocess.run(
        cmd, cwd=root, env=env(PYTHONPATH=str(root), DATA_DIR=data_dir), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{root}: {done.stderr[-2000:]}")
    return statistics.median(pd.read_csv(run / "history.csv")["examples_per_s"].iloc[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to compare with, e.g. HEAD~3")
    args = parser.parse_args()
    n = repeats(3)
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.rev], cwd=ROOT, check=True)
        try:
            data_dir = str(fake_cifar(Path(tmp) / "data", n_train=5000, n_test=1000))
            print(f"machine: {machine()}")
            header("workload", f"{args.rev} examples/s", "current examples/s", "current / rev")
            for name, (config, bindings) in WORKLOADS.items():
                before, after = alternate(
                    lambda r=other, c=config, b=bindings: throughput(r, c, b, data_dir, Path(tmp)),
                    lambda c=config, b=bindings: throughput(ROOT, c, b, data_dir, Path(tmp)),
                    n,
                    warmup=False,
                )
                ratios = [a / b for a, b in zip(after, before, strict=True)]
                row(name, fmt(before, digits=0), fmt(after, digits=0), fmt(ratios))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
