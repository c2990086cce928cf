"""One writer per run folder: an fcntl lock on `<run>/LOCK`, held for the life of the process.

The kernel releases the lock when the holder dies, so a lock left by a killed process never blocks; the file
itself only records who held it last (pid and host), for the error message. A flock belongs to the open file, which
a forked child (a DataLoader worker) shares: children close their copy at once, so that workers outliving a killed
training (they notice within seconds) do not hold its folder meanwhile.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from src.errors import RunInUse

LOCK = "LOCK"
_held: dict[str, int] = {}  # run folder -> open file descriptor, kept open while we hold the lock


def _close_in_child() -> None:
    """After a fork, in the child: close its copies of the lock files (the parent's lock stays: it holds its own)."""
    for fd in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


def acquire(run_dir: str | Path) -> None:
    """Take the run's lock or raise RunInUse naming the holder. Re-entrant within one process."""
    key = str(Path(run_dir).resolve())
    if key in _held:
        return
    # never through a link (a received folder's LOCK could point at any file, which would be overwritten)
    fd = os.open(Path(run_dir) / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunInUse(
            f"{str(run_dir)!r} is in use by {holder}: one process per run folder "
            "(wait for it, or stop it; a crashed holder releases the lock by itself)."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[key] = fd


def release(run_dir: str | Path) -> None:
    fd = _held.pop(str(Path(run_dir).resolve()), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_held(run_dir: str | Path) -> bool | None:
    """Whether some process holds the run's lock (None if the run never took one). A LOCK that is a link or not a
    plain file (a FIFO would block the open) raises OSError: the run folder is damaged."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a plain file", str(path))
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases our probe lock
    return False
