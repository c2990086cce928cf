"""Experiment trackers: a short training sends every tracker the hyperparameters, history.csv's metrics at
history.csv's steps, the training loss every few steps, the test metrics and the run folder's files; each is read
back here with the tracker's own client (TensorBoard's EventAccumulator, MlflowClient, neptune's offline reader and
`neptune sync`, `wandb leet inspect` and `wandb sync --dry-run`). Offline and in tmp_path. A tracker whose package is
missing is skipped, except under CI (which installs requirements-extras.txt), where that is a failure."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.callbacks import CALLBACKS
from src.errors import UserError
from src.loggers import LOGGERS, common
from tests.helpers import history

LR = 0.003  # supervised.lr in configs/cnn.gin
EVERY = 3  # the step loss interval of these tests
STEP_LOSS = [f"tracker_metrics.step_loss_every = {EVERY}"]
STEP_METRIC = "train_loss_step"


def need(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{package} is not installed: CI must install requirements-extras.txt")
        pytest.skip(f"{package} is not installed (pip install -r requirements-extras.txt)")


def command(name: str) -> str:
    """A console script installed with the tracker's package (next to this Python, or on PATH)."""
    path = Path(sys.executable).with_name(name)
    found = str(path) if path.is_file() else shutil.which(name)
    assert found, f"the {name} command is not installed"
    return found


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every tracker offline, every file under tmp_path; the runs a test leaves open are closed after it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    for var in (
        "MLFLOW_TRACKING_URI",
        "NEPTUNE_PROJECT",
        "NEPTUNE_DATA_DIRECTORY",
        "NEPTUNE_API_TOKEN",
        "WANDB_MODE",
        "WANDB_PROJECT",
        "WANDB_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home" / var.lower()))
    yield
    common.close_all()


def error_line(error: Exception) -> str:
    """The message as bin/ scripts print it (src/cli/ drops the lines gin appends)."""
    from src.errors import one_line

    return one_line(error)


def assert_same_as_history(received: dict, run: Path, every: int = EVERY, tests_at=None, rel: float = 1e-12) -> None:
    """`received` (metric -> [(step, value)] as the tracker holds it) is what Lightning and the template send: every
    column of history.csv but `epoch` and `step` with its epoch's values at the index of the epoch's last step (one
    less than history's `step`, which counts the steps done), Lightning's own `epoch` there, the training loss at every
    `every`-th step's index, and the test metrics of eval_results.json at the steps where trainings ended (`tests_at`,
    default the last step)."""
    received = dict(received)
    rows = history(run, timing=True)
    last = int(rows["step"].iloc[-1])
    step_loss = received.pop(STEP_METRIC, [])
    assert [step for step, _ in step_loss] == list(range(every - 1, last, every) if every else [])
    assert all(0 < value < 10 for _, value in step_loss), step_loss

    tested = {k: v for k, v in json.loads((run / "eval_results.json").read_text()).items() if k != "checkpoint"}
    assert {step for step, _ in received.pop("epoch")} <= set(rows["step"] - 1) | set(tests_at or [last])
    assert tested and set(received) == {c for c in rows.columns if c not in ("step", "epoch")} | set(tested)
    for name in rows.columns.drop(["step", "epoch"]):
        assert [step for step, _ in received[name]] == list(rows["step"] - 1), name
        assert [value for _, value in received[name]] == pytest.approx(list(rows[name]), rel=rel), name
    for name, value in tested.items():
        assert [step for step, _ in received[name]] == (tests_at or [last]), name
        assert received[name][-1][1] == pytest.approx(value, rel=rel), name


# --- TensorBoard ---------------------------------------------------------------------------------------------------


