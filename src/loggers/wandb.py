"""Weights & Biases through Lightning's WandbLogger, offline by default: the run is written to `<run>/wandb/` and
uploaded when you want with `wandb sync <run>/wandb/offline-run-*` (or log online: WANDB_MODE=online with
WANDB_API_KEY set, or -b "wandb.mode='online'").

Project: gin `wandb.project` > WANDB_PROJECT > the folder holding the run relative to $RESULTS_DIR
('tune_lr-small'); run name: the run folder's name. The run id is kept in `<run>/wandb_run_id.txt`, so that a
resumed run continues the same W&B run. Needs the wandb extra: pip install -e '.[wandb]'.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError
from src.loggers import common
from src.loggers.registry import LOGGERS

if TYPE_CHECKING:
    from pytorch_lightning.loggers import WandbLogger

RUN_ID_FILE = "wandb_run_id.txt"
MODES = ("offline", "online", "disabled", "shared")


def make_logger_class() -> type[WandbLogger]:
    from pytorch_lightning.loggers import WandbLogger
    from pytorch_lightning.loggers.logger import rank_zero_experiment

    class RunFolderWandbLogger(WandbLogger):
        """Lightning's WandbLogger that writes the run id into the run folder and ends its run in `close()`."""

        def __init__(self, id_file: Path, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._id_file = id_file
            self._id_written = False
            self._failed = False
            self._wandb_init.pop("anonymous", None)  # deprecated in wandb: passing it only prints a warning

        @property
        @rank_zero_experiment
        def experiment(self) -> Any:  # a wandb Run
            experiment = WandbLogger.experiment.fget(self)
            if not self._id_written:
                common.write_id(self._id_file, experiment.id)
                self._id_written = True
            return experiment

        def finalize(self, status: str) -> None:
            self._failed = self._failed or status == "failed"
            super().finalize(status)

        def close(self) -> None:
            """Finish the W&B run (Lightning's `finalize`, after fit and again after test, leaves it open)."""
            if self._experiment is not None:
                experiment, self._experiment = self._experiment, None
                experiment.finish(exit_code=1 if self._failed else 0)

    return RunFolderWandbLogger


@LOGGERS.register("wandb")
def wandb(
    run_dir: str,
    mode: str | None = None,
    project: str | None = None,
    entity: str | None = None,
    group: str | None = None,
    tags: tuple[str, ...] = (),
    console: str = "off",
) -> WandbLogger:
    """mode: gin > WANDB_MODE > 'offline'. console: 'off' (the run folder keeps the output in stdout.txt) or
    'wrap' to send it to W&B too. The API key comes from WANDB_API_KEY or `wandb login`, never from gin."""
    wandb_package = common.require("wandb")
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    if mode == "dryrun":  # the old name
        mode = "offline"
    if mode not in MODES:
        raise UserError(f"wandb.mode must be one of {', '.join(MODES)}; got {mode!r}.")
    from wandb.sdk.lib.runid import generate_id

    run = Path(run_dir)
    id_file = run / RUN_ID_FILE
    logger = make_logger_class()(
        id_file=id_file,
        save_dir=str(run),
        id=common.read_id(id_file) or generate_id(),
        name=run.resolve().name,
        project=project or os.environ.get("WANDB_PROJECT") or common.slug(common.experiment_name(run)),
        entity=entity,
        group=group,
        tags=list(tags) or None,
        mode=mode,
        settings=wandb_package.Settings(console=console),
    )
    return common.replace_open("wandb", logger)
