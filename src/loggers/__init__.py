"""Experiment trackers chosen by name. Importing this package registers every logger.

tensorboard is always installed; mlflow, neptune and wandb are optional extras (requirements-extras.txt), imported
only when used: a missing one is a one-line error that says what to install.
"""

from src.loggers import mlflow, neptune, tensorboard, wandb  # noqa: F401  (registration)
from src.loggers.registry import LOGGERS

__all__ = ["LOGGERS"]
