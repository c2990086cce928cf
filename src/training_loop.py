"""The gin-configurable training loop: assembles data, model, module, callbacks and loggers by name, trains with
resume, tests the best checkpoint, and leaves a complete run folder (layout: src/run_dir.py).

    training_loop("results/cnn", n_epochs=5)  # after gin parsed the configs; returns the final metrics
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gin

from src import resume as resuming
from src import run_dir as layout
from src import run_lock
from src.errors import UserError

if TYPE_CHECKING:
    import pytorch_lightning as pl

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
QUIET_WARNINGS = (  # noise that says nothing actionable about this template's set-up
    r".*does not have many workers.*",
    r".*exists and is not empty.*",
    r".*smaller than the logging interval.*",
    r".*The `srun` command is available.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's advertising and the warnings above, for the duration of a run."""
    import logging

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


def is_rank_zero() -> bool:
    """True in the process that owns the run folder (the only one under single-process training)."""
    return all(int(os.environ.get(var, 0)) == 0 for var in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"training_loop.{name} must be a positive integer, got {value!r}.")
    return value


def make_run_dir(save_dir: Path) -> bool:
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


@gin.configurable(denylist=["save_dir", "config_files", "bindings"])
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
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    precision: str = "32-true",
    num_threads: int | None = None,
    fast_dev_run: bool | int = False,
    limit_train_batches: int | float | None = None,
    limit_val_batches: int | float | None = None,
    limit_test_batches: int | float | None = None,
    overfit_batches: int | float = 0.0,
    num_sanity_val_steps: int = 2,
    gradient_clip_val: float | None = None,
    accumulate_grad_batches: int = 1,
    profiler: str | None = None,
    config_files: Sequence[str] = (),
    bindings: Sequence[str] = (),
) -> dict[str, float]:
    """Train `model` on `data` into `save_dir`, resuming from its last checkpoint; return the final metrics
    (last epoch's history row and the test metrics of the best checkpoint)."""
    from src.callbacks import CALLBACKS
    from src.data import DATA
    from src.loggers import LOGGERS
    from src.models import MODELS
    from src.modules import MODULES
    from src.profilers import PROFILERS, NoProfiler

    n_epochs = positive_int("n_epochs", n_epochs)
    builders = {
        "data": DATA.get(data),
        "model": MODELS.get(model),
        "module": MODULES.get(module),
        "callbacks": [CALLBACKS.get(name) for name in dict.fromkeys((*ESSENTIAL_CALLBACKS, *callbacks))],
        "loggers": [LOGGERS.get(name) for name in loggers],
        "profiler": NoProfiler if profiler is None else PROFILERS.get(profiler),
    }
    save_dir = Path(save_dir)
    choice = resuming.choose_checkpoint(save_dir, resume) if save_dir.is_dir() else resuming.Choice(None, [], [])
    resume_from = choice.checkpoint

    import pytorch_lightning as pl
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)
    pl.seed_everything(seed, verbose=False)
    datamodule = builders["data"](seed=seed)  # missing data fails here, before the run folder exists
    lit = builders["module"](
        model=builders["model"](input_shape=datamodule.input_shape, n_classes=datamodule.n_classes)
    )
    run = str(save_dir)
    callbacks = [build(run_dir=run) for build in builders["callbacks"]]
    loggers = [build(run_dir=run) for build in builders["loggers"]]
    profiler_ = builders["profiler"](run_dir=run)
    operative = gin.operative_config_str()  # complete now: every configurable has been called
    changes = resuming.guard_config(save_dir, operative, allow_config_change) if resume_from else []
    if resume and (stored := resuming.finished_metrics(save_dir, n_epochs)) is not None:
        print(f"{save_dir} already finished {n_epochs} epochs; nothing to do.")
        return stored

    rank_zero = is_rank_zero()
    created = make_run_dir(save_dir) if rank_zero else False
    if rank_zero:
        run_lock.acquire(save_dir)  # before anything is written or removed: a folder in use stays untouched
    started = False
    try:
        if rank_zero:
            layout.remove_partial_files(save_dir)
            resuming.set_aside(choice.unusable)
        with layout.tee_output(save_dir) if rank_zero else contextlib.nullcontext(), quiet_lightning():
            for line in choice.warnings:
                print(line, file=sys.stderr)
            if rank_zero:
                write_start_files(save_dir, operative, config_files, bindings, loggers, callbacks, changes)
            trainer = pl.Trainer(
                default_root_dir=run,
                callbacks=callbacks,
                logger=loggers or False,
                plugins=plugins(),
                enable_progress_bar=sys.stdout.isatty(),
                use_distributed_sampler=False,  # our batch sampler shards by rank itself
                max_epochs=n_epochs,
                accelerator=accelerator,
                devices=devices,
                strategy=strategy,
                num_nodes=num_nodes,
                precision=precision,
                fast_dev_run=fast_dev_run,
                limit_train_batches=limit_train_batches,
                limit_val_batches=limit_val_batches,
                limit_test_batches=limit_test_batches,
                overfit_batches=overfit_batches,
                num_sanity_val_steps=num_sanity_val_steps,
                gradient_clip_val=gradient_clip_val,
                accumulate_grad_batches=accumulate_grad_batches,
                profiler=profiler_,
            )
            started = True
            return fit_and_test(trainer, save_dir, lit, datamodule, callbacks, resume_from, rank_zero)
    except SystemExit:
        if any(getattr(c, "interrupted", False) for c in callbacks):
            raise KeyboardInterrupt from None  # Ctrl-C: the run resumes when started again
        raise
    except Exception as e:
        if rank_zero and created and not started:
            shutil.rmtree(save_dir, ignore_errors=True)  # never started: leave nothing behind
        elif rank_zero and save_dir.is_dir():
            layout.touch(save_dir / layout.FAILED, f"{type(e).__name__}: {e}\n")
        raise
    finally:
        close_loggers(loggers)
        if rank_zero:
            run_lock.release(save_dir)


