"""MLflow: every run of $RESULTS_DIR in one local SQLite store, `$RESULTS_DIR/mlflow.db`.

    mlflow ui --backend-store-uri sqlite:///$RESULTS_DIR/mlflow.db

Experiment: the folder holding the run relative to $RESULTS_DIR ('tune_lr/small'); run name: the run folder's name.
A resumed run continues the same MLflow run (its id is kept in `<run>/mlflow_run_id.txt`). Another store (a tracking
server): `mlflow.tracking_uri = 'http://host:5000'` or the MLFLOW_TRACKING_URI environment variable. At the end of
the training the run gets config.gin and eval_results*.json as artifacts (`mlflow.checkpoints = True`: the
checkpoints too).
Needs the mlflow extra: pip install -e '.[mlflow]'.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from src.loggers import common
from src.loggers.registry import LOGGERS
from src.run import layout

RUN_ID_FILE = "mlflow_run_id.txt"
DATABASE = "mlflow.db"
ARTIFACTS = "mlartifacts"
MAX_PARAM_LENGTH = 250  # Lightning's MLFlowLogger truncates values to this


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI, else None."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(tracking_uri).path)[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
    return Path(path) if path not in ("", ":memory:") else None


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Serialize creating the SQLite store and experiments: parallel runs (bin/run_local.py --jobs N) start together."""
    db = sqlite_path(tracking_uri)
    if db is None:
        yield
        return
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class RunFolderMLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger that keeps its run id in the run folder and continues that run on resume."""

    def __init__(self, run_dir: Path, checkpoints: bool, **kwargs: Any) -> None:
        self._run_dir, self._checkpoints = run_dir, checkpoints
        self._id_file = run_dir / RUN_ID_FILE
        with store_lock(kwargs["tracking_uri"]):
            super().__init__(**kwargs)
        self.new_run = self._run_id is None  # see common.py

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:  # an MlflowClient
        if self._initialized:
            return self._mlflow_client
        from mlflow.exceptions import MlflowException

        with store_lock(self._tracking_uri):
            resumed = self._run_id is not None
            if self._run_id is not None:
                try:
                    self._mlflow_client.get_run(self._run_id)
                except MlflowException:
                    print(
                        f"warning: MLflow run {self._run_id} (from {self._id_file}) is not in "
                        f"{self._tracking_uri}; starting a new MLflow run.",
                        file=sys.stderr,
                    )
                    self._run_id, resumed, self.new_run = None, False, True
            client = MLFlowLogger.experiment.fget(self)  # type: ignore[attr-defined]
        if resumed:
            client.update_run(self._run_id, status="RUNNING")
        assert self._run_id is not None  # set by MLFlowLogger.experiment
        common.write_id(self._id_file, self._run_id)
        return client

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """MLflow params cannot change: on resume, log the new ones and record changed values as tags."""
        logged = self.experiment.get_run(self.run_id).data.params
        if logged:
            changed = {k: v for k, v in params.items() if k in logged and str(v)[:MAX_PARAM_LENGTH] != logged[k]}
            for key, value in changed.items():
                self.experiment.set_tag(self.run_id, f"changed_on_resume.{key}", str(value)[:MAX_PARAM_LENGTH])
            params = {k: v for k, v in params.items() if k not in logged}
        if params:
            super().log_hyperparams(params)

    @rank_zero_only
    def close(self) -> None:
        """Attach the run folder's files (common.run_files) to the run: called after the final test."""
        if self._initialized:
            for path in common.run_files(self._run_dir, self._checkpoints):
                self.experiment.log_artifact(self.run_id, str(path))


@LOGGERS.register("mlflow")
def mlflow(
    run_dir: str,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    artifact_location: str | None = None,
    checkpoints: bool = False,
) -> MLFlowLogger:
    """tracking_uri: gin > MLFLOW_TRACKING_URI > sqlite:///$RESULTS_DIR/mlflow.db. experiment_name: default the
    folder holding the run relative to $RESULTS_DIR. artifact_location: for experiments this creates; default
    $RESULTS_DIR/mlartifacts with the default store, the server's choice otherwise. checkpoints: also attach
    best.ckpt and last.ckpt (copies: as large as they are)."""
    common.require("mlflow")
    run = Path(run_dir)
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:  # the default store: everything under $RESULTS_DIR
        tracking_uri = f"sqlite:///{(layout.results_root() / DATABASE).resolve()}"
        artifact_location = artifact_location or (layout.results_root() / ARTIFACTS).resolve().as_uri()
    return RunFolderMLFlowLogger(
        run_dir=run,
        checkpoints=checkpoints,
        experiment_name=experiment_name or common.experiment_name(run),
        run_name=run.resolve().name,
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        run_id=common.read_id(run / RUN_ID_FILE),
    )
