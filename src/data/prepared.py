"""Prepared data folders: what the file-backed and streaming data modules read (src/data/files.py,
src/data/streaming.py), written once by `bin/prepare_data.py NAME` (or on first use), never half-visible.

A prepared folder is written into a temporary sibling (`.NAME.partial-XXXX`) and renamed into place when complete, so
a folder under its final name is whole unless something else copied or edited it; each names its format and version
in a small JSON file written last. Reading checks that file first: a missing folder, a half-written one (no such file,
a file of the wrong size) or one of another format version is one line naming the folder and the command that writes
it again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from src.errors import UserError

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (inputs, targets), e.g. "train" -> (N x 1 x 8 x 8, N)
SPLITS = ("train", "valid", "test")


class DataFolderError(UserError):
    """A prepared data folder that cannot be read as it is: missing, half-written, of another format version."""


def is_url(location: str | os.PathLike) -> bool:
    """An object-store location (s3://, gs://, ...; litdata's `local:` prefix too), not a folder on this machine."""
    return "://" in str(location) or str(location).startswith("local:")


def problem(folder: str | os.PathLike, what: str, remedy: str) -> DataFolderError:
    return DataFolderError(f"{folder} {what}: {remedy}")


def read_marker(folder: Path, marker: str, fmt: str, version: int, remedy: str) -> dict[str, Any]:
    """The folder's marker file (written last), checked for its format and version."""
    if not folder.exists():
        raise problem(folder, "does not exist", remedy)
    if not folder.is_dir():
        raise problem(folder, "is not a folder", remedy)
    path = folder / marker
    if not path.is_file():
        raise problem(folder, f"is incomplete (no {marker}: a preparation that did not finish, or a copy in progress)",
                      f"delete it, then {remedy}")  # fmt: skip
    return check_marker(folder, path.read_text(errors="replace"), marker, fmt, version, remedy)


def check_marker(folder: str | os.PathLike, text: str, marker: str, fmt: str, version: int, remedy: str) -> dict:
    try:
        found = json.loads(text)
        if not isinstance(found, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise problem(folder, f"has a damaged {marker} ({e})", f"delete it, then {remedy}") from None
    if found.get("format") != fmt or found.get("version") != version:
        raise problem(
            folder,
            f"holds {found.get('format')!r} version {found.get('version')!r} data, and this code reads {fmt!r} "
            f"version {version}",
            f"delete it, then {remedy}",
        )
    return found


def check_source(folder: str | os.PathLike, found: dict[str, Any], expected: dict[str, Any], remedy: str) -> None:
    """The parameters the folder was prepared with (toy, n_valid, ...) against those the data module asks for."""
    stored = found.get("source", {})
    if stored != expected:
        diff = ", ".join(f"{k}={stored.get(k)!r} (asked: {expected.get(k)!r})" for k in sorted({*stored, *expected})
                         if stored.get(k) != expected.get(k))  # fmt: skip
        raise problem(folder, f"was prepared with other parameters: {diff}", f"delete it, then {remedy}")


@contextmanager
def written_atomically(folder: Path) -> Iterator[Path]:
    """A temporary sibling folder to fill; renamed to `folder` when the block ends without error (removed
    otherwise). A folder that appeared meanwhile (another process of the same run prepared it) wins: ours goes."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        yield tmp
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_once(folder: Path, write: Callable[[Path], None], what: str) -> None:
    """Write a prepared folder with `write(tmp)` unless it exists, saying so on stderr."""
    if folder.exists():
        return
    print(f"preparing {what} in {folder} (once) ...", file=sys.stderr, flush=True)
    with written_atomically(folder) as tmp:
        write(tmp)
