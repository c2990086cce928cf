"""Rebuild a trained run from its folder alone: the stored config.gin says which model, module and data to build,
the checkpoint (loaded with weights_only=True) supplies the weights. No knowledge of the model code is needed."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING

import gin

from src import run_dir as layout
from src.errors import UserError

if TYPE_CHECKING:
    import pytorch_lightning as pl


def checkpoint_path(run_dir: str | Path, checkpoint: str = "best") -> Path:
    run_dir = Path(run_dir)
    if checkpoint not in layout.CHECKPOINTS:
        raise UserError(f"Unknown checkpoint {checkpoint!r}. Valid checkpoints: {', '.join(layout.CHECKPOINTS)}.")
    if not layout.is_run_dir(run_dir):
        raise UserError(f"{str(run_dir)!r} is not a run folder (no {layout.CONFIG}).")
    path = run_dir / layout.CHECKPOINTS[checkpoint]
    if not path.is_file():
        raise UserError(f"{str(run_dir)!r} has no {path.name}: train it first (bin/train.py {run_dir} CONFIGS).")
    return path


def training_loop_arguments() -> dict:
    """training_loop's arguments as the parsed gin config sets them (defaults for the unbound ones)."""
    from src.training_loop import training_loop

    signature = inspect.signature(training_loop.__wrapped__ if hasattr(training_loop, "__wrapped__") else training_loop)
    defaults = {name: p.default for name, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **gin.get_bindings("training_loop")}


def parse_run_config(run_dir: str | Path) -> dict:
    from src import config

    config.parse([str(Path(run_dir) / layout.CONFIG)])
    return training_loop_arguments()


def build_data(run_dir: str | Path) -> pl.LightningDataModule:
    """The run's data module as its config.gin sets it up (same data set, splits, batch size and transform)."""
    return data_module(parse_run_config(run_dir))


def data_module(args: dict) -> pl.LightningDataModule:
    """The data module of a run's training_loop arguments (its config.gin parsed)."""
    from src.data import DATA

    return DATA.get(args["data"])(seed=args["seed"])


def build_module(run_dir: str | Path, checkpoint: str = "best") -> tuple[pl.LightningModule, dict]:
    """(LightningModule with the checkpoint's weights, in eval mode; training_loop arguments of the run)."""
    import torch

    from src.data import DATA
    from src.models import MODELS
    from src.modules import MODULES

    path = checkpoint_path(run_dir, checkpoint)
    args = parse_run_config(run_dir)
    data = DATA.get(args["data"])
    lit = MODULES.get(args["module"])(
        model=MODELS.get(args["model"])(input_shape=data.input_shape, n_classes=data.n_classes)
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"Cannot load {path} safely (weights_only=True): {str(e).splitlines()[0]}") from e
    lit.load_state_dict(state["state_dict"])
    return lit.eval(), args
