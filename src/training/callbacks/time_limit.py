"""The wall-time limit of one attempt (`training_loop.max_time`, Lightning's Timer and its formats: "00:12:00:00"
DD:HH:MM:SS, {"hours": 12}, a timedelta): when it is up, the run stops as a preempted one does (src/callbacks/
preemption.py): `preempted.ckpt` at the end of the current batch (or, after an epoch's last batch, the epoch's own
last.ckpt first), no test, status `dead` like after Ctrl-C, and the same command continues it exactly, with the full
time again (the limit is per attempt: a job's wall time, not the run's total)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from src.errors import UserError
from src.run import layout
from src.training.callbacks.preemption import Preempted

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT


DDP_EVERY_N_STEPS = 10  # with several processes, how often they agree whether the time is up


class TimeLimit(Timer):
    def __init__(self, run_dir: str, duration: Any) -> None:
        try:
            super().__init__(duration=duration, interval="step", verbose=False)
        except Exception as e:  # Lightning's parser: ValueError, TypeError, AttributeError
            raise UserError(
                f'training_loop.max_time {duration!r} is not a duration: use "DD:HH:MM:SS" (e.g. "00:11:45:00") or '
                'a dict such as {"hours": 11, "minutes": 45}.'
            ) from e
        if self._duration is not None and self._duration <= 0:
            raise UserError(f"training_loop.max_time {duration!r} is no positive duration: every attempt would stop "
                            "after its first step, and the run would never finish.")  # fmt: skip
        self.checkpoint = Path(run_dir) / layout.PREEMPTED_CKPT

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass  # the limit is per attempt: a continued run has all of it again

    def on_fit_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        pass  # Lightning's Timer checks a restored (depleted) clock here; this one starts afresh

    def _time_up(self, trainer: pl.Trainer) -> bool:
        up = self._duration is not None and self.time_elapsed() >= self._duration
        return bool(trainer.strategy.broadcast(up))  # rank zero's clock decides for every process

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        if trainer.world_size > 1 and trainer.global_step % DDP_EVERY_N_STEPS:
            return  # the clock is agreed on by a collective (a device sync): every few steps, the same in all processes
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if stepped and batch_idx + 1 < trainer.num_training_batches and self._time_up(trainer):
            trainer.save_checkpoint(self.checkpoint)
            self._stop(trainer, f"saved {self.checkpoint} after step {trainer.global_step}")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch > 0 and self._time_up(trainer):
            self._stop(trainer, f"stopped before epoch {trainer.current_epoch + 1}, which resumes from last.ckpt")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # Lightning's Timer would end the fit here as if it were complete; the next epoch's start stops it

    def _stop(self, trainer: pl.Trainer, what: str) -> None:
        if trainer.is_global_zero:
            print(
                f"time limit: training_loop.max_time ({self._duration:.0f} s) is up: {what}; "
                "run the same command again to continue",
                file=sys.stderr,
            )
        raise Preempted


def time_limit(run_dir: str, max_time: Any) -> list[pl.Callback]:
    """The callbacks that enforce `training_loop.max_time` (none when it is None)."""
    return [] if max_time is None else [TimeLimit(run_dir, max_time)]
