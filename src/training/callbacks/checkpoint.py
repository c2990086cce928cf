"""Checkpoints: `last.ckpt` every epoch and `best.ckpt` by the monitored metric (default: the module's main metric,
`valid_<main_metric>`, in its declared direction), written atomically (temporary file in the same folder, fsync,
rename): a crash never leaves half a checkpoint. A new last.ckpt removes the (older) preemption checkpoint."""

from __future__ import annotations

import functools
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from src.errors import UserError
from src.run import layout
from src.training.callbacks.registry import CALLBACKS

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        path = Path(path)
        if (where := unloadable(checkpoint)) is not None:
            raise UserError(
                f"{path.name} would hold {where}, which torch.load(weights_only=True) refuses, so the run could "
                "never resume from it: store Python numbers, strings, lists, dicts or tensors in checkpoints (a "
                "callback's state_dict, a module's on_save_checkpoint), e.g. float(x) for a numpy number."
            )
        if path.name == layout.LAST_CKPT and path.is_file():
            keep_previous(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~layout.UMASK)
            os.replace(tmp, path)
        except BaseException as e:
            full = layout.disk_full(e, path.parent)
            Path(tmp).unlink(missing_ok=True)
            if full:
                raise layout.no_space(path) from e
            raise
        if path.name == layout.LAST_CKPT:  # a newer epoch-end checkpoint: the preemption checkpoint is stale
            path.with_name(layout.PREEMPTED_CKPT).unlink(missing_ok=True)

    def load_checkpoint(
        self, path: str | Path, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        location = map_location or "cpu"  # torch.load takes a device name; Lightning's annotation says Callable
        return super().load_checkpoint(path, map_location=location, weights_only=True)  # type: ignore[arg-type]


SAFE_LEAVES = (int, float, bool, str, bytes, type(None))  # exactly these: numpy.float64 is a float subclass
CONTAINERS = (dict, OrderedDict, list, tuple, set, frozenset)


def unloadable(value: Any, where: str = "checkpoint") -> str | None:
    """Where in `value` something lies that weights_only loading refuses (`checkpoint['callbacks']['x']: a
    numpy.float64`), or None. Checkpoints are loaded with weights_only=True (a received one must not run code): a
    numpy number that a callback keeps would make every checkpoint unusable, and every resume start afresh."""
    if isinstance(value, torch.Tensor) or type(value) in SAFE_LEAVES:
        return None
    if type(value) not in CONTAINERS:  # anything else: as torch would load it
        import io

        buffer = io.BytesIO()
        torch.save(value, buffer)
        buffer.seek(0)
        try:
            torch.load(buffer, weights_only=True)
        except Exception:
            return f"{where}: a {type(value).__module__}.{type(value).__qualname__}"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if (found := unloadable(item, f"{where}[{key!r}]")) is not None:
            return found
    return None


def keep_previous(last: Path) -> None:
    """previous.ckpt := last.ckpt, atomically (a hard link renamed into place; no copy)."""
    link = last.with_name(f".{layout.PREVIOUS_CKPT}.tmp")
    link.unlink(missing_ok=True)
    os.link(last, link)
    os.replace(link, last.with_name(layout.PREVIOUS_CKPT))


class EpochCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that saves at epoch ends only, without Lightning's per-batch bookkeeping (~12 us a step,
    which shows on small models: bench/README.md)."""

    def __init__(self, **kwargs: Any) -> None:
        assert not kwargs.get("every_n_train_steps") and kwargs.get("train_time_interval") is None
        super().__init__(**kwargs)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        pass  # every_n_train_steps and train_time_interval are not used: nothing to check per batch

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        if self.monitor is not None and self.monitor not in monitor_candidates and not trainer.sanity_checking:
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
        # Computed once (Lightning formats it for every hook it calls), under ModelCheckpoint's name: checkpoints
        # keep the callback's state (best score) under this key, and runs started before this class must resume.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)


@CALLBACKS.register("checkpoint", denylist=("metrics",))
def checkpoint(
    run_dir: str, metrics: dict[str, Any], monitor: str | None = None, mode: str | None = None
) -> ModelCheckpoint:
    """best.ckpt: the best epoch by `monitor` (default: the module's main metric) in `mode` (default: its declared
    direction). `metrics` is the module's declaration (src/run/metric_directions.py), offered by the training loop."""
    directions = metrics["directions"]
    monitor = monitor or metrics["main"]
    if monitor not in directions and mode is None:
        raise UserError(
            f"checkpoint.monitor {monitor!r} is not a metric the module logs; it logs: {', '.join(directions)}."
        )
    mode = mode or directions[monitor]
    if mode not in ("min", "max"):
        raise UserError(f"checkpoint.mode must be 'min' or 'max', got {mode!r}.")
    return EpochCheckpoint(
        dirpath=run_dir,
        filename=Path(layout.BEST_CKPT).stem,
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_on_train_epoch_end=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )


@CALLBACKS.register("last_checkpoint")
def last_checkpoint(run_dir: str) -> ModelCheckpoint:
    """last.ckpt after every epoch. (Lightning's `save_last=True` writes it only when best.ckpt improves.)"""
    return EpochCheckpoint(
        dirpath=run_dir,
        filename=Path(layout.LAST_CKPT).stem,
        monitor=None,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
