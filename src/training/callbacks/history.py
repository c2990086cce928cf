"""HistoryWriter: `history.csv`, one row per epoch, exact across resumes.

The rows live in the checkpoint (this callback's state), and the file is rewritten from them, so a resumed
run drops epochs done after the checkpoint it resumes from and never duplicates or loses an epoch. Rows are
written before the checkpoint of their epoch (Lightning runs checkpoint callbacks last).
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from src.run import layout
from src.training.callbacks.registry import CALLBACKS

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT

FIRST_COLUMNS = [
    "epoch",
    "step",
    "train_loss",
    "train_acc",
    "valid_loss",
    "valid_acc",
    "lr",
    "epoch_time",
    "examples_per_s",
]


def finished(device: torch.device) -> float:
    """The time at which the device has done the work queued so far: a GPU runs behind the host, and an epoch's
    time is the device's (one wait per epoch)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def steps_done(trainer: pl.Trainer) -> int:
    """The training steps done so far as Lightning counts them for its loggers: batches that ended in an optimizer
    step (one per batch under manual optimization, however many optimizers step in it). Lightning keeps this count
    to itself; it is read here, never changed."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def learning_rates(trainer: pl.Trainer) -> dict[str, float]:
    """`lr` of the first optimizer's first parameter group, `lr_<i>` of the i-th optimizer's (i >= 1)."""
    return {
        "lr" if i == 0 else f"lr_{i}": float(optimizer.param_groups[0]["lr"])
        for i, optimizer in enumerate(trainer.optimizers)
    }


def step_only(trainer: pl.Trainer) -> set[str]:
    """The training metrics the module logs per step (`self.log(..., on_step=True)`): their value at an epoch's end
    is its last step's, not the epoch's, so history.csv leaves them out (the trackers receive them per step, as
    Lightning sends them). Read from Lightning's results of the epoch, which have no public view."""
    try:
        found = set()
        for result in trainer._results.values():  # type: ignore[union-attr]
            meta = result.meta
            if meta.on_step:
                found.add(meta.forked_name(on_step=True) if meta.on_epoch else meta.name)
        return found
    except (AttributeError, TypeError):
        return set()


def batch_size_of(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return len(first)


class HistoryWriter(pl.Callback):
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / layout.HISTORY
        self.rows: list[dict] = []

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = [dict(row) for row in state_dict["rows"]]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._write()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_epoch(trainer)  # a run resumed mid-epoch gets no on_train_epoch_start for that epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_epoch(trainer)

    def _start_epoch(self, trainer: pl.Trainer) -> None:
        self.epoch_start, self.n_examples = time.perf_counter(), 0
        self.train_end: float | None = None
        # the learning rates the epoch trains with: an epoch-wise schedule steps before the epoch's end is recorded
        self.lrs = learning_rates(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        if self.n_examples == 0:  # after the epoch's first step: what callbacks set at its start (swa_lrs) counts
            self.lrs = learning_rates(trainer)
        self.n_examples += batch_size_of(batch)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and getattr(self, "train_end", 0) is None:
            self.train_end = finished(pl_module.device)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = finished(pl_module.device)
        per_step = step_only(trainer)
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if getattr(v, "numel", lambda: 1)() == 1 and k not in per_step
        }
        row = {"epoch": trainer.current_epoch + 1, "step": steps_done(trainer), **metrics, **self.lrs}
        row["epoch_time"] = now - self.epoch_start
        row["examples_per_s"] = (
            self.n_examples * trainer.world_size / max((self.train_end or now) - self.epoch_start, 1e-9)
        )
        self.rows.append(row)
        if trainer.is_global_zero:
            self._write()

    def _write(self) -> None:
        columns = [c for c in FIRST_COLUMNS if any(c in row for row in self.rows)]
        columns += sorted({k for row in self.rows for k in row} - set(columns))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns or FIRST_COLUMNS[:2])
        writer.writeheader()
        writer.writerows(self.rows)
        layout.write_atomic(self.path, out.getvalue())


@CALLBACKS.register("history")
def history(run_dir: str) -> HistoryWriter:
    return HistoryWriter(run_dir)