def test_tensorboard_has_hparams_and_the_metrics_of_history(train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "results" / "exp" / "run"
    accumulate = "training_loop.accumulate_grad_batches = 2"  # the step loss once per optimizer step, not per batch
    train(run, "training_loop.loggers = ['tensorboard']", "training_loop.n_epochs = 2", accumulate, *STEP_LOSS)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    received = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert_same_as_history(received, run, rel=1e-6)  # TensorBoard keeps float32

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["supervised.lr"].number_value == pytest.approx(LR)
    assert hparams["training_loop.model"].string_value == "cnn"

    # resumed to more epochs: the HParams tab shows the config the run continued with (it kept the first)
    train(run, "training_loop.loggers = ['tensorboard']", "training_loop.n_epochs = 3", accumulate, *STEP_LOSS)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["training_loop.n_epochs"].number_value == 3


def test_step_loss_interval_must_be_a_whole_number(tmp_path):
    build = CALLBACKS.get("tracker_metrics")
    for bad in (-1, 2.5, True):
        with pytest.raises(UserError, match=r"tracker_metrics.step_loss_every must be a whole number of steps"):
            build(run_dir=str(tmp_path), step_loss_every=bad)


# --- MLflow --------------------------------------------------------------------------------------------------------


def test_mlflow_params_metrics_files_and_resume_in_the_same_run(train, tmp_path):
    need("mlflow")
    from mlflow.tracking import MlflowClient

    run = tmp_path / "results" / "exp" / "run"
    train(run, "training_loop.loggers = ['mlflow']", "training_loop.n_epochs = 1", *STEP_LOSS)
    first_id = (run / "mlflow_run_id.txt").read_text().strip()
    database = tmp_path / "results" / "mlflow.db"
    client = MlflowClient(f"sqlite:///{database}")
    assert sorted(a.path for a in client.list_artifacts(first_id)) == ["config.gin", "eval_results.json"]

    # resumes: one more epoch, into the same MLflow run; a logger parameter may change on resume
    train(
        run, "training_loop.loggers = ['mlflow']", "training_loop.n_epochs = 2", "mlflow.checkpoints = True", *STEP_LOSS
    )
    assert (run / "mlflow_run_id.txt").read_text().strip() == first_id

    experiment = client.get_experiment_by_name("exp")
    assert experiment.artifact_location == (tmp_path / "results" / "mlartifacts").resolve().as_uri()
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [first_id]  # one MLflow run for both attempts
    logged = runs[0]
    assert logged.info.run_name == "run" and logged.info.status == "FINISHED"
    assert float(logged.data.params["supervised.lr"]) == LR
    assert logged.data.params["training_loop.n_epochs"] == "1"  # MLflow params are immutable: the new value is a tag
    assert logged.data.tags["changed_on_resume.training_loop.n_epochs"] == "2"

    received = {
        name: [(m.step, m.value) for m in sorted(client.get_metric_history(first_id, name), key=lambda m: m.step)]
        for name in logged.data.metrics
    }
    assert_same_as_history(
        received, run, tests_at=list(history(run, timing=True)["step"])
    )  # each attempt ended with a test

    files = ["best.ckpt", "config.gin", "eval_results.json", "last.ckpt"]
    assert sorted(a.path for a in client.list_artifacts(first_id)) == files
    downloaded = Path(client.download_artifacts(first_id, "", str(tmp_path / "downloaded")))
    for name in files:
        assert (downloaded / name).read_bytes() == (run / name).read_bytes(), name


def test_mlflow_tracking_store_choice(monkeypatch, tmp_path):
    need("mlflow")
    from src.loggers import mlflow as mlflow_logger

    built = {}
    monkeypatch.setattr(mlflow_logger, "RunFolderMLFlowLogger", lambda **kwargs: built.update(kwargs))
    build = LOGGERS.get("mlflow")
    results = (tmp_path / "results").resolve()

    build(run_dir=str(results / "tune_lr" / "small" / "lr=0.1"))
    assert built["tracking_uri"] == f"sqlite:///{results / 'mlflow.db'}"
    assert built["artifact_location"] == (results / "mlartifacts").as_uri()
    assert built["experiment_name"] == "tune_lr/small" and built["run_name"] == "lr=0.1" and built["run_id"] is None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    build(run_dir=str(results / "cnn"))
    assert built["tracking_uri"] == "http://tracking:5000" and built["artifact_location"] is None
    assert built["experiment_name"] == "default"

    build(run_dir=str(results / "cnn"), tracking_uri="sqlite:///other.db", experiment_name="mine")  # gin wins
    assert built["tracking_uri"] == "sqlite:///other.db" and built["experiment_name"] == "mine"


# --- Neptune (offline) ---------------------------------------------------------------------------------------------


def neptune_operations(run: Path) -> list:
    """The operations of the run's offline Neptune runs, in order, read as `neptune sync` reads them."""
    import threading

    from neptune.cli.collect import collect_offline_containers
    from neptune.core.components.queue.disk_queue import DiskQueue
    from neptune.internal.operation import Operation

    containers = list(collect_offline_containers(path=run / ".neptune"))
    assert containers, "no offline Neptune run"
    operations = []
    for container in containers:
        for execution in container.execution_dirs:
            with DiskQueue(
                data_path=execution.path,
                to_dict=lambda op: op.to_dict(),
                from_dict=Operation.from_dict,
                lock=threading.RLock(),
            ) as queue:
                while batch := queue.get_batch(1000):
                    operations += [element.obj for element in batch]
    return operations


def test_neptune_offline_params_metrics_files_and_sync(train, tmp_path):
    need("neptune")
    from neptune.cli.sync import SyncRunner
    from neptune.internal.backends.neptune_backend_mock import NeptuneBackendMock
    from neptune.internal.container_type import ContainerType
    from neptune.internal.operation import LogFloats, UploadFile

    run = tmp_path / "results" / "exp" / "run"
    train(run, "training_loop.n_epochs = 1")  # no tracker; Neptune is added when the run continues
    train(
        run,
        "training_loop.loggers = ['neptune']",
        "training_loop.n_epochs = 2",
        "tracker_metrics.step_loss_every = 0",  # no step loss
        "neptune.checkpoints = True",
    )
    operations = neptune_operations(run)  # a new tracker run: it gets the epoch before it too

    assigned = {"/".join(op.path): op.value for op in operations if type(op).__name__.startswith("Assign")}
    assert assigned["parameters/supervised.lr"] == LR
    assert assigned["parameters/training_loop.model"] == "cnn"
    assert assigned["parameters/training_loop.num_threads"] == "None"  # stringified, not dropped
    assert assigned["sys/name"] == "run"
    assert assigned["status"] == "success"
    received: dict[str, list] = {}
    for op in operations:
        if isinstance(op, LogFloats) and op.path[0] not in ("monitoring", "sys"):
            received.setdefault("/".join(op.path), []).extend((v.step, v.value) for v in op.values)
    assert_same_as_history(received, run, every=0)
    assert not (run / "neptune_run_id.txt").exists()  # offline runs cannot be resumed: no id to keep

    # `neptune sync --path <run>` uploads it: here to neptune's own stand-in for a server, which keeps what it got
    class Server(NeptuneBackendMock):
        uploaded: dict[str, bytes] = {}

        def create_run(self, *args, **kwargs):
            self.run = super().create_run(*args, **kwargs)
            return self.run

        def execute_operations(self, container_id, container_type, operations, operation_storage):
            for op in operations:
                if isinstance(op, UploadFile):
                    self.uploaded["/".join(op.path)] = Path(op.get_absolute_path(operation_storage)).read_bytes()
            return super().execute_operations(container_id, container_type, operations, operation_storage)

    server = Server()
    SyncRunner.sync_all_offline(backend=server, base_path=run / ".neptune", project_name="workspace/project")
    valid_acc = server.get_float_series_values(server.run.id, ContainerType.RUN, ["valid_acc"], 0, 100).values
    assert [point.value for point in valid_acc] == list(history(run, timing=True)["valid_acc"])
    files = {"files/config": "config.gin", "files/eval_results": "eval_results.json", "files/best": "best.ckpt"}
    assert set(server.uploaded) == {*files, "files/last"}
    for field, name in files.items():
        assert server.uploaded[field] == (run / name).read_bytes(), name


def test_neptune_sync_command_runs():
    """The documented upload path: `neptune sync` imports pkg_resources (setuptools<81, pinned in
    requirements-extras.txt)."""
    need("neptune")
    result = subprocess.run([command("neptune"), "sync", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Synchronizes objects with unsent data to the server" in result.stdout


def test_neptune_online_needs_token_and_project(train, monkeypatch, tmp_path):
    need("neptune")
    monkeypatch.setenv("NEPTUNE_MODE", "async")
    run = tmp_path / "results" / "run"
    with pytest.raises(UserError, match="NEPTUNE_API_TOKEN"):
        train(run, "training_loop.loggers = ['neptune']")
    assert not run.exists()  # failed before the run folder was made
    monkeypatch.setenv("NEPTUNE_API_TOKEN", "not-a-real-token")
    with pytest.raises(UserError, match="NEPTUNE_PROJECT"):
        LOGGERS.get("neptune")(run_dir=str(run))
    with pytest.raises(UserError, match="neptune.mode must be one of"):
        LOGGERS.get("neptune")(run_dir=str(run), mode="read-only")


# --- Weights & Biases (offline) ------------------------------------------------------------------------------------


def test_wandb_disabled_mode_closes_quietly(tmp_path):
    need("wandb")
    run = tmp_path / "results" / "run"
    run.mkdir(parents=True)
    (run / "config.gin").write_text("supervised.lr = 0.1\n")
    logger = LOGGERS.get("wandb")(run_dir=str(run), mode="disabled")
    logger.log_hyperparams({"supervised.lr": 0.1})
    logger.log_metrics({"valid_acc": 0.5}, step=1)
    logger.close()  # nothing to attach the files to
    assert not (run / "wandb").exists()


def wandb_records(attempt: Path) -> list[dict]:
    """The records of an offline W&B run, read by wandb's own reader of its transaction log."""
    result = subprocess.run(
        [command("wandb"), "leet", "inspect", "--json", str(attempt)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_wandb_offline_each_attempt_is_a_run_of_the_folders_group_with_the_history_so_far(train, tmp_path):
    """Offline, W&B cannot merge several folders of one run id (syncing them replaces its history): each attempt is
    a W&B run of its own, grouped by the run folder's name, with that attempt's config and the whole history so far
    (the earlier epochs resent), and the run folder's files as they were at its end."""
    need("wandb")
    run = tmp_path / "results" / "exp" / "run"

    def attempt(n_epochs: int) -> bytes:
        """Train to n_epochs; the run's transaction log as it is the moment the training returns."""
        train(run, "training_loop.loggers = ['wandb']", f"training_loop.n_epochs = {n_epochs}", *STEP_LOSS)
        return max((run / "wandb").glob("offline-run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime).read_bytes()

    at_return = [attempt(1)]
    config_before = (run / "config.gin").read_text()
    at_return.append(attempt(2))  # resumes: one more epoch

    listed = subprocess.run([command("wandb"), "sync", "--dry-run", str(run / "wandb")], capture_output=True, text=True)
    assert "Would sync 2 run(s)" in listed.stdout + listed.stderr
    attempts = sorted((run / "wandb").glob("offline-run-*"), key=lambda p: p.stat().st_mtime)
    ids = [a.name.rsplit("-", 1)[-1] for a in attempts]
    assert len(set(ids)) == 2 and (run / "wandb_run_id.txt").read_text().strip() == ids[-1]
    # complete when the training returned: wandb-core writes the log's end after `finish()` unless waited for
    assert at_return == [(a / f"run-{i}.wandb").read_bytes() for a, i in zip(attempts, ids, strict=True)]
    for number, (folder, run_id) in enumerate(zip(attempts, ids, strict=True), 1):
        config, received, saved = {}, {}, []
        records = wandb_records(folder)
        assert records[-1]["type"] == "exit"  # the whole run was written
        for record in records:
            if record["type"] == "run":
                assert (record["run"]["run_id"], record["run"]["project"], record["run"]["run_group"]) == (
                    run_id, "exp", "run"
                )  # fmt: skip
            elif record["type"] == "config":
                config.update(record["config"]["update"])
            elif record["type"] == "history":
                item = record["history"]["item"]
                for name, value in item.items():
                    if not name.startswith("_") and name != "trainer/global_step":
                        received.setdefault(name, []).append((item["trainer/global_step"], value))
            elif record["type"] == "files":
                saved += [f["path"] for f in record["files"]["files"] if f.get("type") != "WANDB"]
        assert config["supervised.lr"] == LR and config["training_loop.n_epochs"] == number
        assert saved == ["config.gin", "eval_results.json"]  # no checkpoints
        rows = history(run, timing=True).iloc[:number]
        for name in rows.columns.drop(["epoch", "step"]):  # every epoch so far, at Lightning's steps
            assert [step for step, _ in received[name]] == list(rows["step"] - 1), (number, name)
            assert [value for _, value in received[name]] == pytest.approx(list(rows[name])), (number, name)
    assert (attempts[0] / "files" / "config.gin").read_text() == config_before  # as it was at that attempt's end
    for name in ("config.gin", "eval_results.json"):
        assert (attempts[1] / "files" / name).read_bytes() == (run / name).read_bytes()


# --- All of them ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("package", ["mlflow", "neptune", "wandb"])
def test_missing_extra_is_one_line(train, monkeypatch, tmp_path, package):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now fails as if it were not installed
    run = tmp_path / "results" / "run"
    with pytest.raises(UserError) as error:
        train(run, f"training_loop.loggers = ['{package}']")
    assert error_line(error.value) == (
        f"The '{package}' logger needs the {package} package: "
        f"pip install -e '.[{package}]' (or pip install -r requirements-extras.txt)"
    )
    assert not run.exists()


def test_secrets_never_reach_the_run_folder(train, monkeypatch, tmp_path):
    loggers = ["tensorboard"] + [p for p in ("mlflow", "neptune", "wandb") if importlib.util.find_spec(p)]
    if len(loggers) == 1:
        need("mlflow")
    secrets = {"NEPTUNE_API_TOKEN": "nept-3fa9c1d27be04d8e", "WANDB_API_KEY": "wandbkey-9d1e6c0b42a7f5e3d8c1"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    if shutil.which("git"):  # started from a git checkout whose uncommitted changes hold the secrets
        repo = tmp_path / "repo"
        repo.mkdir()
        (repo / "settings.txt").write_text("token = ''\n")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
        for command in (["init", "-q"], ["add", "settings.txt"], ["commit", "-qm", "settings"]):
            subprocess.run(git + command, cwd=repo, check=True)
        (repo / "settings.txt").write_text("".join(f"{k} = '{v}'\n" for k, v in secrets.items()))
        monkeypatch.chdir(repo)
        if "neptune" in loggers:  # Neptune looks for the repository of the script run (here: pytest's)
            from neptune.types.atoms.git_ref import GitRef

            monkeypatch.setattr(GitRef, "resolve_path", lambda self: repo)
    run = tmp_path / "results" / "exp" / "run"
    # a secret in a tracker's option, given on the command line: masked in the tracker's files as in config.gin
    given = {
        "wandb": f"wandb.group = '{secrets['WANDB_API_KEY']}'",
        "neptune": f"neptune.tags = ['{secrets['NEPTUNE_API_TOKEN']}']",
    }
    bindings = [given[name] for name in loggers if name in given]
    monkeypatch.setattr(sys, "argv", ["bin/train.py", str(run), "configs/cnn.gin", "-b", "#".join(bindings)])
    train(run, f"training_loop.loggers = {loggers}", "training_loop.n_epochs = 1", *bindings)
    common.close_all()  # everything flushed and closed before looking

    assert not [name for name in (".neptune", "wandb", "mlruns") if (Path.cwd() / name).exists()]  # all in results/
    files = [p for p in (tmp_path / "results").rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.suffix == ".wandb" for p in files) == ("wandb" in loggers)
    for path in files:
        content = path.read_bytes()
        for name, value in secrets.items():
            assert value.encode() not in content, f"{name} found in {path.relative_to(tmp_path)}"


def test_experiment_name_is_the_folder_under_results(monkeypatch, tmp_path):
    results = tmp_path / "results"
    monkeypatch.setenv("RESULTS_DIR", str(results))
    assert common.experiment_name(results / "tune_lr" / "small" / "lr=0.1") == "tune_lr/small"
    assert common.experiment_name(results / "cnn") == "default"
    assert common.experiment_name(tmp_path / "elsewhere" / "run") == "elsewhere"
    assert common.slug("tune_lr/small") == "tune_lr-small"
