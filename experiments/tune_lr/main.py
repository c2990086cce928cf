#!/usr/bin/env python
"""tune_lr: the learning rate of the CNN on digits, over several seeds.

python experiments/tune_lr/main.py prepare [--name small|large]   # configs + batch.sh of unfinished runs
bash experiments/tune_lr/small/batch.sh                          # or bin/run_local.py / bin/run_slurm.py
python experiments/tune_lr/main.py report [--name small|large]   # table, best config, plots

bayes (Optuna, adaptive): repeat `prepare --name bayes` then run its batch.sh until prepare says the budget is spent.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from src.cli.experiment import experiment_main  # noqa: E402
from src.searches.experiment import grid  # noqa: E402
from src.searches.optuna_search import optuna_search  # noqa: E402

SEARCHES = {
    # about a minute on 2 CPU cores
    "small": grid({"supervised.lr": [0.0003, 0.003, 0.03, 0.3]}, {"training_loop.n_epochs": 3}),
    "large": grid(
        {"supervised.lr": [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1], "training_loop.seed": [0, 1, 2]},
        {"training_loop.n_epochs": 10},
    ),
    # lr and weight decay chosen by TPE from what the finished runs showed, hopeless runs pruned after an epoch:
    # 12 runs of at most 4 epochs in batches of 4 (three prepare -> run rounds), a few minutes on 2 CPU cores
    "bayes": optuna_search(
        {"supervised.lr": ("log", 1e-4, 0.3), "supervised.weight_decay": ("log", 1e-6, 1e-2)},
        n_trials=12,
        batch_size=4,
        sampler="tpe",
        pruner="median",
        metric="valid_acc",
        fixed={"training_loop.n_epochs": 4},
        sampler_options={"n_startup_trials": 4},  # TPE models from the second batch on (default: 10 random first)
        pruner_options={"n_startup_trials": 4},  # prune once the first batch has finished
    ),
}

if __name__ == "__main__":
    sys.exit(experiment_main(Path(__file__).parent, SEARCHES))
