"""In-memory data: tensors indexed a whole batch at a time (no per-sample Python), shuffled per epoch.

The shuffle order depends only on (seed, epoch), and the position in an epoch is checkpointed, so a resumed run sees
the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from src.errors import UserError, integer


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


class BatchIndexed(torch.utils.data.Dataset):
    """dataset[index_tensor] -> (x[index], y[index]) in one indexing operation, wherever the tensors live."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.to(self.split.y.device, non_blocking=True)
        return self.split.x[index], self.split.y[index]


class EpochBatchSampler(Sampler):
    """Yields index tensors of one batch each; the permutation is a function of (seed, epoch) only.

    Under torch.distributed each rank takes an equal, disjoint share of every epoch's permutation. Its state (epoch,
    batches yielded) goes into mid-epoch checkpoints: a resumed epoch continues with the next batch of the same
    permutation. With `device` (the data lives there) the epoch's permutation is drawn on the CPU, as everywhere,
    and copied there once per epoch: the batches' indices are then slices of it, with no copy per step.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | None = None,
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.device = device
        self.epoch = 0
        self.yielded = 0  # batches of the current epoch handed out so far
        self.resume_at: dict[str, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.resume_at = dict(state)  # applied by the next iteration over the same epoch

    @staticmethod
    def _rank() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            indices = torch.randperm(self.n, generator=generator)
        else:
            indices = torch.arange(self.n)
        world, rank = self._rank()
        if world > 1:
            per_rank = -(-self.n // world)
            indices = torch.cat([indices, indices[: per_rank * world - self.n]])[rank::world]
        if self.device is not None and self.device.type != "cpu":
            indices = indices.to(self.device)
        return indices

    def __iter__(self) -> Iterator[torch.Tensor]:
        resume_at, self.resume_at = self.resume_at, None
        self.yielded = resume_at["batches"] if resume_at and resume_at["epoch"] == self.epoch else 0
        indices = self._indices()
        stop = len(indices) - (len(indices) % self.batch_size if self.drop_last else 0)
        for start in range(self.yielded * self.batch_size, stop, self.batch_size):
            self.yielded += 1
            yield indices[start : start + self.batch_size]

    def __len__(self) -> int:
        world, _ = self._rank()
        n = -(-self.n // world)  # this rank's share (the permutation is padded to a multiple of the processes)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class ResumableLoader(DataLoader):
    """A DataLoader whose sampler's state Lightning keeps in checkpoints (it saves `state_dict()` of every training
    loader that has one, and hands it back on resume)."""

    sampler: EpochBatchSampler

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


class InMemoryDataModule(pl.LightningDataModule):
    """Train/valid/test tensors held in memory; subclasses return them from `load()` and declare what a model built
    for them receives: `input_shape` and `n_outputs` (or override `model_kwargs`).

    `load()` runs on first use of `splits` (the training loop asks for it before the run folder exists, so missing
    data fails early; `load_model` never loads the data)."""

    input_shape: tuple[int, ...]
    n_outputs: int
    use_distributed_sampler = False  # EpochBatchSampler shards by rank itself (and resumes mid-epoch)

    def __init__(self, batch_size: int = 128, seed: int = 0, device_resident: bool | None = None) -> None:
        super().__init__()
        self.batch_size = integer("batch_size", batch_size)
        self.seed = seed
        if device_resident not in (None, True, False):
            raise UserError(
                f"device_resident must be True, False or None (on the training device when it is a GPU and the data "
                f"fits), got {device_resident!r}."
            )
        self.device_resident = device_resident

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The keywords a model builder receives for this data (src/models/registry.py)."""
        return {"input_shape": tuple(self.input_shape), "n_outputs": self.n_outputs}

    @cached_property
    def splits(self) -> dict[str, Split]:
        return self.load()

    def load(self) -> dict[str, Split]:
        raise NotImplementedError

    def prepare_data(self) -> None:
        self.splits  # noqa: B018  (loads now: a missing or corrupt data set fails before training starts)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Applied to a whole batch on the training device (e.g. uint8 -> normalised float; augmentation when
        `train`): the loader only indexes, the accelerator does the arithmetic."""
        return x

    def setup(self, stage: str) -> None:
        """The whole data set moves to the training device once when it is resident there (`device_resident`;
        None: on a GPU when it takes at most a quarter of the free device memory): batches are then indexed and
        transformed there, with no host work and no host-to-device copy per step."""
        if self.trainer is None:
            return
        device = self.trainer.strategy.root_device
        if resident(self.device_resident, device, sum(s.x.nbytes + s.y.nbytes for s in self.splits.values())):
            self.splits = {name: Split(s.x.to(device), s.y.to(device)) for name, s in self.splits.items()}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return self.transform(x, train=self.trainer is not None and self.trainer.training), y

    def batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The split's batches as the model sees them (transformed, not augmented), outside a Trainer."""
        for x, y in self._loader(split, shuffle=False):
            yield self.transform(x, train=False), y

    def _loader(self, split: str, shuffle: bool) -> ResumableLoader:
        # num_workers=0: the data is in memory and a batch is one indexing operation; workers would only add IPC.
        # A generator of its own: otherwise each new iterator draws a worker seed from the global RNG, so that
        # dropout in a run resumed mid-epoch (a new iterator there) would draw other numbers than without the stop.
        data = self.splits[split]
        sampler = EpochBatchSampler(len(data), self.batch_size, shuffle=shuffle, seed=self.seed, device=data.y.device)
        return ResumableLoader(
            BatchIndexed(data), sampler=sampler, batch_size=None, num_workers=0, generator=torch.Generator()
        )

    def train_dataloader(self) -> ResumableLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> ResumableLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> ResumableLoader:
        return self._loader("test", shuffle=False)


def resident(asked: bool | None, device: torch.device, nbytes: int) -> bool:
    """Whether in-memory data of `nbytes` lives on `device` during training: as asked, or (None) on an accelerator
    when it takes at most a quarter of the device's free memory (the model and activations need the rest)."""
    if asked is not None:
        return asked
    if device.type == "cpu":
        return False  # already there
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 4
    return True
