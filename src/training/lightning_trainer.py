"""The Lightning Trainer of a run: every Trainer flag is settable from gin as `training_loop.<flag>` (precision,
devices, strategy, limit_train_batches, gradient_clip_val, max_time, ...) and passed through unchanged; the template
sets only what makes the run folder work (callbacks, loggers, checkpoint I/O, epochs, root folder).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from src.errors import UserError, did_you_mean, is_number

if TYPE_CHECKING:
    import pytorch_lightning as pl

SET_BY_THE_TEMPLATE = {  # Trainer flags the training loop sets itself: flag -> what to use instead
    "default_root_dir": "SAVE_DIR",
    "callbacks": "training_loop.callbacks",
    "logger": "training_loop.loggers",
    "plugins": "nothing (checkpoint I/O and SLURM handling are the template's)",
    "max_epochs": "training_loop.n_epochs",
    "profiler": "training_loop.profiler",
    "enable_checkpointing": "nothing (last.ckpt and best.ckpt are what resume and evaluation read)",
}
QUIET_WARNINGS = (  # noise that says nothing actionable about this template's set-up
    r".*does not have many workers.*",
    r".*exists and is not empty.*",
    r".*smaller than the logging interval.*",
    r".*The `srun` command is available.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def trainer_defaults() -> dict[str, Any]:
    """Every Trainer flag with its default."""
    import pytorch_lightning as pl

    params = inspect.signature(pl.Trainer.__init__).parameters
    found = {name: p.default for name, p in params.items() if name != "self" and p.kind is p.KEYWORD_ONLY}
    return found


def check_flags(flags: dict[str, Any], own_parameters: list[str]) -> None:
    """Unknown flags (typos of the training loop's own parameters too) and flags the template sets: one line each."""
    known = trainer_defaults()
    for name in flags:
        if name in SET_BY_THE_TEMPLATE:
            raise UserError(f"training_loop.{name} is set by the template: use {SET_BY_THE_TEMPLATE[name]} instead.")
        if name not in known:
            hint = did_you_mean(name, [*own_parameters, *known])
            raise UserError(
                f"Unknown parameter training_loop.{name}.{hint} Valid: the training loop's own "
                f"({', '.join(own_parameters)}) and pytorch_lightning.Trainer's flags."
            )
    limit = flags.get("limit_train_batches")
    if limit is not None and not isinstance(limit, bool) and limit == 0:
        raise UserError("training_loop.limit_train_batches = 0 trains nothing: use a positive number or fraction.")
    for name, (valid, what) in FLAG_VALUES.items():
        if name in flags and not valid(flags[name]):
            raise UserError(f"training_loop.{name} must be {what}, got {flags[name]!r}.")
    if flags.get("max_steps") not in (None, -1):
        raise UserError(
            f"training_loop.max_steps = {flags['max_steps']!r}: the template trains whole epochs "
            "(training_loop.n_epochs); to shorten each epoch, set training_loop.limit_train_batches."
        )
    if flags.get("max_time") is not None:
        from src.training.callbacks.time_limit import TimeLimit

        TimeLimit("", flags["max_time"])  # one line if it is no positive duration


def whole(at_least: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= at_least


# Trainer flags whose bad values Lightning accepts and then fails on deep inside a run (a ZeroDivisionError), or
# runs with silently: what each must be.
FLAG_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "accumulate_grad_batches": (whole(1), "a positive integer"),
    "check_val_every_n_epoch": (lambda v: v is None or whole(1)(v), "a positive integer or None"),
    "val_check_interval": (
        lambda v: v is None or (is_number(v) and v > 0),
        "a positive number (a fraction of an epoch, or a number of batches) or None",
    ),
    "gradient_clip_val": (lambda v: v is None or (is_number(v) and v >= 0), "a number >= 0 or None"),
    "num_sanity_val_steps": (lambda v: v is None or whole(-1)(v), "an integer >= -1 (-1: every batch) or None"),
    "inference_mode": (lambda v: isinstance(v, bool), "True or False"),
}


def check_values(flags: dict[str, Any]) -> None:
    """A Trainer built from the user's flags alone, thrown away: a value Lightning rejects (`precision = 'bf17'`,
    `strategy = 'dp2'`, more devices than there are) is a one-line error naming the flag before anything is built or
    written. The flag at fault is the one Lightning rejects on its own, else all of them together."""
    if not flags:
        return
    with quiet_lightning():  # SLURMEnvironment.detect() warns when srun exists but is not used
        allocation = slurm_allocation()
        if allocation is not None:  # devices and num_nodes against it: make_trainer, where rank 0 records a mismatch
            flags = {**flags, "devices": allocation[0], "num_nodes": allocation[1]}
        problem = trainer_problem(flags)
        if problem is None:
            return
        culprits = [name for name in flags if trainer_problem({name: flags[name]}) is not None]
    given = ", ".join(f"training_loop.{name} = {flags[name]!r}" for name in (culprits[:1] or flags))
    raise UserError(f"{given} is not valid: {problem}" if culprits else f"{given}: not valid together: {problem}")


def trainer_problem(flags: dict[str, Any]) -> str | None:
    """Lightning's reason (one line) for rejecting a Trainer with these flags (and the template's own), or None."""
    import pytorch_lightning as pl

    from src.errors import one_line

    rank_zero_logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = rank_zero_logger.level
    rank_zero_logger.setLevel(logging.WARNING)  # its "GPU available: ..." lines belong to the real Trainer
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pl.Trainer(**{"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, **flags})
    except Exception as e:  # ValueError, MisconfigurationException, TypeError, ImportError of a strategy's package
        return f"{type(e).__name__}: {one_line(e)}"
    finally:
        rank_zero_logger.setLevel(level)
    return None


def make_trainer(
    run_dir: str, n_epochs: int, callbacks: list, loggers: list, profiler: Any, data: Any, **flags: Any
) -> pl.Trainer:
    """A Trainer for the run (flags: the user's Trainer flags). max_time stops the run as resumable, not finished
    (src/training/callbacks/time_limit.py)."""
    import pytorch_lightning as pl

    from src.training.callbacks.time_limit import time_limit

    flags = {"enable_progress_bar": sys.stdout.isatty(), **follow_allocation(flags)}
    bar = [epochs_from_one_bar()] if flags["enable_progress_bar"] else []
    return pl.Trainer(
        default_root_dir=run_dir,
        callbacks=[*callbacks, *time_limit(run_dir, flags.pop("max_time", None)), *bar],
        logger=loggers or False,
        plugins=plugins(),
        max_epochs=n_epochs,
        profiler=profiler,
        **{"use_distributed_sampler": getattr(data, "use_distributed_sampler", True), **flags},  # False: shards itself
    )


def epochs_from_one_bar() -> Any:
    """Lightning's progress bar, with epochs counted from 1 as history.csv and the log lines count them."""
    from pytorch_lightning.callbacks import TQDMProgressBar

    class EpochsFromOne(TQDMProgressBar):
        def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
            super().on_train_epoch_start(trainer, *args)
            self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    return EpochsFromOne()


def slurm_allocation() -> tuple[int, int] | None:
    """(processes per node, nodes) of the SLURM job step this process belongs to (one process per task, started by
    srun: Lightning's SLURMEnvironment gives each its rank); None outside one."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    nodes = int(os.environ.get("SLURM_NNODES", os.environ.get("SLURM_JOB_NUM_NODES", "1")))
    tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    per_node = os.environ.get("SLURM_NTASKS_PER_NODE", "")
    return (int(per_node) if per_node.isdigit() else max(tasks // nodes, 1)), nodes


def device_count(devices: Any) -> int | None:
    """How many devices per node a `devices` flag asks for (None: 'auto' or -1, which follow the allocation)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        if devices.strip() in ("auto", "-1"):
            return None
        items = [d for d in devices.split(",") if d.strip()]
        return len(items) if "," in devices else int(devices) if devices.strip().isdigit() else None
    return devices if isinstance(devices, int) and devices > 0 else None


def follow_allocation(flags: dict[str, Any]) -> dict[str, Any]:
    """Under SLURM, devices='auto' and an unset num_nodes take the allocation's processes per node and nodes (the
    allocation is the one place to say them); a config that asks for something else is a one-line error here,
    before training, not a hang at the first collective."""
    allocation = slurm_allocation()
    if allocation is None:
        return flags
    per_node, nodes = allocation
    asked = device_count(flags.get("devices", "auto"))
    if (asked is not None and asked != per_node) or flags.get("num_nodes", nodes) != nodes:
        give_rank_zero_time()
    if asked is not None and asked != per_node:
        raise UserError(
            f"training_loop.devices={flags['devices']!r} asks for {asked} processes per node, but the SLURM "
            f"allocation runs {per_node} (--ntasks-per-node={per_node}): set training_loop.devices='auto' or "
            f"submit with --tasks-per-node {asked}."
        )
    if flags.get("num_nodes", nodes) != nodes:
        raise UserError(
            f"training_loop.num_nodes={flags['num_nodes']!r}, but the SLURM allocation has {nodes} node(s) "
            f"(--nodes={nodes}): leave training_loop.num_nodes unset or submit with --nodes {flags['num_nodes']}."
        )
    return {**flags, "devices": per_node if asked is None else flags["devices"], "num_nodes": nodes}


def give_rank_zero_time(seconds: float = 5.0) -> None:
    """Every process finds the same mismatch; the first to exit makes srun stop the others (--kill-on-bad-exit), so
    the processes other than rank 0 wait a moment: rank 0 records the reason in FAILED first."""
    import time

    if int(os.environ.get("SLURM_PROCID", "0")) != 0:
        time.sleep(seconds)


def plugins() -> list[Any]:
    """Atomic checkpoint writes; under SLURM, Lightning's own preemption handler off (the `preemption` callback
    saves at a batch boundary instead of inside the signal handler)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    from src.training.callbacks.checkpoint import RunCheckpointIO

    return [RunCheckpointIO(), *([SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else [])]


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's advertising and the warnings above, for the duration of a run."""

    class DropTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Tip:" not in str(record.msg)

    tips = DropTips()
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")  # where rank_zero_info logs
    logger.addFilter(tips)
    with warnings.catch_warnings():
        for pattern in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            yield
        finally:
            logger.removeFilter(tips)
