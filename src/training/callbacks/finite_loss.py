"""FiniteLoss: stop the run at a NaN/inf training loss, naming the first bad step. No checkpoint is written after it:
the last good checkpoint stays; the run is marked failed (FAILED), not finished.

The check is batched: reading a GPU loss on the host every step would stall the GPU's queue, so the losses stay
on the device and are checked together every `check_every_n_steps` steps, before validation, at the end of each
epoch and before any checkpoint is written. (A checkpoint written on a signal between an optimizer step and this
callback's hook cannot see that step's loss.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from src.errors import UserError, integer
from src.training.callbacks.registry import CALLBACKS

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT


class NonFiniteLoss(UserError):
    pass


class FiniteLoss(pl.Callback):
    def __init__(self, check_every_n_steps: int = 50) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, detached loss)
        self.error: NonFiniteLoss | None = None  # once set, every later check raises it again

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        self.pending.append((trainer.global_step, trainer.current_epoch, loss.detach()))
        if len(self.pending) >= self.check_every_n_steps:
            self.check(trainer, all_processes=True)

    def check(self, trainer: pl.Trainer, all_processes: bool) -> None:
        """Raise at the first non-finite pending loss (one device-to-host copy). With `all_processes` (a point
        every process reaches together), a non-finite loss in any process stops them all: none waits for the
        others in a collective that never comes."""
        if self.pending and self.error is None:
            pending, self.pending = self.pending, []
            losses = torch.stack([loss if loss.ndim == 0 else loss.sum() for _, _, loss in pending])
            finite = torch.isfinite(losses).cpu()  # a sum is finite only if every term is
            if not bool(finite.all()):
                step, epoch, loss = pending[int((~finite).nonzero()[0])]
                self.error = NonFiniteLoss(
                    f"Training loss is {loss.float().mean().item()} at step {step} (epoch {epoch + 1}); stopped, the "
                    "last good checkpoint is kept. Lower the learning rate or clip gradients "
                    "(training_loop.gradient_clip_val)."
                )
        if all_processes and trainer.world_size > 1:
            if trainer.strategy.reduce_boolean_decision(self.error is not None, all=False) and self.error is None:
                self.error = NonFiniteLoss(
                    f"Training loss is not finite in another process (by step {trainer.global_step}, epoch "
                    f"{trainer.current_epoch + 1}); stopped, the last good checkpoint is kept."
                )
        if self.error is not None:
            raise self.error

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, all_processes=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, all_processes=True)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Raising here aborts the save before anything is written (Lightning calls this while building the
        # checkpoint). Local only: a save (e.g. on a SLURM signal) need not happen in every process at once.
        self.check(trainer, all_processes=False)


@CALLBACKS.register("finite_loss")
def finite_loss(run_dir: str, check_every_n_steps: int = 50) -> FiniteLoss:
    """check_every_n_steps: how often the losses are read from the device (also: before validation and saves)."""
    return FiniteLoss(integer("finite_loss.check_every_n_steps", check_every_n_steps))
