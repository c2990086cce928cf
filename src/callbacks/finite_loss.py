"""FiniteLoss: stop the run at a NaN/inf training loss, naming the first bad step. No checkpoint is written after it:
the last good checkpoint stays; the run is marked failed (FAILED), not finished.

The check is batched: reading a GPU loss on the host every step would stall the GPU's queue, so the losses stay
on the device and are checked together every `check_every_n_steps` steps, before validation, at the end of each
epoch and before any checkpoint is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from src.callbacks.registry import CALLBACKS
from src.errors import UserError

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT


class NonFiniteLoss(UserError):
    pass


class FiniteLoss(pl.Callback):
    def __init__(self, check_every_n_steps: int = 50) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, detached loss)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self.pending.append((trainer.global_step, trainer.current_epoch, loss.detach()))
        if len(self.pending) >= self.check_every_n_steps:
            self.check()

    def check(self) -> None:
        """Read the pending losses (one device-to-host copy); raise at the first non-finite one."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        losses = torch.stack([loss if loss.ndim == 0 else loss.sum() for _, _, loss in pending])
        finite = torch.isfinite(losses).cpu()  # a sum is finite only if every term is
        if bool(finite.all()):
            return
        step, epoch, loss = pending[int((~finite).nonzero()[0])]
        raise NonFiniteLoss(
            f"Training loss is {loss.float().mean().item()} at step {step} (epoch {epoch + 1}); stopped, the last "
            "good checkpoint is kept. Lower the learning rate or clip gradients (training_loop.gradient_clip_val)."
        )

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.check()  # raising here aborts the save: no checkpoint of diverged weights


@CALLBACKS.register("finite_loss")
def finite_loss(run_dir: str, check_every_n_steps: int = 50) -> FiniteLoss:
    """check_every_n_steps: how often the losses are read from the device (also: before validation and saves)."""
    return FiniteLoss(check_every_n_steps)
