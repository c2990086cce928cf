"""TrackerMetrics: what the experiment trackers (src/loggers/) receive besides what Lightning sends them.

Lightning sends every `self.log` value of the module to the trackers itself, as usual: per-step values every
`training_loop.log_every_n_steps` steps, an epoch's values at the index of its last step (one less than history.csv's
`step`, which counts the steps done), the test metrics after the test. This callback adds, the same for every
tracker and at the steps Lightning uses:

- history.csv's own columns, which no `self.log` produced (the learning rates, `epoch_time`, `examples_per_s`), with
  the epoch's metrics; a tracker run that starts on a resumed training (`new_run`, src/loggers/common.py) first gets
  the earlier epochs' rows, which Lightning sent to the tracker runs before it;
- the training loss every `step_loss_every` steps, as `train_loss_step` (0: never). Reading the loss waits for the
  device only at those steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from src.errors import UserError
from src.run.metric_directions import is_metric
from src.training.callbacks.history import HistoryWriter, steps_done
from src.training.callbacks.registry import CALLBACKS

if TYPE_CHECKING:
    from pytorch_lightning.loggers import Logger
    from pytorch_lightning.utilities.types import STEP_OUTPUT

STEP_LOSS = "train_loss_step"


def send(loggers: Sequence[Logger], metrics: dict[str, float], step: int) -> None:
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
        logger.save()


def own_columns(row: dict[str, Any]) -> dict[str, Any]:
    """The columns of a history row that the template adds itself (no `self.log` made them)."""
    return {k: v for k, v in row.items() if k not in ("epoch", "step") and not is_metric(k)}


class TrackerMetrics(pl.Callback):
    def __init__(self, step_loss_every: int) -> None:
        if isinstance(step_loss_every, bool) or not isinstance(step_loss_every, int) or step_loss_every < 0:
            raise UserError(
                f"tracker_metrics.step_loss_every must be a whole number of steps (0: off), got {step_loss_every!r}."
            )
        self.step_loss_every = step_loss_every
        self._sent_rows = 0  # rows of history.csv this attempt has sent (or that an earlier attempt sent)
        self._global_before = 0  # the trainer's global_step after the last batch that stepped
        self._loss: torch.Tensor | None = None  # the summed loss of the micro-batches of a step to be logged
        self.history: HistoryWriter | None = None  # whose rows it sends (src/training/callbacks/every_run.py)

    def _rows(self) -> list[dict]:
        return self.history.rows if self.history is not None else []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows = self._rows()  # restored from a checkpoint: already sent, except to tracker runs that start now
        new_runs = [logger for logger in trainer.loggers if getattr(logger, "new_run", False)]
        for row in rows:
            send(new_runs, {k: v for k, v in row.items() if k not in ("epoch", "step")}, step=row["step"] - 1)
        self._sent_rows = len(rows)
        self._loss = None
        self._global_before = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        if not self.step_loss_every or not trainer.loggers or not trainer.is_global_zero:
            return
        index = steps_done(trainer)  # of the step this batch belongs to (Lightning counts it after this hook)
        if (index + 1) % self.step_loss_every == 0:  # this batch counts towards a step to be logged
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if isinstance(loss, torch.Tensor):  # Lightning divided it by accumulate_grad_batches: the sum is the mean
                self._loss = loss.detach() if self._loss is None else self._loss + loss.detach()
        if trainer.global_step > self._global_before:  # an optimizer stepped in this batch: the step is done
            self._global_before = trainer.global_step
            if self._loss is not None:  # logged at the step's index, as Lightning logs a step's values
                loss, self._loss = self._loss, None
                send(trainer.loggers, {STEP_LOSS: loss.item()}, step=index)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._send_rows(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._send_rows(trainer)

    def _send_rows(self, trainer: pl.Trainer) -> None:
        rows = self._rows()
        for row in rows[self._sent_rows :]:
            if own := own_columns(row):
                send(trainer.loggers, own, step=row["step"] - 1)  # with the epoch's metrics, where Lightning puts them
        self._sent_rows = len(rows)


@CALLBACKS.register("tracker_metrics")
def tracker_metrics(run_dir: str, step_loss_every: int = 50) -> TrackerMetrics:
    return TrackerMetrics(step_loss_every)
