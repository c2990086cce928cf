"""Weights & Biases through Lightning's WandbLogger, offline by default: the run is written to `<run>/wandb/` and
uploaded when you want with `wandb sync <run>/wandb/offline-run-*` (or log online: WANDB_MODE=online with
WANDB_API_KEY set, or -b "wandb.mode='online'").

Project: gin `wandb.project` > WANDB_PROJECT > the folder holding the run relative to $RESULTS_DIR
('tune_lr-small'); run name: the run folder's name. The run id is kept in `<run>/wandb_run_id.txt`, so that a
resumed run continues the same W&B run. At the end of the training the run gets config.gin and eval_results*.json
in its Files (`wandb.checkpoints = True`: the checkpoints too). Needs the wandb extra: pip install -e '.[wandb]'.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment

from src.errors import UserError
from src.loggers import common
from src.loggers.registry import LOGGERS
from src.run.secrets import redact_all, redacted_argv

RUN_ID_FILE = "wandb_run_id.txt"
MODES = ("offline", "online", "disabled", "shared")


class RunFolderWandbLogger(WandbLogger):
    """Lightning's WandbLogger that writes the run id into the run folder and ends its run in `close()`."""

    def __init__(self, run_dir: Path, checkpoints: bool, new_run: bool, **kwargs: Any) -> None:
        super().__init__(save_dir=str(run_dir), **kwargs)
        self._run_dir, self._checkpoints = run_dir, checkpoints
        self._id_file = run_dir / RUN_ID_FILE
        self.new_run = new_run  # see common.py
        self._id_written = False
        self._failed = False
        self._wandb_init.pop("anonymous", None)  # deprecated in wandb: passing it only prints a warning

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:  # a wandb Run
        with redacted_argv():  # W&B records the command line
            experiment = WandbLogger.experiment.fget(self)  # type: ignore[attr-defined]
        if not self._id_written:
            common.write_id(self._id_file, experiment.id)
            self._id_written = True
        return experiment

    def finalize(self, status: str) -> None:
        self._failed = self._failed or status == "failed"
        super().finalize(status)

    def close(self) -> None:
        """Attach the run folder's files (common.run_files) and finish the W&B run (Lightning's `finalize`, after
        fit and again after test, leaves it open); its files are complete when this returns."""
        if self._experiment is None:
            return
        experiment, self._experiment = self._experiment, None
        try:
            files = Path(experiment.dir)  # the W&B run's files/: what `wandb sync` uploads
            for path in [] if experiment.disabled else common.run_files(self._run_dir, self._checkpoints):
                common.snapshot(path, files / path.name)
                experiment.save(str(files / path.name), base_path=str(files), policy="now", glob=False)
        finally:
            experiment.finish(exit_code=1 if self._failed else 0)
            wait_for_run_files()


def wait_for_run_files() -> None:
    """Wait until wandb-core has written the finished run's files. `finish()` returns before the service closes the
    run's stream, and the end of the transaction log (`run-<id>.wandb`, all of it for a short run) reaches the disk
    only then; a reader right after `finish()` could see a partial run. Stopping the service waits for that (the
    service handles a connection's requests in order). Not while this process has another W&B run open: its run
    would stop too; the service then writes the file a moment later, and at the process's exit at the latest."""
    import wandb

    if wandb.run is None:
        wandb.teardown()


@LOGGERS.register("wandb")
def wandb(
    run_dir: str,
    mode: str | None = None,
    project: str | None = None,
    entity: str | None = None,
    group: str | None = None,
    tags: tuple[str, ...] = (),
    console: str = "off",
    checkpoints: bool = False,
) -> WandbLogger:
    """mode: gin > WANDB_MODE > 'offline'. console: 'off' (the run folder keeps the output in stdout.txt) or
    'wrap' to send it to W&B too. checkpoints: also attach best.ckpt and last.ckpt. The API key comes from
    WANDB_API_KEY or `wandb login`, never from gin."""
    wandb_package = common.require("wandb")
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    if mode == "dryrun":  # the old name
        mode = "offline"
    if mode not in MODES:
        raise UserError(f"wandb.mode must be one of {', '.join(MODES)}; got {mode!r}.")
    from wandb.sdk.lib.runid import generate_id

    run = Path(run_dir)
    # Online, an attempt continues the run's W&B run (the same id: W&B resumes it). Offline, each attempt is a W&B
    # run of its own in the run folder's group, holding the history so far: W&B cannot merge several offline folders
    # of one id (syncing them replaces its history), so this is what it supports.
    stored = common.read_id(run / RUN_ID_FILE) if mode in ("online", "shared") else None
    logger = RunFolderWandbLogger(
        run_dir=run,
        checkpoints=checkpoints,
        new_run=stored is None,
        id=stored or generate_id(),
        name=run.resolve().name,
        project=project or os.environ.get("WANDB_PROJECT") or common.slug(common.experiment_name(run)),
        entity=redact_all(entity),
        group=redact_all(group) or (run.resolve().name if stored is None and mode == "offline" else None),
        tags=redact_all(list(tags)) or None,
        mode=mode,
        settings=wandb_package.Settings(console=console),
    )
    return common.replace_open("wandb", logger)
