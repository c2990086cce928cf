"""The run-folder layout: every file name a run writes, and how a file is written there (atomically). The run's
status is src/run/status.py's, its checkpoints src/run/checkpoints.py's.

A run folder (SAVE_DIR) holds (see results/README.md for the full description):

    config.gin            operative gin config (every parameter actually used)
    metrics.json          the module's metrics, their direction (min/max) and the main one (metric_directions.py)
    configs/              copies of the input config files
    bindings.txt          the -b bindings, one per line
    meta.json             command, host, device, git commit, versions, start/end times of every attempt
    git_diff.patch        uncommitted changes of the code at start
    packages.txt          every installed distribution, name==version, at start
    stdout.txt stderr.txt everything printed (appended on resume)
    history.csv           one row per epoch
    tensorboard/          TensorBoard event files
    last.ckpt best.ckpt   checkpoints (last epoch, best by the monitored metric)
    previous.ckpt         the last.ckpt before, kept in case the newest is damaged
    preempted.ckpt        saved at a batch boundary when SLURM warned of preemption (SIGUSR1): resumed from if
                          newer than last.ckpt, removed once an epoch-end last.ckpt supersedes it
    *.unusable            a checkpoint that could not be loaded on resume, set aside (not resumed from again)
    profile/              reports of the profiler chosen by training_loop.profiler (fit-profile.txt, ...)
    eval_results.json     test metrics of the best checkpoint after training
    eval_results_<ckpt>.json  written by bin/evaluate.py
    HEARTBEAT             touched every few seconds while the run is alive
    LOCK                  held (fcntl) by the one process training in the folder; names the last holder
    mlflow_run_id.txt, wandb_run_id.txt, neptune_run_id.txt   tracker run ids, to continue the same tracker run
    wandb/ .neptune/      local files of those trackers (when used)
    FINISHED              touched only after a successful end
    FAILED                the error of the last attempt, if it failed
    PRUNED                why an Optuna study's pruner stopped the run early (src/searches/optuna_pruning.py)

A training attempt's hold on its run folder (create, check, lock, FAILED) is src/run/session.py.
This module imports nothing heavy: results analysis and runners use it too.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.errors import UserError
from src.run import reading

CODE_ROOT = Path(__file__).resolve().parents[2]  # the repository: bin/, src/, configs/
# The repository's own folders: no run folder may lie inside them (its files would overwrite or mix with code).
CODE_FOLDERS = ("src", "bin", "configs", "tests", "experiments", "bench", ".git", ".ci")
RUN_SEARCH_DEPTH = 4  # how deep check_save_dir looks for runs inside a SAVE_DIR (RESULTS_DIR/experiment/sweep/run)

CONFIG = "config.gin"
INPUT_CONFIGS = "configs"
BINDINGS = "bindings.txt"
META = "meta.json"
GIT_DIFF = "git_diff.patch"
PACKAGES = "packages.txt"  # every installed distribution at start (src/run/environment.py)
STDOUT = "stdout.txt"
STDERR = "stderr.txt"
HISTORY = "history.csv"
METRICS = "metrics.json"  # written and read by src/run/metric_directions.py
TENSORBOARD = "tensorboard"
LAST_CKPT = "last.ckpt"
PREVIOUS_CKPT = "previous.ckpt"  # the last.ckpt before the current one: the fallback if that one is damaged
BEST_CKPT = "best.ckpt"
PREEMPTED_CKPT = "preempted.ckpt"  # saved on a SLURM preemption warning (src/training/callbacks/preemption.py)
UNUSABLE_SUFFIX = ".unusable"  # appended to a checkpoint that failed to load on resume
EVAL_RESULTS = "eval_results.json"
PROFILE_DIR = "profile"
HEARTBEAT = "HEARTBEAT"
FINISHED = "FINISHED"
FAILED = "FAILED"
PRUNED = "PRUNED"  # stopped early by its study's pruner: done, never resumed (src/searches/optuna_search.py)

LOW_SPACE = 16 * 2**20  # bytes free under which a failed write is put down to a full disk

UMASK = os.umask(0o022)
os.umask(UMASK)


RECORDS = (CONFIG, BINDINGS, META, METRICS, HISTORY, EVAL_RESULTS, GIT_DIFF, PACKAGES, FINISHED, FAILED, PRUNED)


def irregular(run_dir: str | os.PathLike) -> str | None:
    """Why the run at `run_dir` is damaged if one of its records (RECORDS, eval_results_*.json) exists but is no
    regular file or is larger than reading.LIMIT (readers would fail on it); None when all are fine."""
    import stat

    run_dir = Path(run_dir)
    for path in [*(run_dir / name for name in RECORDS), *sorted(run_dir.glob("eval_results_*.json"))]:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            return f"{path}: {e.strerror or e}"
        if not stat.S_ISREG(info.st_mode):
            return f"{path} is not a regular file"
        if info.st_size > reading.LIMIT:
            return f"{path} is larger than {reading.LIMIT // 2**20} MiB"
    return None


def results_root() -> Path:
    """Where run folders go: $RESULTS_DIR, else results/ in the repository."""
    return Path(os.environ.get("RESULTS_DIR") or CODE_ROOT / "results")


def eval_results_name(checkpoint: str) -> str:
    return f"eval_results_{checkpoint}.json"


def is_run_dir(path: str | os.PathLike) -> bool:
    """A folder is a run folder once it holds its operative config."""
    return (Path(path) / CONFIG).is_file()


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file so that readers see the old or the new content, never a half-written one.
    Secrets from the environment are masked (src/run/secrets.py): every text file of a run goes through here."""
    from src.run.secrets import redact

    text = redact(text)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        full = disk_full(e, path.parent)
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise no_space(path) from e
        raise


