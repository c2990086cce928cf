"""What the data modules' loader workers share (src/data/files.py, src/data/streaming.py): how they start, and a
worker that died or failed as one line."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from src.data.prepared import DataFolderError
from src.errors import UserError

WORKER_DIED = re.compile(r"DataLoader worker \(pids?\(?s?\)? [\d, ]+\)")
IN_WORKER = "in DataLoader worker process"
RERUN = "run the same command again to resume"


def loader_failure(exception: BaseException, folder: str, remedy: str, dead: Sequence[int] = ()) -> UserError | None:
    """A one-line error for a loader worker that died (killed, out of memory) or failed reading `folder`; None for
    anything else. `dead`: the pids of workers found dead after `exception`."""
    text = str(exception)
    if isinstance(exception, RuntimeError) and WORKER_DIED.search(text):
        what = text.strip().splitlines()[0].rstrip(". ")
    elif dead:
        what = f"DataLoader worker (pid(s) {', '.join(map(str, dead))}) exited unexpectedly"
    elif IN_WORKER in text:  # re-raised from a worker: its own last line says what went wrong
        original = [line.strip() for line in text.splitlines() if line.strip()][-1]
        if isinstance(exception, DataFolderError):
            return DataFolderError(original.split(": ", 1)[-1])
        return UserError(f"a data loader worker failed reading {folder}: {original}; fix it, then {remedy}.")
    else:
        return None
    return UserError(
        f"a data loader worker reading {folder} died ({what}); the checkpoints in the run folder are whole: "
        f"{remedy} (if the machine ran out of memory, lower num_workers or batch_size)."
    )


def dead_workers(loaders: list[Any]) -> list[int]:
    """The pids of the loaders' workers that have exited, waiting a moment for each: a worker killed while handing
    over a batch makes the training process fail on the broken connection (ConnectionResetError, EOFError) before
    the kill is visible to DataLoader's own check."""
    pids = []
    for loader in loaders:
        for worker in getattr(getattr(loader, "_iterator", None), "_workers", []):
            try:
                worker.join(timeout=2)
            except RuntimeError as e:  # torch's SIGCHLD handler, seeing the death while we wait
                if not WORKER_DIED.search(str(e)):
                    raise
            if worker.exitcode not in (None, 0):
                pids.append(worker.pid)
    return pids


def raise_loader_failure(exception: BaseException, loaders: list[Any], folder: str) -> None:
    """From a data module's on_exception: a loader's failure as one line, its workers shut down (Lightning's
    teardown is skipped when that hook raises); anything else is left to propagate as it is."""
    broken_handover = isinstance(exception, (ConnectionError, EOFError))
    failure = loader_failure(exception, folder, RERUN, dead_workers(loaders) if broken_handover else [])
    if failure is None:
        return
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
    raise failure from exception


def worker_start(num_workers: int) -> str | None:
    """How workers start: forked from the training process on Linux, whatever the default start method of the
    process is (a job started warm by bin/run_local.py has forkserver's): a forked worker starts at once, with the
    data module as it is, and notices within seconds when its training process is killed (a worker started by a
    forkserver is that server's child and would wait forever)."""
    return "fork" if num_workers > 0 and sys.platform.startswith("linux") else None
