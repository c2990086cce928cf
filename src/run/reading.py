"""How a file of a run folder is read: run folders travel (rsync, archives, colleagues), so every file in one is
untrusted input. Only regular files are opened (a FIFO would hang the reader, a link to a device would be read until
memory runs out), at most a size bound is read, and JSON may nest only so deep. A file that breaks a rule is
`Unreadable` (a ValueError naming the file: readers that report a damaged file report this one too).

    read_text(path)   the text of a regular file of at most LIMIT bytes
    read_json(path)   its JSON value, nested at most DEPTH deep

Which of a run's files must be regular is src/run/layout.py's (`irregular`); checkpoints have their own bound
(src/run/checkpoints.py). Imports nothing.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

LIMIT = 64 * 2**20  # bytes: a history.csv of 100,000 epochs and 20 metrics is about 30 MB
DEPTH = 32  # a run's JSON files nest 3 deep at most (meta.json's attempts)


class Unreadable(ValueError):
    """A file of a run folder that is no regular file, is larger than its bound, or nests too deep."""


def read_bytes(path: str | os.PathLike, limit: int = LIMIT) -> bytes:
    """The content of `path` if it is a regular file (a link to one is fine) of at most `limit` bytes.
    FileNotFoundError if there is none; Unreadable if it breaks a rule."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: opening a device can have effects
        raise Unreadable(f"{path} is not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in meanwhile must not block the open
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Unreadable(f"{path} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"{path} is larger than {limit // 2**20} MiB")
    return data


def read_text(path: str | os.PathLike, limit: int = LIMIT) -> str:
    """`read_bytes` as UTF-8 text (a UnicodeDecodeError, a ValueError, for bytes that are no text)."""
    return read_bytes(path, limit).decode()


def read_json(path: str | os.PathLike, limit: int = LIMIT) -> Any:
    """The JSON value in `path` (`read_text`), nested at most DEPTH deep; a ValueError if it is no JSON."""
    try:
        value = json.loads(read_text(path, limit))
    except RecursionError:
        raise Unreadable(f"{path} nests deeper than {DEPTH} levels") from None
    level, todo = 1, [value]
    while todo := [v for item in todo for v in children(item) if isinstance(v, (dict, list))]:
        level += 1
        if level > DEPTH:
            raise Unreadable(f"{path} nests deeper than {DEPTH} levels")
    return value


def children(value: Any) -> Any:
    return value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
