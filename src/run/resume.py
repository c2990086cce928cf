"""Resume: which checkpoint a run continues from, and whether it may continue with the config it is given.

Candidates, newest first: the newer of preempted.ckpt (saved on a SLURM preemption warning) and last.ckpt,
then previous.ckpt (the last.ckpt before). A candidate that cannot be loaded safely (truncated, garbage, or holding
arbitrary pickled objects) is skipped with a one-line warning and, once the run holds its lock, set aside as
`<name>.unusable` (so that it is neither tried again nor rotated into previous.ckpt); with none left the run starts
afresh.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

from src.config.bindings import parse_bindings, same_kind
from src.errors import UserError
from src.run import layout

# Bindings that may change when a run continues: they do not change what is being trained.
MAY_CHANGE = {
    "training_loop.n_epochs",
    "training_loop.resume",
    "training_loop.allow_config_change",
    "training_loop.num_threads",
    "training_loop.devices",
    "training_loop.num_nodes",
    "training_loop.strategy",
    "training_loop.accelerator",
    "training_loop.loggers",
    "training_loop.limit_test_batches",
    "training_loop.profiler",
    "training_loop.max_time",  # a wall-time limit per attempt (src/training/callbacks/time_limit.py)
    "lr_monitor.logging_interval",
    "lr_monitor.log_momentum",
    "lr_monitor.log_weight_decay",
    "model_summary.max_depth",
    "training_loop.compile",  # speed switches: the same model and arithmetic, computed faster (src/training/speed.py)
    "training_loop.channels_last",
    "training_loop.cudnn_benchmark",
    "training_loop.benchmark",
    "progress_log.every_n_steps",
    "tracker_metrics.step_loss_every",
    "heartbeat.interval",
    "finite_loss.check_every_n_steps",
    "preemption.ddp_every_n_steps",
}


# Parameters of any configurable that may change: where in-memory data lives (the same batches in the same order).
MAY_CHANGE_ANYWHERE = {"device_resident"}


def candidates(save_dir: Path) -> list[Path]:
    recent = [save_dir / layout.PREEMPTED_CKPT, save_dir / layout.LAST_CKPT]
    recent = sorted((p for p in recent if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    previous = save_dir / layout.PREVIOUS_CKPT
    return [*recent, previous] if previous.is_file() else recent


def checkpoint_problem(path: Path) -> str | None:
    """None if `path` loads safely (weights_only=True) as a Lightning training checkpoint, else why not."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage, or a forbidden pickled object
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return reason[:200]
    if not isinstance(checkpoint, dict) or not {"state_dict", "loops"} <= set(checkpoint):
        return "not a Lightning training checkpoint"
    return None


class Choice(NamedTuple):
    checkpoint: Path | None  # to resume from; None: start afresh
    warnings: list[str]  # one line each, to show
    unusable: list[Path]  # candidates that failed to load: run_session.session sets them aside once the lock is held


def choose_checkpoint(save_dir: Path, resume: bool) -> Choice:
    """The newest loadable checkpoint. Refuses a folder with checkpoints if not resume."""
    found = candidates(save_dir)
    if found and not resume:
        raise UserError(
            f"{str(save_dir)!r} already holds a checkpoint ({found[0].name}); resume with "
            "training_loop.resume=True or choose another SAVE_DIR."
        )
    warnings: list[str] = []
    unusable: list[Path] = []
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return Choice(path, warnings, unusable)
        warnings.append(f"warning: {path.name} is unusable ({problem}); trying an older checkpoint")
        unusable.append(path)
    if found:
        warnings.append(f"warning: no valid checkpoint in {save_dir}; starting from scratch")
    return Choice(None, warnings, unusable)


def may_change(binding: str) -> bool:
    """MAY_CHANGE, and every parameter of a logger or profiler: trackers may be added, removed or pointed elsewhere
    and profiling switched on or off when a run continues, which changes nothing that is trained."""
    from src.loggers import LOGGERS
    from src.training.profilers import PROFILERS

    configurable, _, parameter = binding.rsplit("/", 1)[-1].rpartition(".")
    may = binding in MAY_CHANGE or parameter in MAY_CHANGE_ANYWHERE
    return may or configurable in LOGGERS or configurable in PROFILERS


