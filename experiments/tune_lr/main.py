#!/usr/bin/env python
"""tune_lr: the learning rate of the CNN on digits, over several seeds.

python experiments/tune_lr/main.py prepare [--name small|large]   # configs + batch.sh of unfinished runs
bash experiments/tune_lr/small/batch.sh                          # or bin/run_local.py / bin/run_slurm.py
python experiments/tune_lr/main.py report [--name small|large]   # table, best config, plots
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from src.experiment import grid  # noqa: E402
from src.experiment_cli import experiment_main  # noqa: E402

SEARCHES = {
    # about a minute on 2 CPU cores
    "small": grid({"supervised.lr": [0.0003, 0.003, 0.03, 0.3]}, {"training_loop.n_epochs": 3}),
    "large": grid(
        {"supervised.lr": [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1], "training_loop.seed": [0, 1, 2]},
        {"training_loop.n_epochs": 10},
    ),
}

if __name__ == "__main__":
    sys.exit(experiment_main(Path(__file__).parent, SEARCHES))
