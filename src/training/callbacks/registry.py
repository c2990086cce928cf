"""The registry of callbacks: `training_loop.callbacks = ['progress_log', 'early_stopping']` (src/callbacks/registry.py
is the name to import it by). Defined here, with the callbacks every run has, so that they register without
importing src/callbacks/, whose files import them.

Every callback builder takes the run folder as `run_dir` (keyword) plus its own gin-configurable parameters.
"""

from src.registry import RUN_OFFERS, Registry

CALLBACKS = Registry("callback", offers=RUN_OFFERS)
