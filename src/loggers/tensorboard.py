"""TensorBoard event files under `<run>/tensorboard/`: `tensorboard --logdir $RESULTS_DIR` shows every run, and its
HParams tab compares them (every gin binding against the metrics the module declares, src/run/metric_directions.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_fabric.utilities.logger import _convert_params, _flatten_dict
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from src.loggers.registry import LOGGERS
from src.run import layout

HPARAMS_FILE = "events.out.tfevents.hparams"  # the HParams tab's record of the run's config, rewritten per attempt


class HParamsTensorBoardLogger(TensorBoardLogger):
    """Writes the hyperparameters for the HParams tab without a dummy `hp_metric` scalar: the tab's metric
    columns are the scalars the run logs anyway (Lightning's logger writes them only with an hp_metric). They go
    into an event file of their own, replaced at each attempt: the tab shows the config the run continued with
    (an event file is append-only, and TensorBoard keeps the first config it finds in one)."""

    def __init__(self, hparams_metrics: Sequence[str], **kwargs: Any) -> None:
        super().__init__(default_hp_metric=False, **kwargs)
        self._hparams_metrics = tuple(hparams_metrics)
        self.new_run = not Path(self.log_dir).exists()  # see common.py; checked before anything is written

    @rank_zero_only
    def log_hyperparams(  # type: ignore[override]  # params: a dict here (Lightning also takes a Namespace)
        self, params: dict[str, Any], metrics: dict[str, Any] | None = None, step: int | None = None
    ) -> None:
        super().log_hyperparams(params, metrics=metrics, step=step)  # hparams.yaml (and the summary if metrics)
        if metrics is not None or not self._hparams_metrics:
            return
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        flat = self._sanitize_params(_flatten_dict(_convert_params(params)))
        folder = Path(self.log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".tensorboard-") as scratch:
            writer = SummaryWriter(scratch)
            for summary in hparams(flat, dict.fromkeys(self._hparams_metrics, 0.0)):  # names only: no values
                writer._get_file_writer().add_summary(summary, step)
            writer.close()
            (written,) = Path(scratch).glob("*tfevents*")
            os.replace(written, folder / HPARAMS_FILE)


@LOGGERS.register("tensorboard", denylist=("metrics",))
def tensorboard(run_dir: str, metrics: dict[str, Any] | None = None) -> TensorBoardLogger:
    """`metrics`: the module's declaration, offered by the training loop: its metrics are the HParams tab's
    columns (declared, not a gin parameter, so a new metric does not change the stored config)."""
    columns = list((metrics or {}).get("directions", {}))
    return HParamsTensorBoardLogger(
        save_dir=str(Path(run_dir) / layout.TENSORBOARD), name="", version="", hparams_metrics=columns
    )
