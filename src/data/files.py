"""Data read from files on disk, for data sets that do not fit in memory: a sharded array folder
(src/data/array_shards.py) read by worker processes through torchdata's `StatefulDataLoader`, whose state (the
sampler's position, the workers' too) goes into every checkpoint, so a run resumed mid-epoch sees exactly the
batches an uninterrupted one would have seen next.

The order of an epoch is a function of (seed, epoch) only, the same as InMemoryDataModule's (EpochBatchSampler): the
same data read from files or from memory trains the same, bit for bit. Under DDP each process takes its share of
that permutation (the module shards by rank itself). Workers only read; the transform (uint8 -> normalised float,
augmentation) runs on the whole batch on the training device, as for in-memory data.

    digits_files      the embedded digits, prepared into $DATA_DIR/digits_files on first use
    cifar10_files     CIFAR-10 (bin/download_data.py cifar10 first), prepared into $DATA_DIR/cifar10_files

Your own: subclass FilesDataModule, set `input_shape`, `n_outputs` and `prepare_name`, return your splits as arrays
from `arrays()` (or write the folder with your own tool in this format), register it with @DATA.register.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Sampler
from torchdata.stateful_dataloader import StatefulDataLoader

from src.data import array_shards
from src.data.download import data_dir
from src.data.in_memory import EpochBatchSampler
from src.data.prepared import Arrays, DataFolderError, check_source, prepare_once
from src.data.registry import DATA
from src.data.workers import raise_loader_failure, worker_start
from src.errors import integer


class EpochBatches(Sampler):
    """Batches of indices (lists) in the order of EpochBatchSampler: a permutation that is a function of (seed,
    epoch), each process's share of it under DDP. Its iterators are stateful (epoch, batches handed out), which is
    what StatefulDataLoader checkpoints: a restored iterator continues the same permutation at the next batch."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0) -> None:
        self.order = EpochBatchSampler(n, batch_size, shuffle=shuffle, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> EpochBatchesIterator:
        return EpochBatchesIterator(self, self.order.epoch)

    def batches(self, epoch: int) -> list[list[int]]:
        self.order.set_epoch(epoch)
        indices = self.order._indices()
        size = self.order.batch_size
        return [indices[i : i + size].tolist() for i in range(0, len(indices), size)]


class EpochBatchesIterator(Iterator[list[int]]):
    """One epoch's batches; its state is (epoch, batches handed out). The permutation is drawn on the first batch
    (or when a state is loaded), so the epoch is the one set when iteration starts."""

    def __init__(self, sampler: EpochBatches, epoch: int) -> None:
        self.sampler, self.epoch, self.position = sampler, epoch, 0
        self._batches: list[list[int]] | None = None

    def __iter__(self) -> EpochBatchesIterator:
        return self

    def __next__(self) -> list[int]:
        if self._batches is None:
            self._batches = self.sampler.batches(self.epoch)
        if self.position >= len(self._batches):
            raise StopIteration
        self.position += 1
        return self._batches[self.position - 1]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        if self.position >= len(self.sampler):  # saved at an epoch's end: the next one starts
            self.epoch, self.position = self.epoch + 1, 0
        self.sampler.order.set_epoch(self.epoch)
        self._batches = self.sampler.batches(self.epoch)


class FilesLoader(StatefulDataLoader):
    """torchdata's StatefulDataLoader whose workers start on the first batch asked for, not when `iter()` is called:
    Lightning calls it before `set_epoch` (at the start of a training, and of an epoch resumed at its end, for which
    it hands back no loader state), and the workers ask the sampler for their first batches at once."""

    def __iter__(self) -> Iterator[Any]:
        return StartsOnFirstBatch(self)


class StartsOnFirstBatch(Iterator[Any]):
    def __init__(self, loader: FilesLoader) -> None:
        self.loader = loader
        self.iterator: Iterator[Any] | None = None

    def __iter__(self) -> StartsOnFirstBatch:
        return self

    def __next__(self) -> Any:
        if self.iterator is None:
            self.iterator = StatefulDataLoader.__iter__(self.loader)
        return next(self.iterator)


def whole_batch(batch: Any) -> Any:
    """The collate function: the dataset returns whole batches already."""
    return batch


class FilesDataModule(pl.LightningDataModule):
    """Splits read from a prepared array-shards folder by `num_workers` worker processes (0: in this process).

    root: the folder (default: $DATA_DIR/<prepare_name>, `_toy` appended for the toy variant), prepared on first
    use when it is the default one and missing; a folder you name must have been prepared
    (`bin/prepare_data.py NAME --out FOLDER`)."""

    input_shape: tuple[int, ...]
    n_outputs: int
    prepare_name: str  # the registered name: `bin/prepare_data.py <prepare_name>` writes the folder
    use_distributed_sampler = False  # EpochBatches shards by rank itself (and resumes mid-epoch)

    def __init__(
        self, batch_size: int = 64, seed: int = 0, num_workers: int = 2, toy: bool = False, root: str | None = None
    ) -> None:
        super().__init__()
        self.batch_size = integer("batch_size", batch_size)
        self.num_workers = integer("num_workers", num_workers, at_least=0)
        self.seed, self.toy, self.root = seed, toy, root
        self._loaders: list[FilesLoader] = []

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {"input_shape": tuple(self.input_shape), "n_outputs": self.n_outputs}

    @property
    def folder(self) -> Path:
        return Path(self.root) if self.root else Path(data_dir()) / (self.prepare_name + ("_toy" if self.toy else ""))

    @property
    def remedy(self) -> str:
        out = f" --out {self.folder}" if self.root else ""
        return f"run `bin/prepare_data.py {self.prepare_name}{' --toy' if self.toy else ''}{out}`"

    def source(self) -> dict[str, Any]:
        """What the folder is made from and with which parameters (recorded in it, checked when it is read)."""
        return {"name": self.prepare_name, "toy": self.toy}

    def arrays(self) -> Arrays:
        """The splits to write: {"train": (inputs, targets), "valid": ..., "test": ...}."""
        raise DataFolderError(f"{self.folder} does not exist, and {type(self).__name__} cannot prepare it itself.")

    shard_size = 50_000  # examples per shard file

    def write(self, folder: Path) -> None:
        array_shards.write(folder, self.arrays(), self.source(), shard_size=self.shard_size)

    def prepare(self, force: bool = False) -> Path:
        """Write the folder (again, with `force`)."""
        if force and self.folder.exists():
            import shutil

            shutil.rmtree(self.folder)
        prepare_once(self.folder, self.write, self.prepare_name)
        return self.folder

    @cached_property
    def index(self) -> dict[str, Any]:
        if not self.folder.exists() and not self.root:
            self.prepare()  # the default folder: made on first use
        index = array_shards.read_index(self.folder, self.remedy)
        check_source(self.folder, index, self.source(), self.remedy)
        return index

    def prepare_data(self) -> None:
        self.index  # noqa: B018  (checked now: a missing or damaged folder fails before the run folder exists)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Applied to a whole batch on the training device, as InMemoryDataModule.transform."""
        return x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return self.transform(x, train=self.trainer is not None and self.trainer.training), y

    def on_exception(self, exception: BaseException) -> None:
        raise_loader_failure(exception, self._loaders, str(self.folder))

    def _loader(self, split: str, shuffle: bool) -> FilesLoader:
        # A generator of its own: otherwise each new iterator draws its workers' seed from the global RNG, and a run
        # resumed mid-epoch (one iterator more) would draw other dropout masks than an uninterrupted one.
        data = array_shards.ShardedSplit(self.folder, split, self.index)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*set_vital.*")  # torchdata 0.11 calls a deprecated torch API
            loader = FilesLoader(
                data,
                sampler=EpochBatches(len(data), self.batch_size, shuffle=shuffle, seed=self.seed),
                batch_size=None,
                collate_fn=whole_batch,
                num_workers=self.num_workers,
                generator=torch.Generator(),
                in_order=True,
                multiprocessing_context=worker_start(self.num_workers),
                persistent_workers=self.num_workers > 0,  # no new workers each epoch
            )
        self._loaders.append(loader)
        return loader

    def train_dataloader(self) -> FilesLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> FilesLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> FilesLoader:
        return self._loader("test", shuffle=False)


def digits_arrays(toy: bool) -> Arrays:
    """The digits splits of `digits` (src/data/digits.py), as uint8 pixels 0..16: the same examples in the same
    splits (the in-memory module's x is pixels / 16, which `transform` computes exactly)."""
    from src.data.digits import read_digits
    from src.data.splits import split_arrays

    images, labels = read_digits()
    x = images.astype(np.uint8).reshape(-1, 1, 8, 8)
    sizes = {"n_valid": 50, "n_test": 50, "limit": 300} if toy else {"n_valid": 300, "n_test": 300}
    return {k: (s.x.numpy(), s.y.numpy()) for k, s in split_arrays(x, labels, **sizes).items()}


def cifar10_arrays(toy: bool, n_valid: int) -> Arrays:
    """The splits of `cifar10` (src/data/cifar10.py) from $DATA_DIR/cifar-10-batches-py, uint8 images."""
    from src.data.cifar10 import Cifar10

    splits = Cifar10(toy=toy, n_valid=n_valid).load()
    return {k: (s.x.numpy(), s.y.numpy()) for k, s in splits.items()}


@DATA.register("digits_files")
class DigitsFiles(FilesDataModule):
    """The embedded digits read from files by worker processes (uint8 shards; 1,197 / 300 / 300, toy 200 / 50 /
    50): `digits` as a data set that does not fit in memory would be read."""

    input_shape = (1, 8, 8)
    n_outputs = 10
    prepare_name = "digits_files"
    shard_size = 64  # several shards even for the toy set: reads cross shard boundaries

    def arrays(self) -> Arrays:
        return digits_arrays(self.toy)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return x.float() / 16.0  # exactly the in-memory digits' values


@DATA.register("cifar10_files")
class Cifar10Files(FilesDataModule):
    """CIFAR-10 read from files by worker processes, with `cifar10`'s splits, normalisation and augmentation."""

    input_shape = (3, 32, 32)
    n_outputs = 10
    prepare_name = "cifar10_files"

    def __init__(
        self,
        batch_size: int = 128,
        seed: int = 0,
        num_workers: int = 2,
        toy: bool = False,
        root: str | None = None,
        augmentation: bool = True,
        n_valid: int = 5000,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers, toy=toy, root=root)
        self.augmentation, self.n_valid = augmentation, n_valid
        from src.data.cifar10 import Cifar10

        self._normalise = Cifar10(augmentation=augmentation)

    def source(self) -> dict[str, Any]:
        return {**super().source(), "n_valid": self.n_valid}

    def arrays(self) -> Arrays:
        return cifar10_arrays(self.toy, self.n_valid)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return self._normalise.transform(x, train)
