"""The config guard: a run continues only with the config it was trained with (the stored config.gin), except for
bindings that change nothing that is trained (epochs, devices, trackers, speed switches, ...), unless the user
allows the change (`training_loop.allow_config_change`), which the run then records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.config.bindings import parse_bindings, same_kind

if TYPE_CHECKING:
    from src.config.operative import OperativeConfig
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


def may_change(binding: str) -> bool:
    """MAY_CHANGE, and every parameter of a logger or profiler: trackers may be added, removed or pointed elsewhere
    and profiling switched on or off when a run continues, which changes nothing that is trained."""
    from src.loggers import LOGGERS
    from src.training.profilers import PROFILERS

    configurable, _, parameter = binding.rsplit("/", 1)[-1].rpartition(".")
    may = binding in MAY_CHANGE or parameter in MAY_CHANGE_ANYWHERE
    return may or configurable in LOGGERS or configurable in PROFILERS


def config_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    resolved: dict[str, Any] | None = None,
) -> list[tuple[str, Any, Any]]:
    """(binding, old, new) for every binding that differs, except those that may change, and a binding one side
    lacks while the other holds its default (a parameter that a newer version of the code added or stopped writing:
    the old run behaved as that default does). `old`, `new`: parsed bindings (src/config/bindings.py); `defaults`:
    training_loop's and the Trainer's, by parameter name; `resolved`: the values the run gives bindings left at None
    (the checkpoint monitor follows the module)."""
    old, new = dict(old), dict(new)
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
    save_dir: Path, operative: OperativeConfig, allow: bool, defaults: dict[str, Any], resolved: dict[str, Any]
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
    changes = config_changes(parse_bindings(text), operative.bindings, {**trainer_defaults(), **defaults}, resolved)
    if changes and not allow:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
        raise UserError(
            f"{str(save_dir)!r} was trained with another config ({listed}). Use another SAVE_DIR, "
            "or continue anyway with -b 'training_loop.allow_config_change=True'."
        )
    return changes
