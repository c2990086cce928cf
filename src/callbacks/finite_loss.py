"""FiniteLoss: stop the run at the first NaN/inf training loss, naming the step. The last good checkpoint stays;
the run is marked failed (FAILED), not finished."""

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
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            raise NonFiniteLoss(
                f"Training loss is {loss.item()} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch + 1}); stopped, the last good checkpoint is kept. "
                "Lower the learning rate or clip gradients (training_loop.gradient_clip_val)."
            )


@CALLBACKS.register("finite_loss")
def finite_loss(run_dir: str) -> FiniteLoss:
    return FiniteLoss()
