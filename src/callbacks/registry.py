"""The registry of callbacks: `training_loop.callbacks = ['progress_log', 'lr_schedule']`.

Every callback builder takes the run folder as `run_dir` (keyword) plus its own gin-configurable parameters.
"""

from src.registry import RUN_OFFERS, Registry

CALLBACKS = Registry("callback", offers=RUN_OFFERS)
