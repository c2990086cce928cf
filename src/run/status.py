"""The owner of a run's status: the one reader (`status_of`) and the one writer of each marker file (FINISHED, FAILED,
PRUNED), and the one rule for whether a training process's exit code is a failure of its run (`record_exit`), which
the local runner calls in Python and batch.sh and the SLURM task script through

    python -m src.run.status exited RUN_DIR EXIT_CODE

    pending   never started (no HEARTBEAT)
    running   a fresh HEARTBEAT and the run's lock held
    dead      stopped without finishing (killed, interrupted, preempted, out of time): the same command resumes it
    failed    FAILED holds the error of its last attempt
    finished  FINISHED: tested, eval_results.json written; never trained again
    pruned    PRUNED: stopped early by its Optuna study's pruner, then tested and finished like any other run
Imports nothing heavy: analysis code and the runners read statuses too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from src.errors import RunInUse
from src.run import layout, lock
from src.run.layout import FAILED, FINISHED, HEARTBEAT, PRUNED
from src.run.reading import read_json, read_text

DONE = ("finished", "pruned")  # statuses of a run that is never trained again
STALE_HEARTBEATS = 4  # a run whose HEARTBEAT is older than this many intervals (and MIN_STALE_SECONDS) is dead
MIN_STALE_SECONDS = 120.0
# Exit codes that are no failure: success, an interruption (Ctrl-C, preemption: the run resumes), and "another process
# trains in this folder" (RunInUse: the run is not this process's).
NOT_A_FAILURE = (0, 130, -signal.SIGINT, RunInUse.exit_code)


def heartbeat_is_stale(run_dir: str | os.PathLike, now: float | None = None) -> bool:
    beat = Path(run_dir) / HEARTBEAT
    try:
        age = (time.time() if now is None else now) - beat.stat().st_mtime
        if not beat.is_file():  # damaged (a folder, a FIFO): reading could fail or hang
            return True
        interval = float(read_text(beat, 64).strip() or 0)
    except (OSError, ValueError):
        return True
    return age > max(STALE_HEARTBEATS * interval, MIN_STALE_SECONDS)


def status_of(run_dir: str | os.PathLike, now: float | None = None) -> str:
    """pending | running | dead | failed | finished | pruned (see above)."""
    run_dir = Path(run_dir)
    if (run_dir / PRUNED).exists():  # checked first: a pruned run ends like a finished one, FINISHED included
        return "pruned"
    if (run_dir / FINISHED).exists():
        return "finished"
    if (run_dir / FAILED).exists():
        return "failed"
    if (run_dir / HEARTBEAT).exists():
        # A free lock means the process is gone even if its last heartbeat is recent (e.g. scancel).
        alive = not heartbeat_is_stale(run_dir, now) and lock.is_held(run_dir) is not False
        return "running" if alive else "dead"
    return "pending"


def finish(run_dir: Path, end_time: str) -> None:
    """Mark a run finished: the last thing a successful run writes, so that readers see a complete folder."""
    layout.touch(run_dir / FINISHED, end_time + "\n")


def prune(run_dir: Path, why: str) -> None:
    """Mark a run pruned by its study (written just before `finish`)."""
    layout.touch(run_dir / PRUNED, why.rstrip("\n") + "\n")


def fail(run_dir: Path, reason: str) -> None:
    """Record why the run's last attempt failed (its error, or the exit code of its process)."""
    layout.touch(run_dir / FAILED, reason.rstrip("\n") + "\n")


def clear(run_dir: Path) -> None:
    """A new attempt starts: the markers of the last one go (a finished run is never started again)."""
    for marker in (FINISHED, FAILED):
        (run_dir / marker).unlink(missing_ok=True)


def record_exit(run_dir: str | os.PathLike, code: int) -> bool:
    """The one rule for a training process's exit code: a failure of the run is any code but NOT_A_FAILURE, unless
    the run finished or recorded its own failure, or another process trains it now (its lock is held). A failure is
    recorded in FAILED ("exit code N"); returns whether it was."""
    run_dir = Path(run_dir)
    if code in NOT_A_FAILURE or not run_dir.is_dir() or run_dir.is_symlink():
        return False
    try:
        lock.acquire(run_dir)  # another runner may have started the run meanwhile: then it is not failed
    except (RunInUse, OSError):
        return False
    try:
        if any((run_dir / marker).exists() or (run_dir / marker).is_symlink() for marker in (FINISHED, FAILED)):
            return False
        fail(run_dir, f"exit code {code}")
        return True
    finally:
        with contextlib.suppress(OSError):
            lock.release(run_dir)


def finished_results(save_dir: Path, n_epochs: int) -> dict | None:
    """The stored results of a run that finished at least n_epochs, or stopped early or was pruned by its Optuna
    study (ways to finish: more epochs do not restart it), else None."""
    results = save_dir / layout.EVAL_RESULTS
    if (save_dir / layout.PRUNED).exists() and results.is_file():
        if not (save_dir / layout.FINISHED).exists():  # killed between its two markers: complete them
            finish(save_dir, read_text(save_dir / layout.PRUNED, 4096).strip())
        return read_json(results)
    if not (save_dir / layout.FINISHED).exists() or not results.is_file():
        return None
    if layout.last_epoch(save_dir) >= n_epochs or layout.stopped_early(save_dir) is not None:
        try:
            stored = read_json(results)
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:  # damaged: the run tests its best checkpoint again and rewrites it
            print(f"warning: {results} is damaged ({e}); testing the best checkpoint again", file=sys.stderr)
            return None
        return stored
    return None


def nothing_to_do(save_dir: Path, n_epochs: int) -> str:
    """What the same command says for a finished run."""
    if (save_dir / layout.PRUNED).exists():
        return f"{save_dir} was pruned ({read_text(save_dir / layout.PRUNED, 4096).strip()}); nothing to do."
    stop = layout.stopped_early(save_dir)
    if stop is None:
        return f"{save_dir} already finished {n_epochs} epochs; nothing to do."
    return (
        f"{save_dir} finished: stopped early after epoch {stop.get('epoch')} ({stop.get('reason')}: "
        f"{stop.get('message')}); nothing to do, also with more epochs. To continue it deliberately, delete "
        f"{save_dir / layout.FINISHED} and run again with a larger early_stopping.patience (or without early_stopping) "
        "and -b 'training_loop.allow_config_change=True', or train into another SAVE_DIR."
    )


def main(argv: list[str]) -> int:
    """`python -m src.run.status exited RUN_DIR CODE` (batch.sh, the SLURM task script): `record_exit`."""
    if len(argv) != 3 or argv[0] != "exited" or not argv[2].lstrip("-").isdigit():
        print("usage: python -m src.run.status exited RUN_DIR EXIT_CODE", file=sys.stderr)
        return 2
    record_exit(argv[1], int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
