"""What the optional trackers (mlflow, neptune, wandb) share: importing their package with a one-line error when it
is missing, where results live, the default experiment name, run ids kept in the run folder, the run folder's files
each tracker run gets, and closing runs that a previous training of this process left open.

Imports nothing heavy: the tracker packages are imported by the builders only, when the logger is used.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from src.errors import UserError
from src.run import layout
from src.run.reading import read_text

INSTALL_HINT = "pip install -e '.[{extra}]' (or pip install -r requirements-extras.txt)"


def require(package: str, logger: str | None = None, extra: str | None = None) -> ModuleType:
    """Import `package` for the logger of that name; a missing package is one line saying what to install."""
    logger, extra = logger or package, extra or package
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != package.split(".")[0]:  # a dependency of it is missing
            raise UserError(
                f"The {logger!r} logger cannot import {package}: {e}. Reinstall it: " + INSTALL_HINT.format(extra=extra)
            ) from e
        raise UserError(
            f"The {logger!r} logger needs the {package} package: " + INSTALL_HINT.format(extra=extra)
        ) from e


def experiment_name(run_dir: str | os.PathLike) -> str:
    """The folder holding the run, relative to $RESULTS_DIR ('tune_lr/small' for results/tune_lr/small/lr=0.1);
    'default' for a run directly in $RESULTS_DIR; the parent folder's name for a run outside $RESULTS_DIR."""
    parent = Path(run_dir).resolve().parent
    try:
        relative = parent.relative_to(layout.results_root().resolve())
    except ValueError:
        return parent.name or "default"
    return relative.as_posix() if relative.parts else "default"


def slug(name: str) -> str:
    """A name without the characters some trackers refuse in project names (/ \\ # ? % :)."""
    return re.sub(r"[/\\#?%:]+", "-", name).strip("-") or "default"


def read_id(path: Path) -> str | None:
    """The tracker run id stored in the run folder by an earlier attempt, if any."""
    try:
        text = read_text(path, 4096).strip()
    except FileNotFoundError:
        return None
    return text or None


def write_id(path: Path, run_id: str) -> None:
    if read_id(path) != run_id and path.parent.is_dir():
        layout.write_atomic(path, run_id + "\n")


def run_files(run_dir: str | os.PathLike, checkpoints: bool = False) -> list[Path]:
    """The files a tracker run gets when it is closed (after the final test), so that it reads on its own in the
    tracker's UI: config.gin and eval_results*.json; with `checkpoints`, best.ckpt and last.ckpt too."""
    run = Path(run_dir)
    names = [layout.CONFIG, *sorted(p.name for p in run.glob("eval_results*.json"))]
    if checkpoints:
        names += [layout.BEST_CKPT, layout.LAST_CKPT]
    return [run / name for name in names if (run / name).is_file()]


def snapshot(source: Path, target: Path) -> None:
    """`target` holds `source`'s content as it is now: a hard link where possible (the run folder's files are replaced,
    never written in place, so the link keeps this version), else a copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# `new_run` (an attribute of this template's loggers): True when the logger starts a new tracker run rather than
# continuing the one an earlier attempt in the run folder wrote to (a tracker added on resume, a tracker run that was
# deleted, every attempt of an offline Neptune run). src/training/callbacks/tracker_metrics.py sends such a run the rows
# of history.csv from before the attempt, so that it holds the whole history.

# Trackers whose run stays open until closed (neptune, wandb): Lightning calls `finalize` after fit and again after
# test, so `finalize` only flushes and `close()` ends the run. The training loop may call `close()` at its end;
# otherwise a later training of this process that builds a logger of the same kind closes the previous one
# (trainings of one process run one after the other), and the tracker's own exit hook closes the last one.
_open: dict[str, Any] = {}


def replace_open(kind: str, logger: Any) -> Any:
    previous = _open.pop(kind, None)
    if previous is not None and previous is not logger:
        previous.close()
    _open[kind] = logger
    return logger


def close_all() -> None:
    """Close every tracker run this process still has open (tests; the end of an in-process sweep)."""
    while _open:
        _, logger = _open.popitem()
        logger.close()


def close_loggers(loggers: list[Any]) -> None:
    """End the tracker runs that stay open after Lightning's `finalize` (neptune, wandb), so their files are complete
    when the training returns. A tracker failing to close must not hide the run's own outcome."""
    for logger in loggers:
        if hasattr(logger, "close"):
            try:
                logger.close()
            except Exception as e:
                print(f"warning: closing the {type(logger).__name__} failed: {e}", file=sys.stderr)
