"""Streaming data with Lightning's litdata: an optimised (chunked) data set per split, read from a local folder or an
object store (`s3://...`, `gs://...`, `azure://...`: a binding, no code change) by worker processes, through
litdata's `StreamingDataLoader`, whose state goes into every checkpoint: a run resumed mid-epoch continues with
exactly the batches an uninterrupted one would have seen next.

    <input_dir>/prepared.json     {"format": "litdata-splits", "version": 1, "source": {...}}, written last
    <input_dir>/train/            litdata's index.json and chunk-*.bin (what `litdata.optimize` writes)
    <input_dir>/valid/, test/

litdata shuffles chunks and the examples within a window of them, as a function of (seed, epoch, processes,
workers); each process (DDP) and each worker reads its own chunks. A remote data set is cached under `cache_dir`
(litdata's default: ~/.lightning/chunks), at most `max_cache_size` of it (e.g. '50GB'; litdata's default: most of
the free disk).

    digits_stream     the embedded digits, prepared into $DATA_DIR/digits_stream on first use
    cifar10_stream    CIFAR-10 (bin/download_data.py cifar10 first), prepared into $DATA_DIR/cifar10_stream
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
import weakref
from functools import cached_property
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from src.data.download import data_dir
from src.data.files import cifar10_arrays, digits_arrays
from src.data.prepared import (
    SPLITS,
    Arrays,
    DataFolderError,
    check_marker,
    check_source,
    is_url,
    prepare_once,
    problem,
    read_marker,
)
from src.data.registry import DATA
from src.data.stream_loader import stream_classes
from src.data.workers import raise_loader_failure, worker_start
from src.errors import UserError, integer

# litdata's loaders know their exact length for the workers they have (Lightning cannot tell and warns).
warnings.filterwarnings("ignore", message=r".*Your `IterableDataset` has `__len__` defined.*")

FORMAT = "litdata-splits"
VERSION = 1
MARKER = "prepared.json"


def write(
    folder: Path, arrays: Arrays, source: dict[str, Any], chunk_bytes: str | None = "4MB", chunk_size: int | None = None
) -> None:
    """Each split as a litdata optimised data set (items (input array, target)), then prepared.json. litdata's
    BinaryWriter is what `litdata.optimize` writes with, here in this process (no worker pool)."""
    import litdata
    from litdata.streaming.writer import BinaryWriter

    for split, (x, y) in arrays.items():
        writer = BinaryWriter(
            str(folder / split), chunk_bytes=None if chunk_size else chunk_bytes, chunk_size=chunk_size
        )
        for i in range(len(y)):
            writer.add_item(i, (x[i], y[i].item()))
        writer.done()
        writer.merge(1)
    marker = {"format": FORMAT, "version": VERSION, "source": source, "litdata": litdata.__version__}
    (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


def check_local(folder: Path, remedy: str) -> dict[str, Any]:
    """prepared.json and every split's litdata index and chunk files (their sizes), else one line."""
    found = read_marker(folder, MARKER, FORMAT, VERSION, remedy)
    again = f"delete it, then {remedy}"
    for split in SPLITS:
        try:
            chunks = json.loads((folder / split / "index.json").read_text())["chunks"]
            sizes = {chunk["filename"]: chunk["chunk_bytes"] for chunk in chunks}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise problem(folder, f"is incomplete or damaged ({split}/index.json: {e})", again) from None
        for name, size in sizes.items():
            path = folder / split / name
            if not path.is_file() or path.stat().st_size != size:
                raise problem(folder, f"is incomplete or damaged ({split}/{name}: missing, or not as big as its index "
                              "says)", again)  # fmt: skip
    return found


def read_remote_marker(url: str, cache_dir: str | None, storage_options: dict | None, remedy: str) -> dict:
    """prepared.json of an object-store data set, fetched with litdata's own downloader for that URL."""
    from litdata.streaming.downloader import get_downloader

    with tempfile.TemporaryDirectory() as tmp:
        local = str(Path(tmp) / MARKER)
        try:
            get_downloader(url, cache_dir or tmp, [], storage_options).download_file(f"{url}/{MARKER}", local)
            text = Path(local).read_text(errors="replace")
        except Exception as e:  # no such object, no credentials, no network: the client's own words
            raise problem(url, f"cannot be read ({type(e).__name__}: {e})", remedy) from None
    return check_marker(url, text, MARKER, FORMAT, VERSION, remedy)