class DiskFull(UserError):
    """A write failed because the disk (or quota) is full: the run resumes exactly once space is freed."""


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether a failed write is due to a full disk: ENOSPC/EDQUOT, or torch.save's RuntimeError ('unexpected pos
    N vs M', 'file write failed') on a file system with almost no space left (checked before the partial file is
    removed)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, RuntimeError) and any(s in str(error) for s in ("unexpected pos", "write failed")):
        try:
            stats = os.statvfs(folder)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize < LOW_SPACE
    return False


def no_space(path: Path) -> DiskFull:
    return DiskFull(
        f"No space left on device while writing {path}: free some space, then re-run the same command to resume."
    )


def touch(path: str | os.PathLike, text: str = "") -> None:
    write_atomic(path, text)


def save_inputs(run_dir: str | os.PathLike, config_files: Sequence[str], bindings: Sequence[str]) -> None:
    """Copies of the input config files (under configs/) and the bindings, one per line."""
    run_dir = Path(run_dir)
    folder = run_dir / INPUT_CONFIGS
    folder.mkdir(exist_ok=True)
    used: set[str] = set()
    for i, path in enumerate(config_files):
        name = Path(path).name if Path(path).name not in used else f"{i}_{Path(path).name}"
        used.add(name)
        write_atomic(folder / name, Path(path).read_text())
    write_atomic(run_dir / BINDINGS, "".join(f"{b}\n" for b in bindings))


def write_eval_results(run_dir: str | os.PathLike, metrics: dict, checkpoint: str | None = None) -> Path:
    """eval_results.json (after training) or eval_results_<checkpoint>.json (bin/evaluate.py)."""
    import json

    path = Path(run_dir) / (eval_results_name(checkpoint) if checkpoint else EVAL_RESULTS)
    write_atomic(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def last_epoch(run_dir: str | os.PathLike) -> int:
    """The last epoch recorded in history.csv (0 if none, or if the file is damaged: a warning names it, and the
    resumed run rewrites it from its checkpoint, which holds every row)."""
    import csv
    import io
    import sys

    path = Path(run_dir) / HISTORY
    try:
        rows = list(csv.DictReader(io.StringIO(reading.read_text(path), newline="")))
        return int(rows[-1]["epoch"]) if rows else 0
    except FileNotFoundError:
        return 0
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, csv.Error) as e:
        reason = f"no column {e}" if isinstance(e, KeyError) else str(e).splitlines()[0][:120]
        print(f"warning: {path} is damaged ({reason}); it is rewritten from the checkpoint", file=sys.stderr)
        return 0


# meta.json's fields that readers use, by type: a field of another type is left out as if absent.
META_TYPES: dict[str, type] = {
    "versions": dict,
    "attempts": list,
    "stopped_early": dict,
    "argv": list,
    "git_commit": str,
    "cwd": str,
    "hostname": str,
    "device": str,
}


def read_meta(run_dir: str | os.PathLike, strict: bool = False) -> dict[str, Any]:
    """meta.json as a dict, {} if it is missing. Fields of the wrong type (META_TYPES) are left out, and so are
    attempts that are no objects, arguments and versions that are no text. A damaged file (unreadable, not JSON, not
    an object) is {} as well, so that analysis goes on without it; with `strict`, a UserError naming it. One that is
    no regular file, too large or nested too deep (src/run/reading.py) is always a UserError naming it."""
    path = Path(run_dir) / META
    try:
        meta = reading.read_json(path)
        if not isinstance(meta, dict):
            raise ValueError(f"not a JSON object but {type(meta).__name__}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if isinstance(e, reading.Unreadable):  # hostile (a FIFO, a device, nested deep): the run is damaged
            raise UserError(str(e)) from e
        if strict:
            raise UserError(f"{path} is damaged ({str(e).splitlines()[0][:120]}): restore it from a backup.") from e
        return {}
    meta = {k: v for k, v in meta.items() if isinstance(v, META_TYPES.get(k, object))}
    if "attempts" in meta:
        meta["attempts"] = [a for a in meta["attempts"] if isinstance(a, dict)]
    if "argv" in meta and not all(isinstance(a, str) for a in meta["argv"]):
        del meta["argv"]
    if "versions" in meta:
        meta["versions"] = {str(k): v for k, v in meta["versions"].items() if isinstance(v, str)}
    return meta


def stopped_early(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """meta.json's record of an early stop (reason, epoch, message), or None (none, or meta.json damaged)."""
    return read_meta(run_dir).get("stopped_early")