def config_changes(
    old_text: str, new_text: str, defaults: dict[str, Any] | None = None, resolved: dict[str, Any] | None = None
) -> list[tuple[str, Any, Any]]:
    """(binding, old, new) for every binding that differs, except those that may change, and a binding one side
    lacks while the other holds its default (a parameter that a newer version of the code added or stopped writing:
    the old run behaved as that default does). `defaults`: training_loop's and the Trainer's, by parameter name;
    `resolved`: the values the run gives bindings left at None (the checkpoint monitor follows the module)."""
    old, new = parse_bindings(old_text), parse_bindings(new_text)
    for side in (old, new):  # a change of what they resolve from (the module, its loss) shows as its own binding
        side.update({k: v for k, v in (resolved or {}).items() if side.get(k) is None})
    missing = "<unset>"
    return [
        (k, old.get(k, missing), new.get(k, missing))
        for k in sorted(set(old) | set(new))
        if not may_change(k)
        and same_kind(old.get(k, missing)) != same_kind(new.get(k, missing))
        and not one_side_default(k, old, new, defaults or {})
    ]


def one_side_default(binding: str, old: dict, new: dict, defaults: dict[str, Any]) -> bool:
    """The binding is on one side only, at its default there."""
    if (binding in old) == (binding in new):
        return False
    value = old[binding] if binding in old else new[binding]
    configurable, _, parameter = binding.rsplit("/", 1)[-1].rpartition(".")
    if configurable == "training_loop":
        return parameter in defaults and value == defaults[parameter]
    from src.registry import parameters, registered

    builder = registered(configurable)
    params = parameters(builder) if builder is not None else {}
    return parameter in params and value == params[parameter].default


def guard_config(
    save_dir: Path, operative: str, allow: bool, defaults: dict[str, Any], resolved: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    """Refuse to continue a run with a different config, unless allowed; return the changes. `defaults` are the
    training loop's own parameters' (the Trainer's are added here)."""
    from src.config.bindings import check_run_config, known_configurable
    from src.training.lightning_trainer import trainer_defaults

    stored = save_dir / layout.CONFIG
    if not stored.is_file():
        return []
    text = stored.read_text(errors="replace")  # garbage bytes: the check names the file and line
    check_run_config(text, stored, known_configurable, "restore it, or delete it to resume without comparing configs")
    changes = config_changes(text, operative, {**trainer_defaults(), **defaults}, resolved)
    if changes and not allow:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
        raise UserError(
            f"{str(save_dir)!r} was trained with another config ({listed}). Use another SAVE_DIR, "
            "or continue anyway with -b 'training_loop.allow_config_change=True'."
        )
    return changes


def finished_metrics(save_dir: Path, n_epochs: int) -> dict | None:
    """The stored results of a run that finished at least n_epochs, or stopped early or was pruned by its Optuna
    study (ways to finish: more epochs do not restart it), else None."""
    results = save_dir / layout.EVAL_RESULTS
    if (save_dir / layout.PRUNED).exists():
        return json.loads(results.read_text()) if results.is_file() else {}
    if not (save_dir / layout.FINISHED).exists() or not results.is_file():
        return None
    if layout.last_epoch(save_dir) >= n_epochs or layout.stopped_early(save_dir) is not None:
        try:
            stored = json.loads(results.read_text())
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
        return f"{save_dir} was pruned ({(save_dir / layout.PRUNED).read_text().strip()}); nothing to do."
    stop = layout.stopped_early(save_dir)
    if stop is None:
        return f"{save_dir} already finished {n_epochs} epochs; nothing to do."
    return (
        f"{save_dir} finished: stopped early after epoch {stop.get('epoch')} ({stop.get('reason')}: "
        f"{stop.get('message')}); nothing to do, also with more epochs. To continue it deliberately, delete "
        f"{save_dir / layout.FINISHED} and run again with a larger early_stopping.patience (or without early_stopping) "
        "and -b 'training_loop.allow_config_change=True', or train into another SAVE_DIR."
    )
