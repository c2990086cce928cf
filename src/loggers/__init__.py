"""Experiment trackers chosen by name. Importing this package registers every logger."""

from src.loggers import tensorboard  # noqa: F401  (registration)
from src.loggers.registry import LOGGERS

__all__ = ["LOGGERS"]
