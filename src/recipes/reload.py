"""Rebuild a trained run from its folder alone: the stored config.gin says which data, model and module to build
(src/training/parts.py builds them as the training did), the checkpoint (loaded with weights_only=True) supplies the
weights. No knowledge of the model code is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gin

from src.errors import UserError
from src.run import checkpoints, layout
from src.training.parts import Parts


def run_parts(run_dir: str | Path) -> tuple[Parts, dict[str, Any]]:
    """(the run's parts, untrained; training_loop's arguments as the run's config.gin sets them, defaults included)."""
    from src import config
    from src.training.lightning_trainer import trainer_defaults
    from src.training.parts import build_parts
    from src.training_loop import own_defaults

    config.parse_run_config(Path(run_dir) / layout.CONFIG)
    args = {**trainer_defaults(), **own_defaults(), **gin.get_bindings("training_loop")}
    return build_parts(args["data"], args["model"], args["module"], args["seed"]), args


def build_module(run_dir: str | Path, checkpoint: str = "best") -> tuple[Parts, dict[str, Any]]:
    """(the run's parts, the module holding the checkpoint's weights and in eval mode; training_loop's arguments)."""
    path = checkpoints.for_inference(run_dir, checkpoint)
    parts, args = run_parts(run_dir)
    weights = checkpoints.weights(path)
    try:
        parts.module.load_state_dict(weights)
    except RuntimeError as e:  # missing, unexpected or mis-shaped weights: saved by another model
        reason = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise UserError(f"{path} does not fit the model its run's {layout.CONFIG} builds: {reason[:300]}") from e
    parts.module.eval()
    return parts, args


def declared_metrics(config_text: str) -> dict[str, Any]:
    """The metrics.json a run of this config would write (the module's declaration: {"main": ..., "directions":
    {...}}), from its module built untrained (no data loaded, nothing written; gin cleared after)."""
    import tempfile

    from src import config
    from src.run import metric_directions
    from src.training.parts import build_parts
    from src.training_loop import own_defaults

    with tempfile.NamedTemporaryFile("w", suffix=".gin") as file:
        file.write(config_text)
        file.flush()
        try:
            config.parse([file.name])
            args = {**own_defaults(), **gin.get_bindings("training_loop")}
            parts = build_parts(args["data"], args["model"], args["module"], args["seed"])
            return metric_directions.declared(parts.module, args["module"])
        finally:
            gin.clear_config()
