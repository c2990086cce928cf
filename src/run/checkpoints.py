"""The owner of a run's checkpoints: which one a run resumes from, which one its test and `load_model` use, and how
each is written, read, rotated and set aside. Every other module goes through here.

    best.ckpt       the best epoch by the monitored metric (the test, bin/evaluate.py and load_model use it)
    last.ckpt       the latest epoch; previous.ckpt is the last.ckpt before (a hard link, kept in case it is damaged)
    preempted.ckpt  saved mid-epoch on SLURM's preemption warning; superseded (removed) by the next last.ckpt
    *.unusable      a checkpoint that failed to load, set aside so that it is neither tried nor rotated again

Checkpoints are loaded with `torch.load(weights_only=True)` only (a received one must not run code), never
allocating more than the file's own size (a received one must not exhaust memory: see `bounded`), and a
checkpoint that is validated before use is read once: `load` keeps what it read for the one load that follows.
Writes are atomic (temporary file in the same folder, fsync, rename): a crash never leaves half a checkpoint.
No training code imported: analysis reads weights through `weights`.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

from src.errors import UserError, unknown
from src.run import layout

BEST, LAST, PREVIOUS, PREEMPTED = layout.BEST_CKPT, layout.LAST_CKPT, layout.PREVIOUS_CKPT, layout.PREEMPTED_CKPT
FOR_INFERENCE = {"best": BEST, "last": LAST}  # bin/evaluate.py --checkpoint, load_model(run, checkpoint)

_READ: dict[Path, tuple[float, Any]] = {}  # path -> (mtime, content) of the last validated checkpoint, read once


def load(path: str | os.PathLike, keep: bool = False) -> Any:
    """The checkpoint at `path`, read with weights_only=True onto the CPU; what `problem` read a moment ago (the same
    file, unchanged) is not read again. `keep`: keep it for the next `load` of the same file."""
    import torch

    path = Path(path)
    mtime = path.stat().st_mtime
    cached = _READ.pop(path, None)
    if cached is not None and cached[0] == mtime:
        content = cached[1]
    else:
        bounded(path)
        content = torch.load(path, map_location="cpu", weights_only=True)
    if keep:
        _READ.clear()  # one at a time: a checkpoint's tensors are the size of the model
        _READ[path] = (mtime, content)
    return content


def bounded(path: Path) -> None:
    """Raise ValueError unless `path` is an archive as torch.save writes it: a zip of stored (uncompressed) records
    that add up to no more than the file. A deflated record would unpack to up to 1000 times its size (a 2 MB file
    declaring a 2 GB tensor); a tensor declared larger than its record torch refuses before allocating."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"not an archive torch.save writes ({e})") from None
    packed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise ValueError(f"holds compressed records ({packed[0]}), which torch.save never writes")
    if sum(r.file_size for r in records) > size:
        raise ValueError(f"declares more bytes than its {size} (a damaged or forged archive)")


def problem(path: Path, keep: bool = False) -> str | None:
    """None if `path` loads safely as a Lightning training checkpoint, else why not (one line). `keep`: the
    content stays for the load that uses it (`load`)."""
    try:
        checkpoint = load(path, keep=keep)
    except Exception as e:  # truncated zip, garbage, or a forbidden pickled object
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return reason[:200]
    if not isinstance(checkpoint, dict) or not {"state_dict", "loops"} <= set(checkpoint):
        _READ.pop(path, None)
        return "not a Lightning training checkpoint"
    return None


