"""The gin-configurable training loop: assembles data, model, module, callbacks and loggers by name, trains with
resume, tests the best checkpoint, and leaves a complete run folder (layout: src/run_dir.py).

    training_loop("results/cnn", n_epochs=5)  # after gin parsed the configs; returns the final metrics
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import gin

from src import run_dir as layout
from src.errors import UserError

ESSENTIAL_CALLBACKS = ("rng_state", "history", "meta_saver", "heartbeat", "checkpoint")
QUIET_WARNINGS = (  # noise that says nothing actionable about this template's set-up
    r".*does not have many workers.*",
    r".*exists and is not empty.*",
    r".*smaller than the logging interval.*",
    r".*The `srun` command is available.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


@contextlib.contextmanager
def quiet_lightning():
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


def prepare_run_dir(save_dir: Path, resume: bool) -> Path | None:
    """Check the folder can hold this run; return the checkpoint to resume from, if any."""
    if save_dir.exists() and not save_dir.is_dir():
        raise UserError(f"SAVE_DIR {str(save_dir)!r} is a file, not a folder.")
    # last.ckpt after each epoch; hpc_ckpt_N.ckpt when SLURM preempted the job (Lightning's requeue)
    found = [p for p in [save_dir / layout.LAST_CKPT, *save_dir.glob(layout.HPC_CKPT_GLOB)] if p.is_file()]
    if found and not resume:
        raise UserError(f"{str(save_dir)!r} already holds a checkpoint ({found[0].name}); resume with "
                        "training_loop.resume=True or choose another SAVE_DIR.")
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def already_finished(save_dir: Path, n_epochs: int) -> dict | None:
    """The stored metrics of a finished run that trained at least n_epochs, else None."""
    results = save_dir / layout.EVAL_RESULTS
    if (save_dir / layout.FINISHED).exists() and results.is_file() and layout.last_epoch(save_dir) >= n_epochs:
        return json.loads(results.read_text())
    return None


@gin.configurable(denylist=["save_dir", "config_files", "bindings"])
def training_loop(
    save_dir: str | os.PathLike,
    model: str = "cnn",
    data: str = "digits",
    module: str = "supervised",
    n_epochs: int = 10,
    resume: bool = True,
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
    config_files: Sequence[str] = (),
    bindings: Sequence[str] = (),
) -> dict[str, float]:
    """Train `model` on `data` into `save_dir`, resuming from its last.ckpt; return the final metrics
    (last epoch's history row and the test metrics of the best checkpoint)."""
    from src.callbacks import CALLBACKS
    from src.data import DATA
    from src.loggers import LOGGERS
    from src.models import MODELS
    from src.modules import MODULES

    n_epochs = positive_int("n_epochs", n_epochs)
    builders = {
        "data": DATA.get(data),
        "model": MODELS.get(model),
        "module": MODULES.get(module),
        "callbacks": [CALLBACKS.get(name) for name in (*ESSENTIAL_CALLBACKS, *callbacks)],
        "loggers": [LOGGERS.get(name) for name in loggers],
    }
    save_dir = Path(save_dir)
    resume_from = prepare_run_dir(save_dir, resume)
    if resume and (stored := already_finished(save_dir, n_epochs)) is not None:
        print(f"{save_dir} already finished {n_epochs} epochs; nothing to do.")
        return stored

    import pytorch_lightning as pl
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)
    pl.seed_everything(seed, verbose=False)
    datamodule = builders["data"](seed=seed)  # missing data fails here, before the run folder exists
    lit = builders["module"](model=builders["model"](input_shape=datamodule.input_shape,
                                                     n_classes=datamodule.n_classes))

    rank_zero = is_rank_zero()
    if rank_zero:
        save_dir.mkdir(parents=True, exist_ok=True)
    output = (layout.tee_output(save_dir) if rank_zero else contextlib.nullcontext())
    try:
        with output, quiet_lightning():
            return _fit_and_test(save_dir, lit, datamodule, builders, resume_from, rank_zero, config_files, bindings,
                                 dict(max_epochs=n_epochs, accelerator=accelerator, devices=devices,
                                      strategy=strategy, num_nodes=num_nodes, precision=precision,
                                      fast_dev_run=fast_dev_run, limit_train_batches=limit_train_batches,
                                      limit_val_batches=limit_val_batches, limit_test_batches=limit_test_batches,
                                      overfit_batches=overfit_batches, num_sanity_val_steps=num_sanity_val_steps,
                                      gradient_clip_val=gradient_clip_val,
                                      accumulate_grad_batches=accumulate_grad_batches))
    except Exception as e:
        if rank_zero and save_dir.is_dir():
            layout.touch(save_dir / layout.FAILED, f"{type(e).__name__}: {e}\n")
        raise


def _fit_and_test(save_dir, lit, datamodule, builders, resume_from, rank_zero, config_files, bindings,
                  trainer_kwargs) -> dict[str, float]:
    import pytorch_lightning as pl

    from src.callbacks.checkpoint import AtomicCheckpointIO
    from src.callbacks.history import HistoryWriter
    from src.callbacks.meta_saver import MetaSaver
    from src.gin_bindings import parse_bindings, scalar_hparams

    run = str(save_dir)
    callbacks = [build(run_dir=run) for build in builders["callbacks"]]
    loggers = [build(run_dir=run) for build in builders["loggers"]]
    if rank_zero:
        layout.save_inputs(save_dir, config_files, bindings)
        operative = gin.operative_config_str()
        layout.write_atomic(save_dir / layout.CONFIG, operative)
        hparams = scalar_hparams(parse_bindings(operative))
        for logger in loggers:
            logger.log_hyperparams(hparams)

    trainer = pl.Trainer(
        default_root_dir=run,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=sys.stdout.isatty(),
        use_distributed_sampler=False,  # our batch sampler shards by rank itself
        **trainer_kwargs,
    )
    if resume_from is not None:
        print(f"Resuming from {resume_from}")
    trainer.fit(lit, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    best = save_dir / layout.BEST_CKPT
    tested = trainer.test(lit, datamodule=datamodule, ckpt_path=best if best.is_file() else None,
                          weights_only=True, verbose=False)
    history = next(c for c in callbacks if isinstance(c, HistoryWriter)).rows
    metrics = {**(history[-1] if history else {}), **tested[0]}
    if rank_zero:
        layout.write_eval_results(save_dir, {"checkpoint": "best" if best.is_file() else "final", **tested[0]})
        next(c for c in callbacks if isinstance(c, MetaSaver)).finish()
    return metrics
