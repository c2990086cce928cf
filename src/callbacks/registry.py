"""The registry of callbacks: `training_loop.callbacks = ['progress_log', 'early_stopping']`.

Every callback builder takes the run folder as `run_dir` (keyword) plus its own gin-configurable parameters; it may
also take `metrics`, the module's declared metrics. (The registry itself lives with the callbacks every run has,
src/training/callbacks/registry.py.)
"""

from src.training.callbacks.registry import CALLBACKS

__all__ = ["CALLBACKS"]
