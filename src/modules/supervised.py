"""SupervisedLearning: cross-entropy classification around any model; the optimiser and schedule live here."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from src.errors import UserError
from src.modules.registry import MODULES

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine")


@MODULES.register("supervised", denylist=("model",))
class SupervisedLearning(pl.LightningModule):
    """Cross-entropy classification; optimizer in adam|adamw|sgd, scheduler in none|cosine (per epoch)."""

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: str = "none",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise UserError(f"Unknown optimizer {optimizer!r}. Valid optimizer names: {', '.join(OPTIMIZERS)}.")
        if scheduler not in SCHEDULERS:
            raise UserError(f"Unknown scheduler {scheduler!r}. Valid scheduler names: {', '.join(SCHEDULERS)}.")
        if not lr > 0:
            raise UserError(f"lr must be positive, got {lr!r}.")
        self.model = model
        self.lr, self.optimizer_name, self.weight_decay, self.momentum = lr, optimizer, weight_decay, momentum
        self.scheduler_name, self.label_smoothing = scheduler, label_smoothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        acc = (logits.argmax(-1) == y).float().mean()
        # Epoch means only (weighted by batch size); sync_dist reduces them across processes once per epoch.
        for name, value in (("loss", loss), ("acc", acc)):
            self.log(
                f"{stage}_{name}",
                value,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "acc" or stage == "train",
                batch_size=len(y),
                sync_dist=True,
            )
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "valid")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        kwargs = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name == "sgd":
            kwargs.update(momentum=self.momentum, nesterov=self.momentum > 0)
        optimizer = OPTIMIZERS[self.optimizer_name](self.parameters(), **kwargs)
        if self.scheduler_name == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        return optimizer
