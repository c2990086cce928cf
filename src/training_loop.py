"""The training recipe, read top to bottom: check the options, build the run's parts by name, take the run folder
(its lock), plan the resume under the lock, and run the attempt: fit, test the best checkpoint, mark it finished.

    training_loop("results/cnn", n_epochs=5)  # after gin parsed the configs (src/config/)

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

from src.errors import UserError, integer
from src.loggers import common
from src.registry import in_words, matches, still_required
from src.run import checkpoints, environment, layout, metric_directions, session, status
from src.training import allocator, lightning_trainer, speed
from src.training.config_guard import guard_config
from src.training.fit_and_test import fit_and_test

if TYPE_CHECKING:
    from src.config.operative import OperativeConfig
    from src.training.callbacks.every_run import RunCallbacks
    from src.training.parts import Parts

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
    switches (`compile`, `channels_last`, `matmul_precision`, `cudnn_benchmark`) are src/training/speed.py's.
    Longer than this codebase's 60 lines only by its signature, which is the run's gin interface (every run-level
    binding); the body is the recipe: check the options, assemble, plan the resume under the lock, run the attempt."""
    check_types({name: value for name, value in locals().items() if name not in INTERNAL and name != "trainer_flags"})
    n_epochs = integer("training_loop.n_epochs", n_epochs)
    if num_threads is not None:
        integer("training_loop.num_threads", num_threads)
    trainer_flags = check_options(
        save_dir, trainer_flags, callbacks, loggers, cudnn_benchmark, matmul_precision, dry_run
    )
    mode = speed.compile_mode(compile)
    if dry_run:
        show_operative_config(data, model, module, seed, callbacks, loggers, profiler)
        return {}
    with smoke_test_folder(save_dir, trainer_flags) as save_dir:
        built = assemble(str(save_dir), data, model, module, seed, callbacks, loggers, profiler)
        check_validation(built, trainer_flags)
        built.parts.data.prepare_data()  # missing data fails here, before the run folder exists
        speed.apply(built.parts.model, mode, channels_last)
        if mode is not None:  # which attempts ran compiled (compile_s appears only where something was compiled)
            built.run.meta.attempt_notes["compile"] = mode
        rank_zero = is_rank_zero()
        try:
            with session.attempt(save_dir, rank_zero) as attempt:
                plan = plan_resume(save_dir, built, resume, allow_config_change, n_epochs)
                if plan.finished is not None:
                    print(plan.nothing_to_do)
                    return plan.finished
                attempt.committed = True
                keep_threads(save_dir, num_threads)
                allocator.keep_freed_memory()
                with lightning_trainer.quiet_lightning(), speed.matmul_precision(matmul_precision):
                    unused = warn_unused(built.operative)
                    if rank_zero:
                        write_start_files(save_dir, built, config_files, bindings, plan.changes, unused)
                    trainer = lightning_trainer.make_trainer(
                        str(save_dir),
                        n_epochs,
                        built.callbacks,
                        built.loggers,
                        built.profiler,
                        built.parts.data,
                        **trainer_flags,
                    )
                    attempt.started = True
                    return fit_and_test(trainer, save_dir, built.parts, built.run, plan.checkpoint, rank_zero)
        except SystemExit:
            if built.run.meta.interrupted:
                raise KeyboardInterrupt from None  # Ctrl-C (Lightning's SystemExit): the run resumes when started again
            raise
        finally:
            common.close_loggers(built.loggers)


def check_options(
    save_dir: str | os.PathLike,
    trainer_flags: dict[str, Any],
    callbacks: Sequence[str],
    loggers: Sequence[str],
    cudnn_benchmark: bool | None,
    matmul_precision: str | None,
    dry_run: bool,
) -> dict[str, Any]:
    """Every option that can be checked before anything is built, one line each: the save folder, the Trainer flags
    (returned with `benchmark` set from `cudnn_benchmark`), the speed switches, callback and logger names."""
    from src.callbacks import CALLBACKS
    from src.loggers import LOGGERS

    session.check_save_dir(save_dir)
    lightning_trainer.check_flags(trainer_flags, own_parameters=[p for p in own_defaults() if p not in INTERNAL])
    if not dry_run:  # --print-config shows a GPU config on a machine without one
        lightning_trainer.check_values(trainer_flags)
    speed.check_matmul_precision(matmul_precision)
    for registry, chosen in ((CALLBACKS, callbacks), (LOGGERS, loggers)):
        for name in chosen:
            registry.get(name)  # a typo fails now, before any data is loaded
    if "lr_monitor" in callbacks and not loggers:
        from src.callbacks.monitors import NEEDS_A_LOGGER

        raise UserError(NEEDS_A_LOGGER)
    return speed.benchmark_flag(cudnn_benchmark, trainer_flags)


def check_validation(built: Assembled, trainer_flags: dict[str, Any]) -> None:
    """best.ckpt is chosen by a validation metric: a run that never validates cannot choose it (one line now,
    instead of an error about the monitor after the first epoch, inside the run folder)."""
    monitor = built.run.checkpoint.monitor
    if trainer_flags.get("limit_val_batches") == 0 and (monitor or "").startswith("valid_"):
        raise UserError(
            f"training_loop.limit_val_batches = 0 turns validation off, but best.ckpt is chosen by {monitor}: keep "
            "some validation batches, or set checkpoint.monitor to a training metric (e.g. 'train_loss')."
        )


