"""In-memory data: tensors indexed a whole batch at a time (no per-sample Python), shuffled per epoch.

The shuffle order depends only on (seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from src.errors import UserError


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


class BatchIndexed(torch.utils.data.Dataset):
    """dataset[index_tensor] -> (x[index], y[index]) in one indexing operation."""

    def __init__(self, split: Split, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.split.x[index]), self.split.y[index]


class EpochBatchSampler(Sampler):
    """Yields index tensors of one batch each; the permutation is a function of (seed, epoch) only.

    Under torch.distributed each rank takes an equal, disjoint share of every epoch's permutation.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False) -> None:
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            indices = torch.randperm(self.n, generator=generator)
        else:
            indices = torch.arange(self.n)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
            per_rank = -(-self.n // world)
            indices = torch.cat([indices, indices[: per_rank * world - self.n]])[rank::world]
        return indices

    def __iter__(self) -> Iterator[torch.Tensor]:
        indices = self._indices()
        stop = len(indices) - (len(indices) % self.batch_size if self.drop_last else 0)
        for start in range(0, stop, self.batch_size):
            yield indices[start : start + self.batch_size]

    def __len__(self) -> int:
        n = len(self._indices())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class InMemoryDataModule(pl.LightningDataModule):
    """Train/valid/test tensors held in memory; subclasses fill `self.splits` in `load()`."""

    input_shape: tuple[int, ...]
    n_classes: int

    def __init__(self, batch_size: int = 128, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise UserError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.batch_size = batch_size
        self.seed = seed
        self.splits: dict[str, Split] = self.load()

    def load(self) -> dict[str, Split]:
        raise NotImplementedError

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Applied to a whole batch (e.g. uint8 -> normalised float, augmentation when `train`)."""
        return x

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.splits[split]
        sampler = EpochBatchSampler(len(data), self.batch_size, shuffle=shuffle, seed=self.seed)
        transform = functools.partial(self.transform, train=shuffle)
        return DataLoader(BatchIndexed(data, transform), sampler=sampler, batch_size=None, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def data_dir() -> str:
    return os.environ.get("DATA_DIR") or "data"