def close_loggers(loggers: list[Any]) -> None:
    """End the tracker runs that stay open after Lightning's `finalize` (neptune, wandb), so their files are complete
    when the training returns. A tracker failing to close must not hide the run's own outcome."""
    for logger in loggers:
        if hasattr(logger, "close"):
            try:
                logger.close()
            except Exception as e:
                print(f"warning: closing the {type(logger).__name__} failed: {e}", file=sys.stderr)


def plugins() -> list[Any]:
    """Atomic checkpoint writes; under SLURM, Lightning's own preemption handler off (the `preemption` callback
    saves at a batch boundary instead of inside the signal handler)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    from src.callbacks.checkpoint import AtomicCheckpointIO

    return [AtomicCheckpointIO(), *([SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else [])]


def write_start_files(
    save_dir: Path,
    operative: str,
    config_files: Sequence[str],
    bindings: Sequence[str],
    loggers: list[Any],
    callbacks: list[pl.Callback],
    changes: list[tuple[str, Any, Any]],
) -> None:
    """config.gin, input copies, bindings; hyperparameters to the trackers; config changes into meta.json."""
    from src.callbacks.meta_saver import MetaSaver
    from src.config_table import print_config
    from src.gin_bindings import parse_bindings, scalar_hparams
    from src.secrets import redact

    layout.save_inputs(save_dir, config_files, bindings)
    layout.write_atomic(save_dir / layout.CONFIG, operative)
    parsed = parse_bindings(operative)
    print_config(parsed, title=f"{save_dir}/{layout.CONFIG}")
    hparams = {k: redact(v) if isinstance(v, str) else v for k, v in scalar_hparams(parsed).items()}
    for logger in loggers:
        logger.log_hyperparams(hparams)
    if changes:
        meta = next(c for c in callbacks if isinstance(c, MetaSaver))
        meta.attempt_notes["config_changes"] = [{"binding": k, "old": repr(a), "new": repr(b)} for k, a, b in changes]
        print(
            "warning: continuing with a changed config (allow_config_change=True): "
            + "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes),
            file=sys.stderr,
        )


def fit_and_test(
    trainer: pl.Trainer,
    save_dir: Path,
    lit: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    callbacks: list[pl.Callback],
    resume_from: Path | None,
    rank_zero: bool,
) -> dict[str, float]:
    from src.callbacks.history import HistoryWriter
    from src.callbacks.meta_saver import MetaSaver

    if resume_from is not None:
        print(f"Resuming from {resume_from}")
    trainer.fit(lit, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    best = save_dir / layout.BEST_CKPT
    tested = trainer.test(
        lit, datamodule=datamodule, ckpt_path=best if best.is_file() else None, weights_only=True, verbose=False
    )
    history = next(c for c in callbacks if isinstance(c, HistoryWriter)).rows
    metrics = {**(history[-1] if history else {}), **tested[0]}
    if rank_zero:
        checkpoint = "best" if best.is_file() else "final"
        path = layout.write_eval_results(save_dir, {"checkpoint": checkpoint, **tested[0]})
        next(c for c in callbacks if isinstance(c, MetaSaver)).finish()
        summary = " | ".join(f"{k} {v:.4f}" for k, v in sorted(tested[0].items()))
        print(f"test ({checkpoint} checkpoint): {summary}  -> {path}")
    return metrics
