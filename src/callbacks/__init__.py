"""Callbacks chosen by name. Importing this package registers every callback."""

from src.callbacks import (  # noqa: F401  (registration)
    checkpoint,
    finite_loss,
    heartbeat,
    history,
    lr_schedule,
    meta_saver,
    preemption,
    progress_log,
    rng_state,
    tracker_metrics,
)
from src.callbacks.registry import CALLBACKS

__all__ = ["CALLBACKS"]
