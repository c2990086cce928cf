"""TensorBoard event files under `<run>/tensorboard/`: `tensorboard --logdir $RESULTS_DIR` shows every run."""

from __future__ import annotations

from pathlib import Path

from src import run_dir as layout
from src.loggers.registry import LOGGERS


@LOGGERS.register("tensorboard")
def tensorboard(run_dir: str):
    from pytorch_lightning.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(Path(run_dir) / layout.TENSORBOARD), name="", version="",
                             default_hp_metric=False)
