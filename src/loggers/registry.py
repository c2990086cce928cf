"""The registry of experiment trackers: `training_loop.loggers = ['tensorboard']`.

`history.csv` is always written (src/training/callbacks/history.py); these are additional Lightning loggers, and each
receives what src/training/callbacks/tracker_metrics.py sends: history.csv's rows at its steps, the step loss and the
test metrics. Every logger builder takes the run folder as `run_dir` (keyword) plus its own gin-configurable parameters.
"""

from src.registry import RUN_OFFERS, Registry

LOGGERS = Registry("logger", offers=RUN_OFFERS)
