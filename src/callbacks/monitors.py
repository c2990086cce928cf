"""lr_monitor and model_summary: Lightning's LearningRateMonitor and ModelSummary by name."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor, ModelSummary

from src.callbacks.registry import CALLBACKS
from src.errors import UserError, integer

NEEDS_A_LOGGER = (
    "lr_monitor logs to the trackers and training_loop.loggers is empty: add one (e.g. 'tensorboard'), or drop "
    "lr_monitor (history.csv has the learning rate of every epoch)."
)


class RunLearningRateMonitor(LearningRateMonitor):
    def on_train_start(self, trainer: pl.Trainer, *args: object, **kwargs: object) -> None:
        if not trainer.loggers:  # training_loop checks it first; this for any other way in
            raise UserError(NEEDS_A_LOGGER)
        super().on_train_start(trainer, *args, **kwargs)


@CALLBACKS.register("lr_monitor")
def lr_monitor(
    run_dir: str, logging_interval: str | None = "step", log_momentum: bool = False, log_weight_decay: bool = False
) -> LearningRateMonitor:
    """The learning rate of every parameter group, to the trackers, every step or epoch (`logging_interval`)."""
    if logging_interval not in (None, "step", "epoch"):
        raise UserError(f"lr_monitor.logging_interval must be 'step', 'epoch' or None, got {logging_interval!r}.")
    return RunLearningRateMonitor(
        logging_interval=logging_interval,  # type: ignore[arg-type]  # checked above
        log_momentum=log_momentum,
        log_weight_decay=log_weight_decay,
    )


@CALLBACKS.register("model_summary")
def model_summary(run_dir: str, max_depth: int = 2) -> ModelSummary:
    """The layer table at the start of training, `max_depth` levels of submodules deep (Lightning prints depth 1)."""
    return ModelSummary(max_depth=integer("model_summary.max_depth", max_depth, at_least=-1))  # -1: all levels