@dataclass
class Assembled:
    parts: Parts
    metrics: dict[str, Any]  # the module's declaration (src/run/metric_directions.py)
    run: RunCallbacks  # the callbacks every run has
    chosen: list[Any]  # the callbacks training_loop.callbacks adds
    loggers: list[Any]
    profiler: Any
    operative: OperativeConfig  # every parameter of every configurable called

    @property
    def callbacks(self) -> list[Any]:
        return [*self.run.in_order(), *self.chosen]


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
    from src.config.operative import OperativeConfig
    from src.loggers import LOGGERS
    from src.training.callbacks import every_run
    from src.training.parts import build_parts
    from src.training.profilers import PROFILERS

    pl.seed_everything(seed, verbose=False)
    parts = build_parts(data, model, module, seed)
    metrics = metric_directions.declared(parts.module, module)
    run_callbacks = every_run.build(run, metrics)
    chosen = [name for name in dict.fromkeys(callbacks) if name not in every_run.NAMES]  # those are on anyway
    built_callbacks = [CALLBACKS.build(name, run_dir=run, metrics=metrics) for name in chosen]
    built_loggers = [LOGGERS.build(name, run_dir=run, metrics=metrics) for name in loggers]
    built_profiler = None if profiler is None else PROFILERS.build(profiler, run_dir=run)
    operative = OperativeConfig.now()  # complete now: every configurable has been called
    return Assembled(parts, metrics, run_callbacks, built_callbacks, built_loggers, built_profiler, operative)


def show_operative_config(
    data: str,
    model: str,
    module: str,
    seed: int,
    callbacks: Sequence[str],
    loggers: Sequence[str],
    profiler: str | None,
) -> None:
    """`--print-config`: the operative config the run would use, built and thrown away (nothing written)."""
    with tempfile.TemporaryDirectory() as nowhere:  # what the parts write when built goes nowhere
        built = assemble(nowhere, data, model, module, seed, callbacks, loggers, profiler)
        common.close_loggers(built.loggers)
    warn_unused(built.operative)
    print(built.operative.text, end="")


@dataclass
class ResumePlan:
    checkpoint: Path | None  # to resume from; None: from scratch
    changes: list[tuple[str, Any, Any]]  # config changes allowed by allow_config_change
    finished: dict | None  # a finished run's stored metrics: nothing to do
    nothing_to_do: str = ""


def plan_resume(save_dir: Path, built: Assembled, allow_resume: bool, allow_change: bool, n_epochs: int) -> ResumePlan:
    """What this attempt does with the run folder, decided while holding its lock (another start of the same run
    waits for it or is refused, never decides on a folder that changes under it): the checkpoint to resume from
    (unusable ones set aside), the config changes it allows, or nothing to do for a finished run."""
    choice = checkpoints.choose(save_dir, allow_resume)
    for line in choice.warnings:
        print(line, file=sys.stderr)
    changes: list[tuple[str, Any, Any]] = []
    if choice.checkpoint is not None:
        resolved = {"checkpoint.monitor": built.run.checkpoint.monitor, "checkpoint.mode": built.run.checkpoint.mode}
        changes = guard_config(save_dir, built.operative, allow_change, own_defaults(), resolved)
    if allow_resume and (stored := status.finished_results(save_dir, n_epochs)) is not None:
        return ResumePlan(None, changes, stored, status.nothing_to_do(save_dir, n_epochs))
    if is_rank_zero():
        checkpoints.set_aside(choice.unusable)
    return ResumePlan(choice.checkpoint, changes, None)


def keep_threads(save_dir: Path, asked: int | None) -> None:
    """torch's thread count for this attempt: `training_loop.num_threads` if given, else the count of the run's
    first attempt (meta.json): a reduction over another number of threads can round differently, and a resume under
    another OMP_NUM_THREADS or runner allocation must still equal an uninterrupted run."""
    import torch

    count = asked or environment.recorded_threads(save_dir)
    if count and count != torch.get_num_threads():
        if not asked:
            print(f"threads: {count}, as the run's first attempt (training_loop.num_threads changes it)")
        torch.set_num_threads(count)


def warn_unused(operative: OperativeConfig) -> list[str]:
    """Bindings of configurables this run never calls (a parameter of another model, module or data set: often a
    leftover of switching it), each named in one warning line; returned for meta.json."""
    from src.config.bindings import parse_bindings

    given = parse_bindings(gin.config_str())
    unused = sorted(k for k in set(given) - set(operative.bindings) if "." in k)
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
    from src.config.bindings import scalar_hparams
    from src.config.table import print_config
    from src.run.secrets import redact

    layout.save_inputs(save_dir, config_files, bindings)
    layout.write_atomic(save_dir / layout.CONFIG, built.operative.text)
    metric_directions.write(save_dir, built.metrics)
    print_config(built.operative.bindings, title=f"{save_dir}/{layout.CONFIG}")
    hparams = {k: redact(v) if isinstance(v, str) else v for k, v in scalar_hparams(built.operative.bindings).items()}
    for logger in built.loggers:
        logger.log_hyperparams(hparams)
    notes = built.run.meta.attempt_notes
    notes["unused_bindings"] = unused
    if changes:
        notes["config_changes"] = [{"binding": k, "old": repr(a), "new": repr(b)} for k, a, b in changes]
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes)
        print(f"warning: continuing with a changed config (allow_config_change=True): {listed}", file=sys.stderr)


def own_defaults() -> dict[str, Any]:
    """training_loop's own parameters (not Trainer flags) with their defaults."""
    params = inspect.signature(inspect.unwrap(training_loop)).parameters
    return {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


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
        if value is gin.REQUIRED:
            raise UserError(still_required("training_loop", name))
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
