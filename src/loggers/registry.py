"""The registry of experiment trackers: `training_loop.loggers = ['tensorboard']`.

`history.csv` is always written (src/callbacks/history.py); these are additional Lightning loggers.
Every logger builder takes the run folder as `run_dir` (keyword) plus its own gin-configurable parameters.
"""

from src.registry import Registry

LOGGERS = Registry("logger")
