"""TrackerMetrics: what the experiment trackers (src/loggers/) receive, the same for every tracker.

- every row of history.csv, at the row's `step` (all its columns but `step` itself), when the row is written; a
  tracker run that starts on a resumed training (`new_run`, src/loggers/common.py) gets the earlier rows first;
- the training loss every `step_loss_every` optimizer steps, as `train_loss_step` (0: never). Reading the loss
  waits for the device only at those steps;
- the test metrics after training (eval_results.json), at the last step.

Lightning would also send the module's `self.log` values to the trackers itself, stage by stage and at one step less
than history.csv's; that path is switched off, so that a tracker shows what history.csv holds, at the same steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from src.errors import UserError
from src.training.callbacks.history import HistoryWriter
from src.training.callbacks.registry import CALLBACKS

if TYPE_CHECKING:
    from pytorch_lightning.loggers import Logger
    from pytorch_lightning.utilities.types import STEP_OUTPUT

STEP_LOSS = "train_loss_step"


def send(loggers: Sequence[Logger], metrics: dict[str, float], step: int, save: bool = True) -> None:
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
        if save:
            logger.save()


def send_row(loggers: Sequence[Logger], row: dict[str, Any]) -> None:
    send(loggers, {k: v for k, v in row.items() if k != "step"}, step=row["step"])


def mute_lightning_logging(trainer: pl.Trainer) -> None:
    """Stop Lightning from sending `self.log` values to the loggers (they reach them through history.csv's rows).
    Lightning's logger connector is private API: tests/end_to_end/test_loggers.py checks the steps trackers receive."""
    trainer._logger_connector.log_metrics = lambda metrics, step=None: None  # type: ignore[method-assign]


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


class TrackerMetrics(pl.Callback):
    def __init__(self, step_loss_every: int) -> None:
        if isinstance(step_loss_every, bool) or not isinstance(step_loss_every, int) or step_loss_every < 0:
            raise UserError(
                f"tracker_metrics.step_loss_every must be a whole number of steps (0: off), got {step_loss_every!r}."
            )
        self.step_loss_every = step_loss_every
        self._sent_rows = 0  # rows of history.csv this attempt has sent (or that an earlier attempt sent)
        self._step_before = 0
        self._loss: torch.Tensor | None = None  # the summed loss of the micro-batches of a step to be logged
        self.history: HistoryWriter | None = None  # whose rows it sends (src/training/callbacks/every_run.py)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        mute_lightning_logging(trainer)

    def _history(self, trainer: pl.Trainer) -> list[dict]:
        return self.history.rows if self.history is not None else []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows = self._history(trainer)  # restored from a checkpoint: sent when written, except to new tracker runs
        new_runs = [logger for logger in trainer.loggers if getattr(logger, "new_run", False)]
        for row in rows:
            send_row(new_runs, row)
        self._sent_rows = len(rows)
        self._loss = None
        self._step_before = trainer.global_step  # the optimizer steps done before the next batch

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        if not self.step_loss_every or not trainer.loggers or not trainer.is_global_zero:
            return
        if (self._step_before + 1) % self.step_loss_every == 0:  # this batch counts towards a step to be logged
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if isinstance(loss, torch.Tensor):  # Lightning divided it by accumulate_grad_batches: the sum is the mean
                self._loss = loss.detach() if self._loss is None else self._loss + loss.detach()
        if trainer.global_step > self._step_before:  # that step is done
            self._step_before = trainer.global_step
            if self._loss is not None:
                loss, self._loss = self._loss, None
                send(trainer.loggers, {STEP_LOSS: loss.item()}, step=trainer.global_step, save=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._send_rows(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._send_rows(trainer)

    def _send_rows(self, trainer: pl.Trainer) -> None:
        rows = self._history(trainer)
        for row in rows[self._sent_rows :]:
            send_row(trainer.loggers, row)
        self._sent_rows = len(rows)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        send(trainer.loggers, scalars(trainer.callback_metrics), step=trainer.global_step)


@CALLBACKS.register("tracker_metrics")
def tracker_metrics(run_dir: str, step_loss_every: int = 50) -> TrackerMetrics:
    return TrackerMetrics(step_loss_every)
