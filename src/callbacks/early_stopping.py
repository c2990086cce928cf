"""early_stopping: Lightning's EarlyStopping as a way for a run to finish. The stop (why, at which epoch) goes to
meta.json (`stopped_early`), the run is `finished`, and the same command again does nothing (src/run/status.py). The
callback's state (best score, epochs without improvement, whether it stopped) travels in the checkpoint, so a run
stopped and resumed before the early stop stops at the same epoch as an uninterrupted one; one resumed from the very
checkpoint of the stopping epoch stops again at once."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping

from src.callbacks.registry import CALLBACKS
from src.errors import UserError, did_you_mean, integer, number


class RunEarlyStopping(EarlyStopping):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopped = False

    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        super()._run_early_stopping_check(trainer)
        if trainer.should_stop and self.stopped_epoch == trainer.current_epoch:
            self.stopped = True

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stopped": self.stopped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience  # the configured one: a larger patience set deliberately is not undone
        super().load_state_dict(state_dict)
        self.patience = patience
        self.stopped = bool(state_dict.get("stopped", False)) and self.wait_count >= self.patience

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stopped:  # resumed from the checkpoint of the stopping epoch (killed before the test): stop again
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from src.training.callbacks.meta_saver import MetaSaver

        if not self.stopped or not trainer.is_global_zero:
            return
        best = float(self.best_score)
        stop = {
            "reason": "early_stopping",
            "epoch": self.stopped_epoch + 1,  # 1-based, as history.csv counts
            "n_epochs": trainer.max_epochs,
            "monitor": self.monitor,
            "mode": self.mode,
            "best": best,
            "patience": self.patience,
            "min_delta": abs(self.min_delta),
            "message": self.stopping_reason_message
            or f"{self.monitor} did not improve for {self.wait_count} epochs (best {best:.6g})",
        }
        for callback in trainer.callbacks:  # type: ignore[attr-defined]  # set by Lightning's callback connector
            if isinstance(callback, MetaSaver):
                callback.record_stop(stop)
        print(f"early stopping after epoch {stop['epoch']} of {trainer.max_epochs}: {stop['message']}")


@CALLBACKS.register("early_stopping", denylist=("metrics",))
def early_stopping(
    run_dir: str,
    metrics: dict[str, Any],
    patience: int = 3,
    min_delta: float = 0.0,
    monitor: str | None = None,
    mode: str | None = None,
) -> RunEarlyStopping:
    """Stop when `monitor` (default: the module's main metric) has not improved by more than `min_delta` for
    `patience` epochs, in `mode` (default: its declared direction)."""
    monitor = monitor or metrics["main"]
    if monitor not in metrics["directions"]:  # with or without `mode`: Lightning would fail only after an epoch
        raise UserError(
            f"early_stopping.monitor {monitor!r} is not a metric the module logs; it logs: "
            f"{', '.join(metrics['directions'])}.{did_you_mean(monitor, metrics['directions'])}"
        )
    mode = mode or metrics["directions"][monitor]
    if mode not in ("min", "max"):
        raise UserError(f"early_stopping.mode must be 'min' or 'max', got {mode!r}.")
    patience = integer("early_stopping.patience", patience, at_least=0)
    min_delta = number("early_stopping.min_delta", min_delta, positive=False)
    return RunEarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, strict=True)
