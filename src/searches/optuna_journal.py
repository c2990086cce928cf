"""The study's journal file: Optuna's JournalFileBackend (append-only, one JSON record a line, guarded by Optuna's
symlink lock, safe on NFS), made safe against what a full disk or a kill leaves behind.

- A torn last record (a write cut short: no newline at its end, or a last line that is no JSON) is cut off before
  the next append, and before a read that finds it, with a warning naming the file; its bytes are kept in
  `<journal>.torn`. It is only ever cut while holding the journal's lock, when no writer is half-way through a
  record (a reader that races an append sees its line without a newline for a moment: it then takes the lock and
  looks again). Without this, the next append would continue the torn line, and every later read would fail.
- An append that fails on a full disk cuts what it wrote at once and is one line (`No space left ... free some
  space, then run the same command again`).
- Any other damage (a line in the middle that is no record) is one line naming the file and the line, and what to
  do, instead of a bare JSONDecodeError.

Imports Optuna: imported by `journal_storage` (src/searches/optuna_parts.py) when a study is opened.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file

from src.errors import UserError
from src.run.layout import DiskFull, disk_full

TORN = ".torn"  # suffix of the file that keeps the torn records cut off the journal
BLOCK = 4096  # bytes read first, backwards, to find the last line (twice as many each time it is longer)


class RepairingLock(BaseJournalFileLock):
    """Optuna's lock of the journal; once taken (no writer is in the middle of a record then), a torn last record
    is cut off, so that the append that follows starts a line of its own."""

    def __init__(self, journal: Journal, lock: BaseJournalFileLock) -> None:
        self.journal, self.lock = journal, lock

    def acquire(self) -> bool:
        self.lock.acquire()
        try:
            self.journal.cut_torn_tail()
        except BaseException:
            self.lock.release()
            raise
        return True

    def release(self) -> None:
        self.lock.release()


class Journal(JournalFileBackend):
    """Optuna's JournalFileBackend whose appends and reads first repair a torn last record, and whose damage is one
    line naming the file."""

    def __init__(self, path: str) -> None:
        super().__init__(path, JournalFileSymlinkLock(path))
        self._lock: RepairingLock = RepairingLock(self, self._lock)
        self._whole = 0  # a size at which the journal was seen to end with a whole record: no need to look again

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Optuna's append (under the lock, which cuts a torn tail first); on a full disk, what it wrote is cut off
        again at once and the error is one line."""
        try:
            super().append_logs(logs)
        except OSError as e:
            if not disk_full(e, Path(self._file_path).parent):
                raise
            try:
                with get_lock_file(self._lock.lock):  # Optuna's lock itself: the cut is this error's news
                    self.cut_torn_tail(warn=False)
            except OSError:
                pass  # no room even for the lock: the next append or read cuts it
            raise DiskFull(
                f"No space left on device while writing {self._file_path}: free some space, then run the same "
                "command again (the study is as it was before that write)."
            ) from e

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        """Optuna's read, after cutting a torn last record; a record that is no record is one line (`damaged`)."""
        if self.torn_tail() is not None:  # torn, or an append of another process on its way: look under the lock
            with get_lock_file(self._lock):
                pass
        try:
            for log in super().read_logs(log_number_from):
                if not isinstance(log, dict) or not isinstance(log.get("op_code"), int):
                    raise ValueError(f"not a record: {str(log)[:60]}")
                yield log
        except ValueError as e:  # json.JSONDecodeError, Optuna's 'Invalid log format.' (a line without its newline)
            raise damaged(self._file_path, e) from None

    def torn_tail(self) -> int | None:
        """Where the journal's last line starts if it is torn (no newline at its end, or no JSON), else None."""
        with open(self._file_path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size in (0, self._whole):
                return None
            start, line = last_line(f, size)
        if line.endswith(b"\n") and is_json(line):
            self._whole = size
            return None
        return start

    def cut_torn_tail(self, warn: bool = True) -> None:
        """Cut a torn last record off the journal, keeping its bytes in <journal>.torn, with a warning (unless this
        process's append just failed). Only while holding the journal's lock."""
        start = self.torn_tail()
        if start is None:
            return
        with open(self._file_path, "r+b") as f:
            f.seek(start)
            torn = f.read()
            kept = keep_aside(self._file_path + TORN, torn)
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
        where = f"kept in {self._file_path}{TORN}" if kept else "dropped"
        if warn:
            print(
                f"warning: {self._file_path} ended in a torn record ({len(torn)} bytes: a write cut short by a full "
                f"disk or a kill); cut off ({where}), the study is as it was before that write",
                file=sys.stderr,
            )


def last_line(f: Any, size: int) -> tuple[int, bytes]:
    """(offset, bytes) of the last line of the open binary file `f` of `size` bytes, its newline included."""
    data, start, block = b"", size, BLOCK
    while True:
        begin = max(0, start - block)
        f.seek(begin)
        data = f.read(start - begin) + data
        start, block = begin, block * 2
        cut = data.rfind(b"\n", 0, len(data) - 1)
        if cut >= 0 or start == 0:
            return start + cut + 1, data[cut + 1 :]


def is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def keep_aside(path: str, data: bytes) -> bool:
    """Append `data` (and a newline) to `path`; False if it cannot be written (a full disk)."""
    try:
        with open(path, "ab") as f:
            f.write(data.rstrip(b"\n") + b"\n")
    except OSError:
        return False
    return True


def damaged(path: str, error: Exception) -> UserError:
    """The one line for a journal with a bad record before its end: which line, and how to get a working study."""
    number, why = first_bad_line(path)
    why = why or (str(error).splitlines()[0] if str(error) else type(error).__name__)
    if number is None or number == 1:
        remedy = "restore it from a backup, or delete it and the search's run folders to start the search over"
    else:
        remedy = (
            f"restore it from a backup, or keep only the lines before it (`head -n {number - 1}`) to return the "
            "study to where it was then (trials asked later are lost)"
        )
    at = f", line {number}," if number is not None else ""
    return UserError(f"The Optuna study {path}{at} is damaged ({why}): {remedy}.")


def first_bad_line(path: str) -> tuple[int | None, str]:
    """The number of the first line of the journal that is no record (1-based), and why; (None, '') if none is."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return number, "a record without its line end"
            try:
                log = json.loads(line)
            except ValueError as e:
                return number, f"not JSON: {e}"
            if not isinstance(log, dict) or not isinstance(log.get("op_code"), int):
                return number, "not a record of Optuna's journal"
    return None, ""
