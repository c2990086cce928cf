"""The end of a training attempt: fit (resuming from a checkpoint), then test the best checkpoint, write
eval_results.json and mark the run finished (src/training_loop.py calls it inside the run's session)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.run import layout
from src.run import resume as resuming

if TYPE_CHECKING:
    import pytorch_lightning as pl


def fit_and_test(
    trainer: pl.Trainer,
    save_dir: Path,
    parts: Any,
    callbacks: list[pl.Callback],
    resume_from: Path | None,
    rank_zero: bool,
) -> dict[str, float]:
    from src.training.callbacks.history import HistoryWriter
    from src.training.callbacks.meta_saver import MetaSaver

    if resume_from is not None:
        print(f"Resuming from {resume_from}")
    trainer.fit(parts.module, datamodule=parts.data, ckpt_path=resume_from, weights_only=True)
    # Read before the test: testing a checkpoint restores the callbacks' state (the history) as of its epoch.
    history = list(next(c for c in callbacks if isinstance(c, HistoryWriter)).rows)
    checkpoint, path, note = tested_checkpoint(save_dir)
    tested = trainer.test(parts.module, datamodule=parts.data, ckpt_path=path, weights_only=True, verbose=False)
    metrics = {**(history[-1] if history else {}), **tested[0]}
    if rank_zero:
        path = layout.write_eval_results(save_dir, {"checkpoint": checkpoint, **note, **tested[0]})
        next(c for c in callbacks if isinstance(c, MetaSaver)).finish()
        summary = " | ".join(f"{k} {v:.4f}" for k, v in sorted(tested[0].items()))
        print(f"test ({checkpoint} checkpoint): {summary}  -> {path}")
    return metrics


def tested_checkpoint(save_dir: Path) -> tuple[str, Path | None, dict[str, str]]:
    """(name, path, note) of the checkpoint the final test uses: best.ckpt; if it is damaged (truncated, garbage),
    last.ckpt, with a warning and a note for eval_results.json (every re-run would fail on it otherwise); without
    either, the weights in memory ("final")."""
    best, last = save_dir / layout.BEST_CKPT, save_dir / layout.LAST_CKPT
    if not best.is_file():
        return "final", None, {}
    problem = resuming.checkpoint_problem(best)
    if problem is None:
        return "best", best, {}
    fallback = ("last", last) if last.is_file() and resuming.checkpoint_problem(last) is None else ("final", None)
    note = f"{layout.BEST_CKPT} is damaged ({problem}): tested the {fallback[0]} checkpoint instead"
    print(f"warning: {note}", file=sys.stderr)
    return fallback[0], fallback[1], {"note": note}
