"""Experiment trackers: a short training writes the hyperparameters and the epoch metrics of history.csv, read back
here through each tracker's own format (TensorBoard events, MLflow's store, Neptune's offline files, W&B's offline
run file). Offline and in tmp_path. A tracker whose package is missing is skipped, except under CI (which installs
requirements-extras.txt), where that is a failure."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from src.errors import UserError
from src.loggers import LOGGERS, common

LR = 0.003  # supervised.lr in configs/cnn.gin


def need(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{package} is not installed: CI must install requirements-extras.txt")
        pytest.skip(f"{package} is not installed (pip install -r requirements-extras.txt)")


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
    """The message as bin/ scripts print it (src/cli.py drops the lines gin appends)."""
    from src.cli import first_line

    return first_line(error)


def history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "history.csv")


# --- TensorBoard ---------------------------------------------------------------------------------------------------


def test_tensorboard_has_hparams_and_epoch_metrics(train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "results" / "exp" / "run"
    train(run, "training_loop.loggers = ['tensorboard']", "training_loop.n_epochs = 2")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    valid_acc = [e.value for e in events.Scalars("valid_acc")]
    assert valid_acc == pytest.approx(list(history(run)["valid_acc"]), rel=1e-6)
    assert {"train_loss", "train_acc", "valid_loss", "test_acc"} <= set(events.Tags()["scalars"])

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["supervised.lr"].number_value == pytest.approx(LR)
    assert hparams["training_loop.model"].string_value == "cnn"


# --- MLflow --------------------------------------------------------------------------------------------------------


def test_mlflow_params_metrics_and_resume_in_the_same_run(train, tmp_path):
    need("mlflow")
    from mlflow.tracking import MlflowClient

    run = tmp_path / "results" / "exp" / "run"
    train(run, "training_loop.loggers = ['mlflow']", "training_loop.n_epochs = 1")
    first_id = (run / "mlflow_run_id.txt").read_text().strip()
    train(run, "training_loop.loggers = ['mlflow']", "training_loop.n_epochs = 2")  # resumes: one more epoch
    assert (run / "mlflow_run_id.txt").read_text().strip() == first_id

    database = tmp_path / "results" / "mlflow.db"
    assert database.is_file()
    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.get_experiment_by_name("exp")
    assert experiment.artifact_location == (tmp_path / "results" / "mlartifacts").resolve().as_uri()
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [first_id]  # one MLflow run for both attempts
    logged = runs[0]
    assert logged.info.run_name == "run" and logged.info.status == "FINISHED"
    assert float(logged.data.params["supervised.lr"]) == LR
    assert logged.data.params["training_loop.n_epochs"] == "1"  # MLflow params are immutable: the new value is a tag
    assert logged.data.tags["changed_on_resume.training_loop.n_epochs"] == "2"
    points = sorted(client.get_metric_history(first_id, "valid_acc"), key=lambda m: m.step)
    assert [m.value for m in points] == list(history(run)["valid_acc"])
    assert "test_acc" in logged.data.metrics


def test_mlflow_tracking_store_choice(monkeypatch, tmp_path):
    need("mlflow")
    from src.loggers import mlflow as mlflow_logger

    built = {}
    monkeypatch.setattr(mlflow_logger, "make_logger_class", lambda: lambda **kwargs: built.update(kwargs))
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


def neptune_operations(run: Path) -> list[dict]:
    """The operations of the run's offline Neptune runs, in order (what `neptune sync` would upload)."""
    folders = sorted((run / ".neptune" / "offline").glob("run__*"))
    assert folders, "no offline Neptune run"
    operations = []
    for folder in folders:
        for log in sorted(folder.glob("data-*.log"), key=lambda p: int(p.stem.split("-")[1])):
            operations += [json.loads(line)["obj"] for line in log.read_text().splitlines() if line.strip()]
    return operations


def test_neptune_offline_params_and_metrics(train, tmp_path):
    need("neptune")
    run = tmp_path / "results" / "exp" / "run"
    train(run, "training_loop.loggers = ['neptune']", "training_loop.n_epochs = 2")
    operations = neptune_operations(run)  # flushed by `finalize`, before the run is closed

    assigned = {tuple(op["path"]): op["value"] for op in operations if op["type"].startswith("Assign")}
    assert assigned[("parameters", "supervised.lr")] == LR
    assert assigned[("parameters", "training_loop.model")] == "cnn"
    assert assigned[("parameters", "training_loop.gradient_clip_val")] == "None"  # stringified, not dropped
    assert assigned[("sys", "name")] == "run"
    assert assigned[("status",)] == "success"

    series: dict[str, list[dict]] = {}
    for op in operations:
        if op["type"] == "LogFloats" and op["path"][0] != "monitoring":
            series.setdefault("/".join(op["path"]), []).extend(op["values"])
    assert [v["value"] for v in series["valid_acc"]] == list(history(run)["valid_acc"])
    assert {"train_loss", "train_acc", "valid_loss", "test_acc", "epoch"} <= set(series)
    for name, values in series.items():
        steps = [v["step"] for v in values]
        assert steps == sorted(set(steps)), f"{name}: Neptune needs increasing steps"
    assert not (run / "neptune_run_id.txt").exists()  # offline runs cannot be resumed: no id to keep


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


def wandb_records(path: Path):
    """The protobuf records of a .wandb file (a LevelDB-style log: 32 KiB blocks of chunks with 7-byte headers)."""
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending = header, b""
    while position + header <= len(data):
        left = block - position % block
        if left < header:  # block padding
            position += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + header])
        if kind == 0 and length == 0:  # zero padding up to the next block
            position += left
            continue
        pending += data[position + header : position + header + length]
        position += header + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            yield wandb_internal_pb2.Record.FromString(pending)
            pending = b""


def test_wandb_offline_params_metrics_and_resume_with_the_same_id(train, tmp_path):
    need("wandb")
    run = tmp_path / "results" / "exp" / "run"
    train(run, "training_loop.loggers = ['wandb']", "training_loop.n_epochs = 1")
    run_id = (run / "wandb_run_id.txt").read_text().strip()
    train(run, "training_loop.loggers = ['wandb']", "training_loop.n_epochs = 2")  # resumes: one more epoch
    assert (run / "wandb_run_id.txt").read_text().strip() == run_id
    common.close_all()  # W&B writes the rest of an offline run when it finishes

    attempts = sorted((run / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and all(a.name.endswith("-" + run_id) for a in attempts)
    valid_acc, config = [], {}
    for attempt in attempts:
        for record in wandb_records(attempt / f"run-{run_id}.wandb"):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                assert (record.run.run_id, record.run.project, record.run.display_name) == (run_id, "exp", "run")
            elif kind == "config":
                config.update({item.key: json.loads(item.value_json) for item in record.config.update})
            elif kind == "history":
                row = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
                }
                if "valid_acc" in row:
                    valid_acc.append(row["valid_acc"])
    assert config["supervised.lr"] == LR and config["training_loop.n_epochs"] == 2
    assert valid_acc == list(history(run)["valid_acc"])


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
    train(run, f"training_loop.loggers = {loggers}", "training_loop.n_epochs = 1")
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
