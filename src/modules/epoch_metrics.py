"""EpochMetricsModule: a LightningModule base that logs per-epoch means over examples of the metrics a subclass
accumulates, and keeps the partial sums of an interrupted epoch in the checkpoint (exact mid-epoch resume).

    class MyTask(EpochMetricsModule):
        metric_directions = {"loss": "min", "mae": "min"}
        main_metric = "mae"

        def step(self, batch, stage):                       # stage: train | valid | test
            x, y = batch
            error = self.model(x) - y
            loss = error.square().mean()
            self.accumulate(stage, len(y), loss=loss * len(y), mae=error.abs().flatten(1).mean(1).sum())
            return loss

`accumulate` takes sums over the batch's examples; at the epoch's end each metric is logged as `<stage>_<name>` =
sum / examples, summed over processes under DDP. Sums stay on the device and are logged once per epoch: Lightning's
`self.log` costs ~0.4 ms a call on a CPU, more than a small model's step.
"""

from __future__ import annotations

from typing import Any, cast

import pytorch_lightning as pl
import torch

from src.errors import UserError

SUMS_KEY = "epoch_metric_sums"  # the partial training epoch's sums in a mid-epoch checkpoint


class EpochMetricsModule(pl.LightningModule):
    metric_directions: dict[str, str] = {"loss": "min"}
    main_metric: str = "loss"

    def __init__(self) -> None:
        super().__init__()
        self._sums: dict[str, tuple[tuple[str, ...], torch.Tensor, int]] = {}  # stage -> (names, sums, examples)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Lightning's loader; a module built around a model needs it given (`model=`): one line says so. To rebuild
        everything from a run folder alone, use src/results.load_model(run)."""
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except TypeError as e:
            if "'model'" not in str(e) or "model" in kwargs:
                raise
            raise UserError(
                f"{cls.__name__}.load_from_checkpoint({str(checkpoint_path)!r}) needs the model: pass model=..., or "
                "use load_model(run_folder) (src/results.py), which rebuilds the module and its model from the run."
            ) from e

    def step(self, batch: Any, stage: str) -> torch.Tensor:
        """The loss of one batch; calls `accumulate` with the batch's metric sums."""
        raise NotImplementedError

    def accumulate(self, stage: str, n: int, **sums: torch.Tensor) -> None:
        """Add the batch's sums: two kernels (a stack and an in-place add), no read on the host."""
        with torch.no_grad():
            values = torch.stack([v.detach().float() for v in sums.values()])  # one dtype under mixed precision
            if stage in self._sums:
                names, total, count = self._sums[stage]
                self._sums[stage] = (names, total.add_(values), count + n)
            else:
                self._sums[stage] = (tuple(sums), values, n)

    def log_epoch(self, stage: str) -> None:
        """Log the stage's means over the epoch's examples (of all processes: Lightning's sync sums value x
        batch_size and batch sizes across them)."""
        if stage not in self._sums:
            return
        names, sums, count = self._sums.pop(stage)
        for name, total in zip(names, sums, strict=True):
            self.log(
                f"{stage}_{name}",
                total / count,
                on_step=False,
                on_epoch=True,
                prog_bar=name == self.main_metric or stage == "train",
                batch_size=count,
                sync_dist=True,
            )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0:
            self._sums.pop("train", None)
        loss = self.step(batch, "train")
        # Logged with the epoch's last batch: callbacks' on_train_epoch_end (history.csv) run before the module's.
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self.log_epoch("train")
        return loss

    def on_train_start(self) -> None:
        if "train" in self._sums:  # restored from a mid-epoch checkpoint, on the CPU: to the training device, once
            names, sums, count = self._sums["train"]
            self._sums["train"] = (names, sums.to(self.device), count)

    def on_train_epoch_end(self) -> None:
        if "train" in self._sums:  # a loader without a length: the last batch was not recognised
            self.log_epoch("train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "valid")

    def on_validation_epoch_start(self) -> None:
        self._sums.pop("valid", None)

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("valid")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self._sums.pop("test", None)

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "train" in self._sums:  # a mid-epoch checkpoint (SLURM preemption) keeps the partial epoch's sums
            names, sums, count = self._sums["train"]
            checkpoint[SUMS_KEY] = {"names": list(names), "sums": sums, "count": count}
            if self._trainer is not None and self.trainer.world_size > 1:  # each process has its own sums
                counts = cast(torch.Tensor, self.all_gather(torch.tensor(count, device=sums.device)))
                checkpoint[SUMS_KEY]["per_process"] = {"sums": self.all_gather(sums), "counts": counts.tolist()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if SUMS_KEY in checkpoint:
            saved = checkpoint[SUMS_KEY]
            sums, count = saved["sums"], int(saved["count"])
            if "per_process" in saved:
                every, rank = saved["per_process"], self.trainer.global_rank
                if len(every["counts"]) == self.trainer.world_size:  # each process continues its own sums
                    sums, count = every["sums"][rank], int(every["counts"][rank])
                elif rank == 0:  # another number of processes: the first holds them all
                    sums, count = every["sums"].sum(0), int(sum(every["counts"]))
                else:
                    return
            self._sums["train"] = (tuple(saved["names"]), sums, count)
