"""Optimisers and learning-rate schedules by name, for the modules' `configure_optimizers`. The schedule is torch's
(stepped by Lightning at each epoch's end, kept in checkpoints): one place changes the learning rate.

    scheduler = 'none'                                       # the configured lr throughout
    scheduler = 'cosine'                                     # cosine annealing to 0 over the run's epochs
    scheduler = 'steps'; schedule = [(0, 1.0), (80, 0.1)]    # from epoch 80 on (0-based), 0.1 x the configured lr
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from pytorch_lightning.utilities.types import OptimizerLRScheduler

from src.errors import UserError, is_number, unknown

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine", "steps")


def check(optimizer: str, scheduler: str, lr: float, schedule: Sequence[Sequence[float]] = ((0, 1.0),)) -> None:
    if optimizer not in OPTIMIZERS:
        raise UserError(unknown("optimizer", optimizer, OPTIMIZERS))
    if scheduler not in SCHEDULERS:
        raise UserError(unknown("scheduler", scheduler, SCHEDULERS))
    if not is_number(lr) or not lr > 0:
        raise UserError(f"lr must be a positive number, got {lr!r}.")
    for point in schedule:
        if len(point) != 2 or not isinstance(point[0], int) or point[0] < 0 or not is_number(point[1]):
            raise UserError(
                f"schedule {list(schedule)!r}: give (epoch, multiplier) pairs, e.g. [(0, 1.0), (30, 0.1)], with "
                "epochs >= 0 (counted from 0) and numbers as multipliers."
            )


def multiplier(schedule: Sequence[Sequence[float]], epoch: int) -> float:
    """The multiplier of the last (start epoch, multiplier) pair that has started by `epoch` (1.0 before any)."""
    found = 1.0
    for start, factor in sorted((int(e), float(m)) for e, m in schedule):
        if epoch >= start:
            found = factor
    return found


def configure(
    parameters: Iterable[torch.nn.Parameter],
    optimizer: str,
    lr: float,
    weight_decay: float,
    momentum: float,
    scheduler: str,
    max_epochs: int,
    schedule: Sequence[Sequence[float]] = ((0, 1.0),),
) -> OptimizerLRScheduler:
    """What Lightning's `configure_optimizers` returns: the optimiser, with its per-epoch schedule if any."""
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if optimizer == "sgd":
        kwargs.update(momentum=momentum, nesterov=momentum > 0)
    built = OPTIMIZERS[optimizer](parameters, **kwargs)
    schedule_: torch.optim.lr_scheduler.LRScheduler
    if scheduler == "cosine":
        schedule_ = torch.optim.lr_scheduler.CosineAnnealingLR(built, T_max=max_epochs)
    elif scheduler == "steps":
        points = [(int(e), float(m)) for e, m in schedule]
        schedule_ = torch.optim.lr_scheduler.LambdaLR(built, lambda epoch: multiplier(points, epoch))
    else:
        return built
    return {"optimizer": built, "lr_scheduler": {"scheduler": schedule_, "interval": "epoch"}}
