"""The gin-configurable training loop: builds the run's parts by name (src/training/parts.py), trains them with resume
inside the run folder's session (src/run/session.py), tests the best checkpoint, and returns the final metrics.

    training_loop("results/cnn", n_epochs=5)  # after gin parsed the configs

Every other `training_loop.<flag>` binding is a Lightning Trainer flag (src/training/lightning_trainer.py).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import tempfile
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gin

from src.checks import integer
from src.errors import UserError
from src.loggers import common
from src.registry import in_words, matches
from src.run import layout, metric_directions
from src.run import resume as resuming
from src.run import session as run_session
from src.training import lightning_trainer as trainer_setup
from src.training import speed
from src.training.fit_and_test import fit_and_test

if TYPE_CHECKING:
    from src.training.parts import Parts

# Always on: they make the run folder what it is. `callbacks` adds to them.
ESSENTIAL_CALLBACKS = (
    "finite_loss",  # first: a diverged epoch raises before any other callback records or saves it
    "rng_state",
    "history",
    "tracker_metrics",  # after history: trackers receive its rows
    "meta_saver",
    "heartbeat",
    "checkpoint",
    "last_checkpoint",
    "preemption",  # last: its save at a batch's end sees what the other callbacks did with that batch
)


INTERNAL = ("save_dir", "config_files", "bindings", "dry_run")  # passed by the caller, not for users to bind


@gin.configurable(denylist=list(INTERNAL))
def training_loop(
    save_dir: str | os.PathLike,
    model: str = "cnn",
    data: str = "digits",
    module: str = "supervised",
    n_epochs: int = 10,
    resume: bool = True,
    allow_config_change: bool = False,
    seed: int = 0,
    callbacks: Sequence[str] = ("progress_log",),
    loggers: Sequence[str] = ("tensorboard",),
    num_threads: int | None = None,
    profiler: str | None = None,
    compile: bool | str = False,
    channels_last: bool = False,
    matmul_precision: str | None = None,
    cudnn_benchmark: bool | None = None,
    config_files: Sequence[str] = (),
    bindings: Sequence[str] = (),
    dry_run: bool = False,
    **trainer_flags: Any,
) -> dict[str, float]:
    """Train `model` on `data` with `module` into `save_dir`, resuming from its last checkpoint; return the final
    metrics (last epoch's history row and the test metrics of the best checkpoint). `dry_run`: build everything,
    print the operative config the run would use, write nothing (`bin/train.py ... --print-config`). The speed
    switches (`compile`, `channels_last`, `matmul_precision`, `cudnn_benchmark`) are src/training/speed.py's."""
    check_types({name: value for name, value in locals().items() if name not in INTERNAL and name != "trainer_flags"})
    from src.callbacks import CALLBACKS
    from src.loggers import LOGGERS

    n_epochs = integer("training_loop.n_epochs", n_epochs)
    run_session.check_save_dir(save_dir)
    trainer_setup.check_flags(trainer_flags, own_parameters=[p for p in own_defaults() if p not in INTERNAL])
    if not dry_run:  # --print-config shows a GPU config on a machine without one
        trainer_setup.check_values(trainer_flags)
    trainer_flags = speed.benchmark_flag(cudnn_benchmark, trainer_flags)
    speed.check_matmul_precision(matmul_precision)
    mode = speed.compile_mode(compile)
    callback_names = list(dict.fromkeys((*ESSENTIAL_CALLBACKS, *callbacks)))
    for registry, chosen in ((CALLBACKS, callback_names), (LOGGERS, loggers)):
        for name in chosen:
            registry.get(name)  # a typo fails now, before any data is loaded
    if dry_run:
        with tempfile.TemporaryDirectory() as nowhere:  # what the parts write when built goes nowhere
            built = assemble(nowhere, data, model, module, seed, callback_names, loggers, profiler)
            common.close_loggers(built.loggers)
        warn_unused(built.operative)
        print(built.operative, end="")
        return {}
    with smoke_test_folder(save_dir, trainer_flags) as save_dir:
        choice = resuming.choose_checkpoint(save_dir, resume) if save_dir.is_dir() else resuming.Choice(None, [], [])

        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        built = assemble(str(save_dir), data, model, module, seed, callback_names, loggers, profiler)
        built.parts.data.prepare_data()  # missing data fails here, before the run folder exists
        speed.apply(built.parts.model, mode, channels_last)
        if mode is not None:  # which attempts ran compiled (compile_s appears only where something was compiled)
            from src.training.callbacks.meta_saver import MetaSaver

            next(c for c in built.callbacks if isinstance(c, MetaSaver)).attempt_notes["compile"] = mode
        changes = []
        if choice.checkpoint:
            changes = resuming.guard_config(
                save_dir, built.operative, allow_config_change, own_defaults(), resolved(built.callbacks)
            )
        if resume and (stored := resuming.finished_metrics(save_dir, n_epochs)) is not None:
            print(resuming.nothing_to_do(save_dir, n_epochs))
            return stored

        rank_zero = is_rank_zero()
        try:
            with (
                run_session.session(save_dir, rank_zero, choice.unusable) as attempt,
                trainer_setup.quiet_lightning(),
                speed.matmul_precision(matmul_precision),
            ):
                for line in choice.warnings:
                    print(line, file=sys.stderr)
                unused = warn_unused(built.operative)
                if rank_zero:
                    write_start_files(save_dir, built, config_files, bindings, changes, unused)
                trainer = trainer_setup.make_trainer(
                    str(save_dir),
                    n_epochs,
                    built.callbacks,
                    built.loggers,
                    built.profiler,
                    built.parts.data,
                    **trainer_flags,
                )
                attempt.started = True
                return fit_and_test(trainer, save_dir, built.parts, built.callbacks, choice.checkpoint, rank_zero)
        except SystemExit:
            if any(getattr(c, "interrupted", False) for c in built.callbacks):
                raise KeyboardInterrupt from None  # Ctrl-C: the run resumes when started again
            raise
        finally:
            common.close_loggers(built.loggers)


@dataclass
class Assembled:
    parts: Parts
    metrics: dict[str, Any]  # the module's declaration (src/run/metric_directions.py)
    callbacks: list[Any]
    loggers: list[Any]
    profiler: Any
    operative: str  # gin's operative config: every parameter of every configurable called


def assemble(
    run: str,
    data: str,
    model: str,
    module: str,
    seed: int,
    callbacks: Sequence[str],
    loggers: Sequence[str],
    profiler: str | None,
) -> Assembled:
    """Everything a run is made of, built by name (nothing loaded, nothing written)."""
    import pytorch_lightning as pl

    from src.callbacks import CALLBACKS
    from src.loggers import LOGGERS
    from src.training.parts import build_parts
    from src.training.profilers import PROFILERS

    pl.seed_everything(seed, verbose=False)
    parts = build_parts(data, model, module, seed)
    metrics = metric_directions.declared(parts.module, module)
    built_callbacks = [CALLBACKS.build(name, run_dir=run, metrics=metrics) for name in callbacks]
    built_loggers = [LOGGERS.build(name, run_dir=run, metrics=metrics) for name in loggers]
    built_profiler = None if profiler is None else PROFILERS.build(profiler, run_dir=run)
    operative = gin.operative_config_str()  # complete now: every configurable has been called
    return Assembled(parts, metrics, built_callbacks, built_loggers, built_profiler, operative)


def warn_unused(operative: str) -> list[str]:
    """Bindings of configurables this run never calls (a parameter of another model, module or data set: often a
    leftover of switching it), each named in one warning line; returned for meta.json."""
    from src.config.bindings import parse_bindings

    given = parse_bindings(gin.config_str())
    unused = sorted(k for k in set(given) - set(parse_bindings(operative)) if "." in k)
    registry = gin.config._REGISTRY  # gin keeps no public record of what was called; its registry is pinned with gin
    called = {registry.minimal_selector(selector) for _, selector in gin.config._OPERATIVE_CONFIG}
    for binding in unused:
        scope, _, selector = binding.rpartition("/")
        configurable = selector.rsplit(".", 1)[0]
        if configurable not in called:
            why = f"this run never calls {configurable!r}"
        elif scope:
            why = f"this run calls {configurable!r}, but never in scope {scope!r}"
        else:
            why = f"the code that calls {configurable!r} passes this parameter itself"
        print(f"warning: {binding} is not used: {why}", file=sys.stderr)
    return unused


def own_defaults() -> dict[str, Any]:
    """training_loop's own parameters (not Trainer flags) with their defaults."""
    params = inspect.signature(inspect.unwrap(training_loop)).parameters
    return {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


def resolved(callbacks: list[Any]) -> dict[str, Any]:
    """Bindings whose None default the run resolved (the monitor follows the module): compared by their value."""
    from src.training.callbacks.checkpoint import EpochCheckpoint

    best = next(c for c in callbacks if isinstance(c, EpochCheckpoint) and c.monitor is not None)
    return {"checkpoint.monitor": best.monitor, "checkpoint.mode": best.mode}


def is_rank_zero() -> bool:
    """True in the process that owns the run folder (the only one under single-process training; under srun the
    task with SLURM_PROCID 0)."""
    return all(int(os.environ.get(var, 0)) == 0 for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


# checked by what uses them, with better messages: the registries (`@mlp` included) and src/training/speed.py (valid
# modes)
CHECKED_ELSEWHERE = ("model", "data", "module", "profiler", "compile", "cudnn_benchmark", "matmul_precision")


def check_types(values: dict[str, Any]) -> None:
    """training_loop's own parameters against their annotations: `seed = 'a'` is a one-line error here, not a
    ValueError from deep inside the run."""
    hints = typing.get_type_hints(inspect.unwrap(training_loop))
    for name, value in values.items():
        if name not in CHECKED_ELSEWHERE and not matches(value, hints[name]):
            raise UserError(f"training_loop.{name} must be {in_words(hints[name])}, got {value!r}.")


@contextlib.contextmanager
def smoke_test_folder(save_dir: str | os.PathLike, trainer_flags: dict[str, Any]) -> Iterator[Path]:
    """SAVE_DIR; for a fast_dev_run (any true value: a smoke test of a few batches, which Lightning runs without
    checkpoints), a temporary folder removed afterwards, so that a smoke test never leaves a run folder behind: a
    finished-looking one would make the real run in SAVE_DIR say "nothing to do"."""
    if not trainer_flags.get("fast_dev_run"):
        yield Path(save_dir)
        return
    with tempfile.TemporaryDirectory(prefix="fast_dev_run-") as scratch:
        print(f"fast_dev_run: a smoke test in {scratch} (removed after it); nothing is saved to {save_dir}")
        yield Path(scratch) / Path(save_dir).name
    print(f"fast_dev_run: done; nothing was saved (its folder {scratch} is removed)")


def write_start_files(
    save_dir: Path,
    built: Assembled,
    config_files: Sequence[str],
    bindings: Sequence[str],
    changes: list[tuple[str, Any, Any]],
    unused: list[str],
) -> None:
    """config.gin, metrics.json, input copies, bindings; hyperparameters to the trackers; config changes and unused
    bindings into meta.json."""
    from src.config.bindings import parse_bindings, scalar_hparams
    from src.config.table import print_config
    from src.run.secrets import redact
    from src.training.callbacks.meta_saver import MetaSaver

    layout.save_inputs(save_dir, config_files, bindings)
    layout.write_atomic(save_dir / layout.CONFIG, built.operative)
    metric_directions.write(save_dir, built.metrics)
    parsed = parse_bindings(built.operative)
    print_config(parsed, title=f"{save_dir}/{layout.CONFIG}")
    hparams = {k: redact(v) if isinstance(v, str) else v for k, v in scalar_hparams(parsed).items()}
    for logger in built.loggers:
        logger.log_hyperparams(hparams)
    meta = next(c for c in built.callbacks if isinstance(c, MetaSaver))
    meta.attempt_notes["unused_bindings"] = unused
    if changes:
        meta.attempt_notes["config_changes"] = [{"binding": k, "old": repr(a), "new": repr(b)} for k, a, b in changes]
        print(
            "warning: continuing with a changed config (allow_config_change=True): "
            + "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes),
            file=sys.stderr,
        )
