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
        self._sums: dict[str, tuple[torch.Tensor, int]] = {}  # stage -> ([loss x n, correct] summed, examples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        # Epoch means weighted by examples, summed here and logged once per epoch: Lightning's self.log walks its
        # whole metric state on every call (~0.4 ms on a CPU), more than a small model's step.
        with torch.no_grad():
            sums = torch.stack((loss.detach() * len(y), (logits.argmax(-1) == y).sum(dtype=loss.dtype)))
            total, count = self._sums.get(stage, (0, 0))
            self._sums[stage] = (total + sums, count + len(y))
        return loss

    def _log_epoch(self, stage: str) -> None:
        """Log the stage's mean loss and accuracy over the epoch's examples (of all processes: Lightning's sync
        sums value x batch_size and batch sizes across them)."""
        if stage not in self._sums:
            return
        sums, count = self._sums.pop(stage)
        for name, total in zip(("loss", "acc"), sums, strict=True):
            self.log(
                f"{stage}_{name}",
                total / count,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "acc" or stage == "train",
                batch_size=count,
                sync_dist=True,
            )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0:
            self._sums.pop("train", None)
        loss = self._step(batch, "train")
        # Logged with the epoch's last batch: callbacks' on_train_epoch_end (history.csv) run before the module's.
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._log_epoch("train")
        return loss

    def on_train_epoch_end(self) -> None:
        if "train" in self._sums:  # a loader without a length: the last batch was not recognised
            self._log_epoch("train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "valid")

    def on_validation_epoch_start(self) -> None:
        self._sums.pop("valid", None)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("valid")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self._sums.pop("test", None)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "train" in self._sums:  # a mid-epoch checkpoint (SLURM preemption) keeps the partial epoch's sums
            checkpoint["supervised_train_sums"] = self._sums["train"]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "supervised_train_sums" in checkpoint:
            self._sums["train"] = checkpoint["supervised_train_sums"]

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        kwargs = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name == "sgd":
            kwargs.update(momentum=self.momentum, nesterov=self.momentum > 0)
        optimizer = OPTIMIZERS[self.optimizer_name](self.parameters(), **kwargs)
        if self.scheduler_name == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        return optimizer
