"""One training attempt's hold on its run folder (`attempt`), and the checks before it: a save folder that is no
danger to the repository or to other runs, a run folder that holds only plain files. The names of the files are
src/run/layout.py's."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from src.errors import UserError
from src.run import lock, status
from src.run.layout import (
    CODE_FOLDERS,
    CODE_ROOT,
    RUN_SEARCH_DEPTH,
    STDERR,
    STDOUT,
    DiskFull,
    is_run_dir,
    results_root,
)


def check_save_dir(save_dir: str | os.PathLike) -> None:
    """Refuse a SAVE_DIR that is the repository, holds it, or lies inside one of its code folders (the run's files,
    its input config copies under configs/ first, would overwrite the code), and a folder that is not a run folder
    but holds runs (the new run would hide them from bin/runs.py and load_runs). Reads only; called before anything
    is created or locked."""
    path = Path(save_dir).resolve()
    if path == CODE_ROOT or path in CODE_ROOT.parents:
        raise UserError(
            f"SAVE_DIR {str(save_dir)!r} is the repository or a folder above it: a run there would overwrite the "
            f"repository's files. Choose a run folder under {results_root()}."
        )
    for name in CODE_FOLDERS:
        if path.is_relative_to(CODE_ROOT / name):
            raise UserError(
                f"SAVE_DIR {str(save_dir)!r} lies inside the repository's {name}/ folder: a run there would mix with "
                f"(or overwrite) its files. Choose a run folder under {results_root()}."
            )
    if path.is_dir() and not is_run_dir(path) and (inner := first_run_inside(path)) is not None:
        raise UserError(
            f"SAVE_DIR {str(save_dir)!r} already holds runs ({inner.relative_to(path)}, ...) and is not one itself: "
            f"a run there would hide them from bin/runs.py and load_runs. Choose a new folder, e.g. {save_dir}/NAME."
        )


def first_run_inside(folder: Path, depth: int = RUN_SEARCH_DEPTH) -> Path | None:
    """A run folder strictly inside `folder` (looking `depth` levels down, not inside runs), or None."""
    level = [folder]
    for _ in range(depth):
        below = []
        for parent in level:
            try:
                children = sorted(p for p in parent.iterdir() if p.is_dir() and not p.is_symlink())
            except OSError:
                continue
            for child in children:
                if is_run_dir(child):
                    return child
                below.append(child)
        level = below
    return None


def remove_partial_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete temporary files a killed process left half-written (the real files were never touched)."""
    partial = sorted(Path(run_dir).glob(".*.tmp"))
    for path in partial:
        path.unlink(missing_ok=True)
    return partial


# Folders a tracker's own client writes, links included (wandb links its latest run, and its log to its cache
# outside the run): not checked inside; the folder itself must be a real one.
TRACKER_FOLDERS = ("wandb",)


def check_plain(run_dir: str | os.PathLike) -> None:
    """A run folder to train in holds only plain files and folders (and, below its top level, links that stay inside
    it). A link out of it (or a FIFO, socket or device) in a received folder would make the run write outside it
    (appending to stdout.txt, taking LOCK, saving into tensorboard/) or hang. One line naming the first such entry."""
    import stat

    inside = Path(run_dir).resolve()
    for folder, dirs, files in os.walk(Path(run_dir)):  # never follows links
        top = Path(folder) == Path(run_dir)  # the top level's files are opened by name (LOCK, stdout.txt)
        for name in [*dirs, *files]:
            path = Path(folder) / name
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:  # a temporary file of a process still writing there (the lock decides)
                continue
            if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                continue
            if stat.S_ISLNK(mode):
                target = path.resolve()
                if not target.is_relative_to(inside) or target == inside:
                    what = "a link out of it"
                elif top:
                    what = "a link at its top level"
                else:
                    continue
            else:
                what = "not a plain file"
            raise UserError(f"{path} is {what}: a run folder holds only plain files and folders; remove it, then "
                            "re-run.")  # fmt: skip
        if top:
            dirs[:] = [d for d in dirs if d not in TRACKER_FOLDERS]


def tee_output(run_dir: str | os.PathLike) -> AbstractContextManager[None]:
    """Context manager copying stdout/stderr into the run's stdout.txt/stderr.txt (appending)."""
    from src.run.tee import tee_output as tee

    return tee(Path(run_dir) / STDOUT, Path(run_dir) / STDERR)


def make(save_dir: Path) -> bool:
    """Create the run folder if needed; True if this call created it."""
    if save_dir.exists() and not save_dir.is_dir():
        raise UserError(f"SAVE_DIR {str(save_dir)!r} is a file, not a folder.")
    if save_dir.is_dir():
        return False
    try:
        save_dir.mkdir(parents=True)
    except OSError as e:
        raise UserError(f"Cannot create SAVE_DIR {str(save_dir)!r}: {e.strerror}.") from e
    return True


@dataclass
class Attempt:
    """What an attempt has got to: an error before `committed` (its checks and resume plan, made under the lock)
    leaves an existing folder untouched; one after it leaves FAILED; a folder the attempt created and never `started`
    training in is removed."""

    committed: bool = False  # the plan is made: the run folder is this attempt's
    started: bool = False  # training is under way


@contextlib.contextmanager
def attempt(save_dir: Path, owner: bool) -> Iterator[Attempt]:
    """One training attempt's hold on its run folder, in the process that owns it (`owner`: rank zero; other
    processes get a bare Attempt). Creates the folder, takes its lock before anything is read to plan the attempt or
    written (a folder in use stays untouched), clears half-written files, copies stdout/stderr into it; on an error
    writes FAILED with the reason or removes what it created (see Attempt); releases the lock. A folder holding links
    or special files is refused before anything is written."""
    state = Attempt()
    if not owner:
        yield state
        return
    created = make(save_dir)
    check_plain(save_dir)
    lock.acquire(save_dir)
    try:
        remove_partial_files(save_dir)
        with tee_output(save_dir):
            yield state
    except Exception as e:
        if created and not state.started:
            shutil.rmtree(save_dir, ignore_errors=True)  # never started: leave nothing behind
        elif state.committed and save_dir.is_dir():
            with contextlib.suppress(OSError, DiskFull):  # on a full disk, FAILED may not fit either: the error shows
                status.fail(save_dir, f"{type(e).__name__}: {e}")
        raise
    finally:
        lock.release(save_dir)
