"""When a run saves its checkpoints: at every epoch's end, `best.ckpt` when the monitored metric (default: the
module's main metric, `valid_<main_metric>`, in its declared direction) improves, then `last.ckpt`. How they are
written and read (atomically, weights_only) is the checkpoint owner's, src/run/checkpoints.py, which Lightning reaches
through `RunCheckpointIO`."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from src.errors import UserError
from src.run import checkpoints
from src.training.callbacks.registry import CALLBACKS

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT


class RunCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O through the run's checkpoint owner (src/run/checkpoints.py): atomic writes that keep
    previous.ckpt, weights_only loads onto the CPU, and a checkpoint validated just before is not read again."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        checkpoints.save(checkpoint, Path(path))

    def load_checkpoint(
        self, path: str | Path, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return checkpoints.load(path)


class RunCheckpoint(ModelCheckpoint):
    """best.ckpt (by `monitor`) and last.ckpt, at every epoch's end and nowhere else (none of Lightning's per-batch
    bookkeeping). Lightning's own `save_last` writes last.ckpt only in epochs that improved best.ckpt."""

    CHECKPOINT_NAME_LAST = Path(checkpoints.LAST).stem

    def __init__(self, run_dir: str, monitor: str, mode: str) -> None:
        super().__init__(
            dirpath=run_dir,
            filename=Path(checkpoints.BEST).stem,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
            save_on_train_epoch_end=True,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Resumed: the checkpoint loaded holds this step already. An epoch that trains no step (a run resumed from
        # the checkpoint of its stopping epoch, which stops at once) must not save it again with the next epoch's
        # number: the run would end unlike an uninterrupted one.
        self._last_global_step_saved = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:  # Lightning's last save, unless nothing is new
            super().on_train_end(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        pass  # nothing is saved mid-epoch (a preemption checkpoint is the preemption callback's)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        if self.monitor not in monitor_candidates and not trainer.sanity_checking:
            logged = ", ".join(sorted(k for k in monitor_candidates if k not in ("epoch", "step"))) or "nothing"
            raise UserError(
                f"checkpoint.monitor {self.monitor!r} is not logged by the module (it logs: {logged}); set "
                "checkpoint.monitor to one of those, or log it."
            )
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A run folder moved or copied since the checkpoint (rsync from a cluster, `mv`) keeps its best score: the
        stored paths are read as relative to the folder (Lightning would drop the score and overwrite best.ckpt
        with a worse epoch)."""
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            state_dict = {**state_dict, "dirpath": self.dirpath}
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if isinstance(state_dict.get(key), str) and state_dict[key]:
                    state_dict[key] = os.path.join(self.dirpath, os.path.basename(state_dict[key]))
            if isinstance(state_dict.get("best_k_models"), dict):
                state_dict["best_k_models"] = {
                    os.path.join(self.dirpath, os.path.basename(k)): v for k, v in state_dict["best_k_models"].items()
                }
        super().load_state_dict(state_dict)

    @functools.cached_property
    def state_key(self) -> str:
        return super().state_key  # computed once: Lightning formats it for every hook it calls


@CALLBACKS.register("checkpoint", denylist=("metrics",))
def checkpoint(
    run_dir: str, metrics: dict[str, Any], monitor: str | None = None, mode: str | None = None
) -> RunCheckpoint:
    """best.ckpt: the best epoch by `monitor` (default: the module's main metric) in `mode` (default: its declared
    direction); last.ckpt: every epoch. `metrics` is the module's declaration (src/run/metric_directions.py), offered
    by the training loop."""
    directions = metrics["directions"]
    monitor = monitor or metrics["main"]
    if monitor not in directions and mode is None:
        raise UserError(
            f"checkpoint.monitor {monitor!r} is not a metric the module logs; it logs: {', '.join(directions)}."
        )
    mode = mode or directions[monitor]
    if mode not in ("min", "max"):
        raise UserError(f"checkpoint.mode must be 'min' or 'max', got {mode!r}.")
    return RunCheckpoint(run_dir, monitor, mode)
