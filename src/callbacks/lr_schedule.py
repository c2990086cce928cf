"""LRSchedule: epoch-based learning-rate multipliers, e.g. `lr_schedule.schedule = [(0, 1.0), (30, 0.1), (60, 0.01)]`
(from epoch 30 on, lr = 0.1 x the configured lr). Epochs count from 0."""

from __future__ import annotations

from collections.abc import Iterable

import pytorch_lightning as pl

from src.callbacks.registry import CALLBACKS

BASE_LR = "lr_before_schedule"  # stored in the param group, so it travels with the optimizer state on resume


class LRSchedule(pl.Callback):
    def __init__(self, schedule: Iterable[tuple[int, float]]) -> None:
        self.schedule = sorted((int(epoch), float(multiplier)) for epoch, multiplier in schedule)

    def multiplier(self, epoch: int) -> float:
        current = 1.0
        for start, multiplier in self.schedule:
            if epoch >= start:
                current = multiplier
        return current

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        multiplier = self.multiplier(trainer.current_epoch)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault(BASE_LR, group["lr"])
                group["lr"] = group[BASE_LR] * multiplier


@CALLBACKS.register("lr_schedule")
def lr_schedule(run_dir: str, schedule: Iterable[tuple[int, float]] = ((0, 1.0),)) -> LRSchedule:
    return LRSchedule(schedule)