class StreamDataModule(pl.LightningDataModule):
    """Splits streamed by litdata from `input_dir` (a folder, or a URL: s3://bucket/path, gs://..., and litdata's
    `local:/folder`, which reads a folder through the same cache as a remote store) by `num_workers` workers.

    input_dir: default $DATA_DIR/<prepare_name> (`_toy` appended for the toy variant), prepared on first use when
    missing; a folder or URL you name must have been prepared (`bin/prepare_data.py NAME --out FOLDER`, then copy
    it to the store as it is, e.g. `aws s3 sync FOLDER s3://bucket/path`)."""

    input_shape: tuple[int, ...]
    n_outputs: int
    prepare_name: str
    use_distributed_sampler = False  # litdata gives each process and worker its own chunks
    # How many items litdata deserialises at a time: 1, the one asked for. Its "auto" (windows of up to 256 small
    # items) decoded windows that its workers then used little of: on CIFAR-10 with 2 workers 12x the items, the
    # first batches of each epoch ~10x slower, about half the batches a second (bench/README.md, "Data beyond memory").
    # The value does not change which items come in which order.
    batch_decode: int | str = 1

    def __init__(
        self,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 2,
        toy: bool = False,
        input_dir: str | None = None,
        cache_dir: str | None = None,
        max_cache_size: str | None = None,
        storage_options: dict | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = integer("batch_size", batch_size)
        self.num_workers = integer("num_workers", num_workers, at_least=0)
        self.seed, self.toy, self.input_dir = seed, toy, input_dir
        self.cache_dir, self.max_cache_size, self.storage_options = cache_dir, max_cache_size, storage_options
        self._loaders: list[Any] = []

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {"input_shape": tuple(self.input_shape), "n_outputs": self.n_outputs}

    @property
    def location(self) -> str:
        """The folder or URL, as given (litdata reads a relative folder from the working directory)."""
        if self.input_dir:
            return str(self.input_dir).rstrip("/")
        return str(Path(data_dir()) / (self.prepare_name + ("_toy" if self.toy else "")))

    @property
    def remedy(self) -> str:
        out = f" --out {self.location}" if self.input_dir and not is_url(self.location) else ""
        command = f"`bin/prepare_data.py {self.prepare_name}{' --toy' if self.toy else ''}{out}`"
        if is_url(self.location):
            return f"run {command} and copy its folder there"
        return f"run {command}"

    def source(self) -> dict[str, Any]:
        return {"name": self.prepare_name, "toy": self.toy}

    def arrays(self) -> Arrays:
        raise DataFolderError(f"{self.location} does not exist, and {type(self).__name__} cannot prepare it itself.")

    def write(self, folder: Path) -> None:
        write(folder, self.arrays(), self.source())

    def prepare(self, force: bool = False) -> Path:
        if is_url(self.location):
            raise UserError(f"{self.location} is a URL: prepare into a folder (--out FOLDER), then copy it there.")
        folder = Path(self.location)
        if force and folder.exists():
            shutil.rmtree(folder)
        prepare_once(folder, self.write, self.prepare_name)
        return folder

    @cached_property
    def marker(self) -> dict[str, Any]:
        if is_url(self.location):
            local = self.location.removeprefix("local:") if self.location.startswith("local:") else None
            if local is not None and not Path(local).exists():
                raise problem(self.location, "does not exist", self.remedy)
            found = read_remote_marker(self.location, self.cache_dir, self.storage_options, self.remedy)
        else:
            if not self.input_dir and not Path(self.location).exists():
                self.prepare()  # the default folder: made on first use
            found = check_local(Path(self.location), self.remedy)
        check_source(self.location, found, self.source(), self.remedy)
        return found

    def prepare_data(self) -> None:
        self.marker  # noqa: B018  (checked now: a missing or damaged data set fails before the run folder exists)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return self.transform(x, train=self.trainer is not None and self.trainer.training), y

    def on_exception(self, exception: BaseException) -> None:
        raise_loader_failure(exception, self._loaders, self.location)

    def training_epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def _loader(self, split: str, train: bool) -> Any:
        self.marker  # noqa: B018
        dataset_class, loader_class = stream_classes()
        dataset = dataset_class(
            f"{self.location}/{split}",
            shuffle=train,
            seed=self.seed,
            drop_last=None if train else False,  # None: litdata's default (True under DDP: equal shares)
            cache_dir=self.cache_dir,
            max_cache_size=self.max_cache_size,
            storage_options=self.storage_options,
            batch_decode=self.batch_decode,
        )
        # A generator of its own: see FilesDataModule._loader.
        loader = loader_class(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            generator=torch.Generator(),
            multiprocessing_context=worker_start(self.num_workers),
        )
        # Weakly (no cycle): a module let go of shuts its loaders' workers down at once, not at a garbage collection.
        module = weakref.ref(self)

        def epoch_of() -> int | None:
            alive = module()
            return alive.training_epoch() if alive is not None else None

        loader.epoch_of = epoch_of
        self._loaders.append(loader)
        return loader

    def train_dataloader(self) -> Any:
        return self._loader("train", train=True)

    def val_dataloader(self) -> Any:
        return self._loader("valid", train=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", train=False)


@DATA.register("digits_stream")
class DigitsStream(StreamDataModule):
    """The embedded digits streamed by litdata (1,197 / 300 / 300, toy 200 / 50 / 50, the splits of `digits`)."""

    input_shape = (1, 8, 8)
    n_outputs = 10
    prepare_name = "digits_stream"

    def arrays(self) -> Arrays:
        return digits_arrays(self.toy)

    def write(self, folder: Path) -> None:
        # chunks of 8 examples: enough of them in the toy set's 50-example splits for 2 processes x 2 workers (litdata
        # gives each its own chunks)
        write(folder, self.arrays(), self.source(), chunk_size=8)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return x.float() / 16.0


@DATA.register("cifar10_stream")
class Cifar10Stream(StreamDataModule):
    """CIFAR-10 streamed by litdata, with `cifar10`'s splits, normalisation and augmentation."""

    input_shape = (3, 32, 32)
    n_outputs = 10
    prepare_name = "cifar10_stream"

    def __init__(
        self,
        batch_size: int = 128,
        seed: int = 0,
        num_workers: int = 2,
        toy: bool = False,
        input_dir: str | None = None,
        cache_dir: str | None = None,
        max_cache_size: str | None = None,
        storage_options: dict | None = None,
        augmentation: bool = True,
        n_valid: int = 5000,
    ) -> None:
        super().__init__(batch_size, seed, num_workers, toy, input_dir, cache_dir, max_cache_size, storage_options)
        self.augmentation, self.n_valid = augmentation, n_valid
        from src.data.cifar10 import Cifar10

        self._normalise = Cifar10(augmentation=augmentation)

    def source(self) -> dict[str, Any]:
        return {**super().source(), "n_valid": self.n_valid}

    def arrays(self) -> Arrays:
        return cifar10_arrays(self.toy, self.n_valid)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return self._normalise.transform(x, train)
