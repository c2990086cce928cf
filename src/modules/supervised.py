"""SupervisedLearning: a model trained to map inputs to targets with a loss chosen by name; the metrics follow the
loss, and the optimiser and schedule live here.

    supervised.loss = 'cross_entropy'   # classification: logits (N, C), int labels (N,)     -> loss, acc
    supervised.loss = 'bce'             # binary / multi-label: logits, 0/1 targets (float)  -> loss, acc
    supervised.loss = 'mse'             # regression: values, float targets of that shape    -> loss, mse, mae
    supervised.loss = 'l1'              #                                                     -> loss, mse, mae
    supervised.target = 'input'         # reconstruct the input (autoencoders): labels are never used
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import UserError, unknown

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import OptimizerLRScheduler
from src.modules import optim
from src.modules.epoch_metrics import EpochMetricsModule
from src.modules.registry import MODULES


@dataclass(frozen=True)
class Loss:
    metrics: dict[str, str]  # name -> direction, besides the loss
    main: str  # picks best.ckpt


LOSSES = {
    "cross_entropy": Loss({"acc": "max"}, "acc"),
    "bce": Loss({"acc": "max"}, "acc"),
    "mse": Loss({"mse": "min", "mae": "min"}, "mse"),
    "l1": Loss({"mse": "min", "mae": "min"}, "mae"),
}
TARGETS = ("label", "input")


@MODULES.register("supervised", denylist=("model",))
class SupervisedLearning(EpochMetricsModule):
    """loss in cross_entropy|bce|mse|l1; target in label|input; optimizer in adam|adamw|sgd; scheduler in
    none|cosine|steps (per epoch; steps: `schedule` of (epoch, lr multiplier), src/modules/optim.py)."""

    def __init__(
        self,
        model: nn.Module,
        loss: str = "cross_entropy",
        target: str = "label",
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: str = "none",
        schedule: Sequence[tuple[int, float]] = ((0, 1.0),),
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise UserError(unknown("loss", loss, LOSSES))
        if target not in TARGETS:
            raise UserError(unknown("target", target, TARGETS))
        optim.check(optimizer, scheduler, lr, schedule)
        # Lightning's `load_from_checkpoint(path, model=...)` rebuilds the module from these (the model is the
        # caller's: src/results.load_model rebuilds both from the run folder); the trackers get the run's config.
        self.save_hyperparameters(ignore=["model"], logger=False)
        self.model = model
        self.loss_name, self.target = loss, target
        self.metric_directions = {"loss": "min", **LOSSES[loss].metrics}
        self.main_metric = LOSSES[loss].main
        self.lr, self.optimizer_name, self.weight_decay, self.momentum = lr, optimizer, weight_decay, momentum
        self.scheduler_name, self.schedule, self.label_smoothing = scheduler, schedule, label_smoothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        if self.target == "input":
            y = x
        out = self(x)
        if self.loss_name == "cross_entropy":
            loss = F.cross_entropy(out, y, label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        elif self.loss_name == "bce":
            loss = F.binary_cross_entropy_with_logits(out, y.to(out.dtype))
        else:
            loss = (F.mse_loss if self.loss_name == "mse" else F.l1_loss)(out, y.to(out.dtype))
        with torch.no_grad():
            self.accumulate(stage, len(y), loss=loss * len(y), **self.metric_sums(out, y))
        return loss

    def metric_sums(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch's sums over examples of the metrics besides the loss (each example weighs the same)."""
        if self.loss_name == "cross_entropy":
            return {"acc": (out.argmax(-1) == y).sum(dtype=out.dtype)}
        n = len(y)
        if self.loss_name == "bce":
            return {"acc": ((out > 0) == (y > 0.5)).to(out.dtype).reshape(n, -1).mean(1).sum()}
        error = (out - y.to(out.dtype)).reshape(n, -1)
        return {"mse": error.square().mean(1).sum(), "mae": error.abs().mean(1).sum()}

    def configure_optimizers(self) -> OptimizerLRScheduler:
        return optim.configure(
            self.parameters(),
            self.optimizer_name,
            self.lr,
            self.weight_decay,
            self.momentum,
            self.scheduler_name,
            self.trainer.max_epochs or 1,
            self.schedule,
        )
