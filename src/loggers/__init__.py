"""Experiment trackers chosen by name (src/loggers/registry.py). Importing this package imports every module in it,
which registers what it defines: a new file in src/loggers/ is registered without any other edit.

tensorboard is always installed; mlflow, neptune and wandb are optional extras (requirements-extras.txt), imported
only when used: a missing one is a one-line error that says what to install.
"""

from src.loggers.registry import LOGGERS
from src.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["LOGGERS"]
