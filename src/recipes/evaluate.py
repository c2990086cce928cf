"""Evaluate a trained run's checkpoint on the test split: eval_results_<checkpoint>.json in the run folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from src.run import layout

if TYPE_CHECKING:
    from src.training.parts import Parts


def evaluate(run_dir: str | Path, checkpoint: str = "best") -> tuple[dict, Path]:
    from src.recipes.reload import build_module
    from src.training.lightning_trainer import quiet_lightning

    parts, args = build_module(run_dir, checkpoint)
    with quiet_lightning():  # as in training: no advertising, no warnings that do not concern the user
        return run_test(parts, args, run_dir, checkpoint)


def run_test(parts: Parts, args: dict, run_dir: str | Path, checkpoint: str) -> tuple[dict, Path]:
    import pytorch_lightning as pl

    trainer = pl.Trainer(
        logger=False,
        callbacks=[],
        enable_progress_bar=sys.stdout.isatty(),
        enable_model_summary=False,
        accelerator=args["accelerator"],
        devices=1,
        precision=args["precision"],
        limit_test_batches=args["limit_test_batches"],  # as the test at the end of training: comparable results
    )
    metrics = {"checkpoint": checkpoint, **trainer.test(parts.module, datamodule=parts.data, verbose=False)[0]}
    return metrics, layout.write_eval_results(run_dir, metrics, checkpoint)
