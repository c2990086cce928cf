#!/usr/bin/env python
"""width_depth: random search over the CNN's width, depth and learning rate on digits.

python experiments/width_depth/main.py prepare [--name small|large]
bin/run_local.py experiments/width_depth/small/batch.sh --jobs 2
python experiments/width_depth/main.py report [--name small|large]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from src.cli.experiment import experiment_main  # noqa: E402
from src.searches.experiment import random_search  # noqa: E402

SPACE = {"cnn.width": [8, 16, 32], "cnn.n_blocks": [1, 2, 3], "supervised.lr": ("log", 1e-4, 1e-1)}
SEARCHES = {
    "small": random_search(SPACE, n=4, seed=0, fixed={"training_loop.n_epochs": 2}),
    "large": random_search(SPACE, n=30, seed=0),
}

if __name__ == "__main__":
    sys.exit(experiment_main(Path(__file__).parent, SEARCHES, swept=list(SPACE)))
