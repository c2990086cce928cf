"""The learning-rate range test (Lightning's Tuner.lr_find) for a config: a short training with the learning rate
growing exponentially, the loss against it as a plot (lr_find.png), and the suggested learning rate (steepest fall)
in lr_find.json, with the gin binding that uses it.

    lr_range_test(["configs/cnn.gin"], ["digits.toy = True"], "results/find_lr/cnn")
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin

from src import run_dir as layout
from src.errors import UserError


def lr_range_test(
    configs: Sequence[str],
    bindings: Sequence[str],
    out: str | Path,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
) -> dict[str, Any]:
    """Run the test; write lr_find.png and lr_find.json into `out`; return what lr_find.json holds."""
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    from src import config
    from src.parts import build_parts
    from src.trainer import quiet_lightning, trainer_defaults
    from src.training_loop import own_defaults

    if not 0 < min_lr < max_lr:
        raise UserError(f"the learning rates must satisfy 0 < min_lr < max_lr, got {min_lr!r} and {max_lr!r}.")
    config.parse(list(configs), list(bindings))
    args = {**trainer_defaults(), **own_defaults(), **gin.get_bindings("training_loop")}
    pl.seed_everything(args["seed"], verbose=False)
    parts = build_parts(args["data"], args["model"], args["module"], args["seed"])
    if not hasattr(parts.module, "lr"):
        raise UserError(f"module {args['module']!r} has no `lr` attribute: lr_find needs one to vary.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_lightning():
        trainer = pl.Trainer(
            default_root_dir=out,  # lr_find's temporary checkpoint goes here, and is removed
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=sys.stdout.isatty(),
            accelerator=args["accelerator"],
            devices=1,
            precision=args["precision"],
            num_sanity_val_steps=0,
        )
        found = Tuner(trainer).lr_find(
            parts.module,
            datamodule=parts.data,
            min_lr=min_lr,
            max_lr=max_lr,
            num_training=num_training,
            update_attr=False,
        )
    if found is None:  # only on processes other than rank 0
        raise UserError("the learning-rate range test found nothing (a process other than rank 0?)")
    suggestion = found.suggestion()
    figure = found.plot(suggest=suggestion is not None)
    figure.savefig(out / "lr_find.png", dpi=120)  # type: ignore[union-attr]  # a Figure: plot() creates one
    result = {
        "suggested_lr": suggestion,
        "binding": f"{args['module']}.lr = {suggestion:.3g}" if suggestion is not None else None,
        "configs": list(configs),
        "bindings": list(bindings),
        "lr": [float(v) for v in found.results["lr"]],
        "loss": [float(v) for v in found.results["loss"]],
    }
    layout.write_atomic(out / "lr_find.json", json.dumps(result, indent=2) + "\n")
    return result
