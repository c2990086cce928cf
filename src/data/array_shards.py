"""A sharded array data set on disk: per split, shards of inputs and targets as plain `.npy` files (`np.load` reads
each one), listed in `index.json`, which is written last.

    <folder>/index.json               {"format": "array-shards", "version": 1, "source": {...}, "splits": {...}}
    <folder>/train-00000.x.npy        inputs of examples 0 .. shard_size - 1 (e.g. uint8, N x 1 x 8 x 8)
    <folder>/train-00000.y.npy        their targets (e.g. int64 labels)
    ...

Reading takes whole batches: one `os.pread` per example from the shard that holds it, into one buffer. Nothing is
memory-mapped, so a process's resident memory does not grow with the data it has read (the kernel's page cache
keeps what it can; it is not the process's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.prepared import SPLITS, Arrays, problem, read_marker

FORMAT = "array-shards"
VERSION = 1
INDEX = "index.json"


def write(folder: Path, arrays: Arrays, source: dict[str, Any], shard_size: int = 50_000) -> None:
    """Write `arrays` (split -> (inputs, targets)) into `folder` as shards of `shard_size` examples; index.json
    last."""
    splits: dict[str, Any] = {}
    for split, (x, y) in arrays.items():
        if len(x) != len(y):
            raise ValueError(f"{split}: {len(x)} inputs but {len(y)} targets")
        shards = []  # shard by shard: memory-mapped inputs are never loaded whole
        for i, start in enumerate(range(0, max(len(y), 1), shard_size)):
            names = {part: f"{split}-{i:05d}.{part}.npy" for part in ("x", "y")}
            for part, array in (("x", x), ("y", y)):
                np.save(folder / names[part], np.ascontiguousarray(array[start : start + shard_size]))
            sizes = {f"{p}_bytes": (folder / names[p]).stat().st_size for p in ("x", "y")}
            shards.append({**names, "n": len(y[start : start + shard_size]), **sizes})
        splits[split] = {
            "n": len(y),
            "x": {"dtype": np.dtype(x.dtype).str, "shape": list(x.shape[1:])},
            "y": {"dtype": np.dtype(y.dtype).str, "shape": list(y.shape[1:])},
            "shards": shards,
        }
    index = {"format": FORMAT, "version": VERSION, "source": source, "splits": splits}
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n")


def read_index(folder: Path, remedy: str) -> dict[str, Any]:
    """index.json of a whole folder of this format and version: every shard present with the size it was written
    with (a cheap check: sizes only), else one line naming the folder and `remedy`."""
    index = read_marker(folder, INDEX, FORMAT, VERSION, remedy)
    again = f"delete it, then {remedy}"
    try:
        shards = [(shard, part) for split in SPLITS for shard in index["splits"][split]["shards"] for part in "xy"]
        for shard, part in shards:
            path, written = folder / shard[part], shard[f"{part}_bytes"]
            size = path.stat().st_size if path.is_file() else None
            if size != written:
                found = "is missing" if size is None else f"has {size} bytes, {INDEX} says {written}"
                raise problem(folder, f"is incomplete or damaged ({shard[part]} {found})", again)
    except (KeyError, TypeError) as e:
        raise problem(folder, f"has a damaged {INDEX} (no {e})", again) from None
    return index


class ShardedSplit(torch.utils.data.Dataset):
    """One split of a prepared folder. `dataset[[i, j, ...]]` -> (inputs, targets) of those examples, as tensors of
    the stored dtypes (a whole batch: what the loader's sampler asks for). Files are opened on first read in each
    process (DataLoader workers included), so the object pickles small."""

    def __init__(self, folder: Path, split: str, index: dict[str, Any]) -> None:
        self.folder, self.split = Path(folder), split
        spec = index["splits"][split]
        self.n = spec["n"]
        self.shards = spec["shards"]
        self.starts = np.cumsum([0] + [s["n"] for s in self.shards])
        self.parts = {p: (np.dtype(spec[p]["dtype"]), tuple(spec[p]["shape"])) for p in ("x", "y")}
        self._files: dict[tuple[int, str], tuple[int, int]] = {}  # (shard, part) -> (fd, data offset)
        self._pid = -1

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": {}, "_pid": -1}  # file descriptors stay in their process

    def _file(self, shard: int, part: str) -> tuple[int, int]:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if (shard, part) not in self._files:
            path = self.folder / self.shards[shard][part]
            mapped = np.load(path, mmap_mode="r")  # reads the header only: where the data starts
            offset = int(mapped.offset)
            del mapped
            self._files[shard, part] = (os.open(path, os.O_RDONLY), offset)
        return self._files[shard, part]

    def __getitem__(self, indices: Sequence[int] | int) -> tuple[torch.Tensor, torch.Tensor]:
        single = isinstance(indices, int)
        rows = np.asarray([indices] if single else indices, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"index out of range for {self.n} examples")
        shard_of = np.searchsorted(self.starts, rows, side="right") - 1
        out = []
        for part in ("x", "y"):
            dtype, shape = self.parts[part]
            size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            # a tensor of torch's own (aligned as its kernels like it; a bytearray's memory slowed the training
            # step that used it by ~15 %), filled through a byte view
            batch = torch.empty((len(rows), *shape), dtype=torch.from_numpy(np.empty(0, dtype)).dtype)
            view = memoryview(batch.numpy()).cast("B")  # type: ignore[arg-type]
            for j, (row, shard) in enumerate(zip(rows.tolist(), shard_of.tolist(), strict=True)):
                fd, offset = self._file(shard, part)
                where = offset + (row - int(self.starts[shard])) * size
                if os.preadv(fd, [view[j * size : (j + 1) * size]], where) != size:
                    short = f"is damaged ({self.shards[shard][part]} is shorter than it was written)"
                    raise problem(self.folder, short, "delete it and prepare it again")
            out.append(batch[0] if single else batch)
        return out[0], out[1]

    def __del__(self) -> None:
        if self._pid == os.getpid():
            for fd, _ in self._files.values():
                os.close(fd)
