"""Optimisers and learning-rate schedules by name, for the modules' `configure_optimizers`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from pytorch_lightning.utilities.types import OptimizerLRScheduler

from src.errors import UserError, unknown

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine")


def check(optimizer: str, scheduler: str, lr: float) -> None:
    if optimizer not in OPTIMIZERS:
        raise UserError(unknown("optimizer", optimizer, OPTIMIZERS))
    if scheduler not in SCHEDULERS:
        raise UserError(unknown("scheduler", scheduler, SCHEDULERS))
    if not lr > 0:
        raise UserError(f"lr must be positive, got {lr!r}.")


def configure(
    parameters: Iterable[torch.nn.Parameter],
    optimizer: str,
    lr: float,
    weight_decay: float,
    momentum: float,
    scheduler: str,
    max_epochs: int,
) -> OptimizerLRScheduler:
    """What Lightning's `configure_optimizers` returns: the optimiser, with its per-epoch schedule if any."""
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if optimizer == "sgd":
        kwargs.update(momentum=momentum, nesterov=momentum > 0)
    built = OPTIMIZERS[optimizer](parameters, **kwargs)
    if scheduler == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(built, T_max=max_epochs)
        return {"optimizer": built, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
    return built
