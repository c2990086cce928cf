"""The end of a training attempt: fit (resuming from a checkpoint), then test the best checkpoint, write
eval_results.json and mark the run finished (src/training_loop.py calls it inside the run's attempt)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from src.run import checkpoints, layout

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from src.training.callbacks.every_run import RunCallbacks
    from src.training.parts import Parts


def fit_and_test(
    trainer: pl.Trainer, save_dir: Path, parts: Parts, run: RunCallbacks, resume_from: Path | None, rank_zero: bool
) -> dict[str, float]:
    """The last epoch's history row and the test metrics of the best checkpoint."""
    if resume_from is not None:
        print(f"Resuming from {resume_from}")
    trainer.fit(parts.module, datamodule=parts.data, ckpt_path=resume_from, weights_only=True)
    # Read before the test: testing a checkpoint restores the callbacks' state (the history) as of its epoch.
    history = list(run.history.rows)
    checkpoint, path, note = checkpoints.tested(save_dir)
    tested = trainer.test(parts.module, datamodule=parts.data, ckpt_path=path, weights_only=True, verbose=False)
    metrics = {**(history[-1] if history else {}), **tested[0]}
    if rank_zero:
        path = layout.write_eval_results(save_dir, {"checkpoint": checkpoint, **note, **tested[0]})
        run.meta.finish()
        summary = " | ".join(f"{k} {v:.4f}" for k, v in sorted(tested[0].items()))
        print(f"test ({checkpoint} checkpoint): {summary}  -> {path}")
    return metrics