def candidates(run_dir: Path) -> list[Path]:
    """The checkpoints a run may resume from, newest first: the newer of preempted.ckpt and last.ckpt, then
    previous.ckpt."""
    recent = [run_dir / PREEMPTED, run_dir / LAST]
    recent = sorted((p for p in recent if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    previous = run_dir / PREVIOUS
    return [*recent, previous] if previous.is_file() else recent


class Choice(NamedTuple):
    checkpoint: Path | None  # to resume from; None: start afresh
    warnings: list[str]  # one line each, to show
    unusable: list[Path]  # candidates that failed to load: to set aside (`set_aside`) once the run's lock is held


def choose(run_dir: Path, resume: bool) -> Choice:
    """The newest checkpoint that loads (kept in memory for the resume: read once). Refuses a folder with
    checkpoints if not `resume`."""
    found = candidates(run_dir) if run_dir.is_dir() else []
    if found and not resume:
        raise UserError(
            f"{str(run_dir)!r} already holds a checkpoint ({found[0].name}); resume with "
            "training_loop.resume=True or choose another SAVE_DIR."
        )
    warnings: list[str] = []
    unusable: list[Path] = []
    for path in found:
        why = problem(path, keep=True)
        if why is None:
            return Choice(path, warnings, unusable)
        warnings.append(f"warning: {path.name} is unusable ({why}); trying an older checkpoint")
        unusable.append(path)
    if found:
        warnings.append(f"warning: no valid checkpoint in {run_dir}; starting from scratch")
    return Choice(None, warnings, unusable)


def set_aside(unusable: list[Path]) -> None:
    """Rename checkpoints that failed to load to `<name>.unusable` (kept for inspection, replacing an older one), so
    that they are neither tried again nor rotated into previous.ckpt."""
    for path in unusable:
        if path.is_file():
            path.replace(path.with_name(path.name + layout.UNUSABLE_SUFFIX))


def tested(run_dir: Path) -> tuple[str, Path | None, dict[str, str]]:
    """(name, path, note) of the checkpoint the final test uses: best.ckpt; if it is damaged (truncated, garbage),
    last.ckpt, with a warning and a note for eval_results.json (every re-run would fail on it otherwise); without
    either, the weights in memory ("final"). The chosen one stays read for the test's load."""
    best, last = run_dir / BEST, run_dir / LAST
    if not best.is_file():
        return "final", None, {}
    why = problem(best, keep=True)
    if why is None:
        return "best", best, {}
    fallback = ("last", last) if last.is_file() and problem(last, keep=True) is None else ("final", None)
    note = f"{BEST} is damaged ({why}): tested the {fallback[0]} checkpoint instead"
    print(f"warning: {note}", file=sys.stderr)
    return fallback[0], fallback[1], {"note": note}


def for_inference(run_dir: str | os.PathLike, checkpoint: str = "best") -> Path:
    """The path of a run's `best` or `last` checkpoint, for evaluation and `load_model`; one line if there is none."""
    run_dir = Path(run_dir)
    if checkpoint not in FOR_INFERENCE:
        raise UserError(unknown("checkpoint", checkpoint, FOR_INFERENCE))
    if not layout.is_run_dir(run_dir):
        raise UserError(f"{str(run_dir)!r} is not a run folder (no {layout.CONFIG}).")
    path = run_dir / FOR_INFERENCE[checkpoint]
    if not path.is_file():
        raise UserError(f"{str(run_dir)!r} has no {path.name}: train it first (bin/train.py {run_dir} CONFIGS).")
    return path


def weights(path: Path) -> dict[str, Any]:
    """The `state_dict` (the model's weights) of a checkpoint; one line naming it if it has none or cannot be read
    safely."""
    try:
        content = load(path)
    except Exception as e:
        raise UserError(f"Cannot load {path} safely (weights_only=True): {str(e).splitlines()[0]}") from e
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict).")
    return content["state_dict"]


# --- writing ------------------------------------------------------------------------------------------------------

SAFE_LEAVES = (int, float, bool, str, bytes, type(None))  # exactly these: numpy.float64 is a float subclass
CONTAINERS = (dict, OrderedDict, list, tuple, set, frozenset)


def save(checkpoint: dict[str, Any], path: Path) -> None:
    """Write `checkpoint` to `path` atomically. A new last.ckpt first keeps the one before as previous.ckpt and, once
    written, removes the (older) preemption checkpoint. Refuses content that weights_only loading would refuse (the
    run could never resume from it), naming where it lies."""
    import torch

    if (where := unloadable(checkpoint)) is not None:
        raise UserError(
            f"{path.name} would hold {where}, which torch.load(weights_only=True) refuses, so the run could "
            "never resume from it: store Python numbers, strings, lists, dicts or tensors in checkpoints (a "
            "callback's state_dict, a module's on_save_checkpoint), e.g. float(x) for a numpy number."
        )
    if path.name == LAST and path.is_file():
        keep_previous(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~layout.UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        full = layout.disk_full(e, path.parent)
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise layout.no_space(path) from e
        raise
    if path.name == LAST:  # a newer epoch-end checkpoint: the preemption checkpoint is stale
        path.with_name(PREEMPTED).unlink(missing_ok=True)


def keep_previous(last: Path) -> None:
    """previous.ckpt := last.ckpt, atomically (a hard link renamed into place; no copy)."""
    link = last.with_name(f".{PREVIOUS}.tmp")
    link.unlink(missing_ok=True)
    os.link(last, link)
    os.replace(link, last.with_name(PREVIOUS))


def unloadable(value: Any, where: str = "checkpoint") -> str | None:
    """Where in `value` something lies that weights_only loading refuses (`checkpoint['callbacks']['x']: a
    numpy.float64`), or None: a numpy number that a callback keeps would make every checkpoint unusable, and every
    resume start afresh."""
    import torch

    if isinstance(value, torch.Tensor) or type(value) in SAFE_LEAVES:
        return None
    if type(value) not in CONTAINERS:  # anything else: as torch would load it
        buffer = io.BytesIO()
        torch.save(value, buffer)
        buffer.seek(0)
        try:
            torch.load(buffer, weights_only=True)
        except Exception:
            return f"{where}: a {type(value).__module__}.{type(value).__qualname__}"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if (found := unloadable(item, f"{where}[{key!r}]")) is not None:
            return found
    return None
