"""ema and swa: Lightning's weight averaging (WeightAveraging, torch's AveragedModel) with run-folder semantics. The
averaged weights are the model: validation runs on them (so best.ckpt is chosen by them), every checkpoint's
`state_dict` holds them (best.ckpt, and with it the final test, bin/evaluate.py and load_model use them), and the
training weights travel beside them in the checkpoint (`current_model_state`), so a resumed run is exact. One run has
at most one of them: two averages cannot both be the model (their weight swaps around validation would nest wrongly
and leave averaged weights in training)."""

from __future__ import annotations

from typing import Any

import gin
import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging, WeightAveraging
from pytorch_lightning.trainer.states import TrainerFn

from src.callbacks.registry import CALLBACKS
from src.errors import UserError, integer, is_number


class RunFolderAveraging:
    """Mixin: testing a checkpoint keeps the averaged weights of its state_dict (Lightning's callback would put the
    training weights back, as it does when resuming a fit); before the first update of the average (swa before
    swa_epoch_start, ema before start_step) the model is the training weights, not the untrained copy."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # The builders refuse two averages chosen by name (training_loop.callbacks); this catches any other way in.
        callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning's callback connector
        others = [type(c).__name__ for c in callbacks if isinstance(c, WeightAveraging) and c is not self]
        if others:
            raise UserError(
                f"Two weight averages in one run ({type(self).__name__} and {', '.join(others)}): they cannot both be "
                "the model; keep one."
            )
        super().setup(trainer, pl_module, stage)  # type: ignore[misc]

    def _averaging(self) -> bool:
        average = self._average_model  # type: ignore[attr-defined]
        return average is not None and int(average.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swapped = self._averaging()
        if self._swapped:
            super().on_validation_epoch_start(trainer, pl_module)  # type: ignore[misc]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(self, "_swapped", False):
            super().on_validation_epoch_end(trainer, pl_module)  # type: ignore[misc]

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._averaging():
            super().on_train_end(trainer, pl_module)  # type: ignore[misc]

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)  # type: ignore[misc]
        if "current_model_state" in checkpoint and not self._averaging():
            checkpoint["state_dict"] = checkpoint["current_model_state"]

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)  # type: ignore[misc]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}  # type: ignore[misc]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)


class RunEMA(RunFolderAveraging, EMAWeightAveraging):
    pass


class RunSWA(RunFolderAveraging, WeightAveraging):
    """Equal-weight average of the weights at the end of every epoch from `swa_epoch_start` (0-based) on."""

    def __init__(self, swa_epoch_start: int, swa_lrs: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.swa_epoch_start, self.swa_lrs = swa_epoch_start, swa_lrs

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.swa_lrs is not None and trainer.current_epoch >= self.swa_epoch_start:
            for optimizer in trainer.optimizers:  # after the schedule's own step: the constant SWA learning rate wins
                for group in optimizer.param_groups:
                    group["lr"] = self.swa_lrs

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self.swa_epoch_start


AVERAGES = ("ema", "swa")  # the callbacks below: one run has at most one


def refuse_another_average(name: str) -> None:
    """A UserError if training_loop.callbacks (as bound in gin, as every entry point does) names another average."""
    try:
        chosen = gin.get_bindings("training_loop").get("callbacks", ())
    except ValueError:  # training_loop not imported: nothing chose this callback by name
        return
    both = [c for c in dict.fromkeys(chosen) if c in AVERAGES]
    if name in both and len(both) > 1:
        raise UserError(
            f"training_loop.callbacks has both {both[0]!r} and {both[1]!r}: two weight averages cannot both be the "
            "model (validation swaps and resume would mix them up); keep one."
        )


@CALLBACKS.register("ema")
def ema(run_dir: str, decay: float = 0.999, update_every_n_steps: int = 1, start_step: int | None = None) -> RunEMA:
    """An exponential moving average of the weights, updated every `update_every_n_steps` optimizer steps (from
    `start_step` on), with `decay` per update."""
    refuse_another_average("ema")
    if not (is_number(decay) and 0.0 < decay < 1.0):
        raise UserError(f"ema.decay must be a number between 0 and 1 (exclusive), got {decay!r}.")
    update_every_n_steps = integer("ema.update_every_n_steps", update_every_n_steps)
    if start_step is not None:
        start_step = integer("ema.start_step", start_step, at_least=0)
    return RunEMA(decay=decay, update_every_n_steps=update_every_n_steps, update_starting_at_step=start_step)


@CALLBACKS.register("swa")
def swa(run_dir: str, swa_epoch_start: int = 1, swa_lrs: float | None = None) -> pl.Callback:
    """Stochastic weight averaging: the mean of the weights at the end of each epoch from `swa_epoch_start` (1-based
    epoch) on; with `swa_lrs`, the learning rate is held at that value from that epoch on."""
    refuse_another_average("swa")
    if isinstance(swa_epoch_start, bool) or not isinstance(swa_epoch_start, int) or swa_epoch_start < 1:
        raise UserError(f"swa.swa_epoch_start must be a positive integer (an epoch, 1-based), got {swa_epoch_start!r}.")
    if swa_lrs is not None and not (is_number(swa_lrs) and swa_lrs > 0):
        raise UserError(f"swa.swa_lrs must be a positive learning rate (a number) or None, got {swa_lrs!r}.")
    return RunSWA(swa_epoch_start=swa_epoch_start - 1, swa_lrs=swa_lrs)
