"""Neptune (client 1.x), for self-hosted Neptune servers or offline logging (neptune.ai's hosted service closed in
March 2026, and Lightning 2.6.4 removed its NeptuneLogger, so this is a small Lightning Logger of its own).

    export NEPTUNE_PROJECT=workspace/project NEPTUNE_API_TOKEN=...    # the token is never written to the run
    bin/train.py $RESULTS_DIR/cnn configs/cnn.gin -b "training_loop.loggers=['neptune']"
    NEPTUNE_MODE=offline bin/train.py ...        # or -b "neptune.mode='offline'"; upload later: neptune sync --path RUN

Hyperparameters go to `parameters/...`, every metric to a series of its name; at the end of the training the run
gets config.gin and eval_results*.json under `files/` (`neptune.checkpoints = True`: the checkpoints too). Neptune's
local data (the offline run, or the queue of an async one) lives in `<run>/.neptune/`. The run id (sys/id) is kept in
`<run>/neptune_run_id.txt` so that a resumed run continues the same Neptune run (not in offline mode, where every
attempt is a new offline run). Needs the neptune extra: pip install -e '.[neptune]'.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from src.errors import UserError
from src.loggers import common
from src.loggers.registry import LOGGERS
from src.run.secrets import redact_all, redacted_argv

RUN_ID_FILE = "neptune_run_id.txt"
DATA_DIR = ".neptune"  # the name `neptune sync --path RUN` looks for
MODES = ("async", "sync", "offline", "debug")
RESUMABLE_MODES = ("async", "sync")  # offline and debug runs cannot be opened again


@contextlib.contextmanager
def data_directory(path: Path) -> Iterator[None]:
    """Neptune puts its local data under $NEPTUNE_DATA_DIRECTORY (default ./.neptune), read when a run starts."""
    if "NEPTUNE_DATA_DIRECTORY" in os.environ:  # the user's choice wins
        yield
        return
    os.environ["NEPTUNE_DATA_DIRECTORY"] = str(path)
    try:
        yield
    finally:
        os.environ.pop("NEPTUNE_DATA_DIRECTORY", None)


class NeptuneLogger(Logger):
    """A Lightning logger over a neptune 1.x run, created when first used (on rank zero only)."""

    def __init__(
        self,
        run_dir: str | Path,
        mode: str,
        project: str | None,
        name: str,
        tags: Sequence[str] = (),
        capture_hardware_metrics: bool = True,
        capture_output: bool = False,
        checkpoints: bool = False,
    ) -> None:
        super().__init__()
        self._run_dir = Path(run_dir)
        self._checkpoints = checkpoints
        self._id_file = self._run_dir / RUN_ID_FILE
        self._mode: Any = mode  # checked against neptune's modes by the builder
        self._project = project
        # see common.py; offline and debug runs cannot be opened again: every attempt is a new run
        self.new_run = mode not in RESUMABLE_MODES or common.read_id(self._id_file) is None
        # git_ref=False: Neptune would store the uncommitted diff unredacted (the run folder has git_diff.patch
        # and the commit in meta.json, with secrets masked).
        self._init: dict[str, Any] = dict(
            name=name,
            tags=list(tags) or None,
            capture_hardware_metrics=capture_hardware_metrics,
            capture_stdout=capture_output,
            capture_stderr=capture_output,
            git_ref=False,
        )
        self._run: Any = None
        self._last_step: dict[str, int] = {}

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:  # a neptune Run
        """The neptune Run, started (or, in async/sync mode, resumed from the stored id) on first use."""
        if self._run is None:
            import neptune

            with_id = common.read_id(self._id_file) if self._mode in RESUMABLE_MODES else None
            with data_directory(self._run_dir / DATA_DIR), warnings.catch_warnings(), redacted_argv():
                warnings.filterwarnings("ignore", message=".*NVML.*")  # no GPU: nothing to monitor there
                self._run = neptune.init_run(
                    with_id=with_id, project=self._project, mode=self._mode, **self._init
                )  # the token: NEPTUNE_API_TOKEN, read by neptune
            if self._mode in RESUMABLE_MODES:
                common.write_id(self._id_file, self._run["sys/id"].fetch())
        return self._run

    @property
    def name(self) -> str:
        return self._project or "offline"

    @property
    def version(self) -> str | None:
        return common.read_id(self._id_file)

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:  # a dict or a Namespace
        from lightning_fabric.utilities.logger import _convert_params
        from neptune.utils import stringify_unsupported

        self.experiment["parameters"] = stringify_unsupported(_convert_params(params))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            if step is not None:
                if step <= self._last_step.get(key, -1):
                    continue  # Neptune refuses a step that is not above its series' last one
                self._last_step[key] = step
            self.experiment[key].append(float(value), step=step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Called after fit and after test: flush (to disk offline, to the server otherwise), keep the run open."""
        if self._run is not None:
            self._run["status"] = status
            if status == "failed":
                self._run["sys/failed"] = True
            self._run.wait()

    def close(self) -> None:
        """Attach the run folder's files (common.run_files) under `files/` and stop the Neptune run (flushes
        everything first)."""
        if self._run is None:
            return
        run, self._run = self._run, None
        try:
            from neptune.types import File

            for path in common.run_files(self._run_dir, self._checkpoints):
                # Small files by content: an offline run keeps them in its own data, which `neptune sync` reads
                # wherever the run folder has been moved. Checkpoints by path: read when uploaded.
                extension = path.suffix.lstrip(".")
                if path.suffix == ".ckpt":
                    file = File.from_path(str(path), extension=extension)
                else:
                    file = File.from_content(path.read_bytes(), extension=extension)
                run[f"files/{path.stem}"].upload(file)  # the extension is kept apart from the name
        finally:
            run.stop()


@LOGGERS.register("neptune")
def neptune(
    run_dir: str,
    mode: str | None = None,
    project: str | None = None,
    tags: Sequence[str] = (),
    capture_hardware_metrics: bool = True,
    capture_output: bool = False,
    checkpoints: bool = False,
) -> Logger:
    """mode: gin > NEPTUNE_MODE > 'async'. project: gin > NEPTUNE_PROJECT. The API token comes from
    NEPTUNE_API_TOKEN only (never from gin: the config is stored in the run folder). capture_output: also send
    stdout/stderr (the run folder has them in stdout.txt/stderr.txt anyway). checkpoints: also attach best.ckpt and
    last.ckpt."""
    common.require("neptune")
    mode = mode or os.environ.get("NEPTUNE_MODE") or "async"
    if mode not in MODES:
        raise UserError(f"neptune.mode must be one of {', '.join(MODES)}; got {mode!r}.")
    project = project or os.environ.get("NEPTUNE_PROJECT")
    if mode not in ("offline", "debug"):
        if not os.environ.get("NEPTUNE_API_TOKEN"):
            raise UserError(
                f"The 'neptune' logger in {mode} mode needs NEPTUNE_API_TOKEN in the environment "
                "(e.g. in .env); or log offline: NEPTUNE_MODE=offline."
            )
        if not project:
            raise UserError(
                f"The 'neptune' logger in {mode} mode needs a project: NEPTUNE_PROJECT=workspace/project "
                "or neptune.project = 'workspace/project'."
            )
    run = Path(run_dir)
    logger = NeptuneLogger(
        run,
        mode=mode,
        project=project,
        name=run.resolve().name,
        tags=redact_all(list(tags)),
        capture_hardware_metrics=capture_hardware_metrics,
        capture_output=capture_output,
        checkpoints=checkpoints,
    )
    return common.replace_open("neptune", logger)
