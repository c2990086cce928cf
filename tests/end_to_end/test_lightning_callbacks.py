"""Lightning's callbacks by name, with run-folder semantics: early stopping finishes a run for good, averaged weights
are the model, a wall-time limit stops a run resumably, and every stop-and-resume ends as an uninterrupted run."""

import json
import signal
import subprocess
import sys

import pytest
import torch

from src.run import layout
from src.run.status import status_of
from tests.helpers import FAST, ROOT, assert_same_runs, evaluate_by_hand, history

METRICS = ["epoch", "step", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr"]
# min_delta 1.0: accuracy never improves enough after the first epoch, so patience 2 stops after epoch 3 of 6
EARLY = (
    "training_loop.n_epochs = 6",
    "training_loop.callbacks = ['early_stopping']",
    "early_stopping.patience = 2",
    "early_stopping.min_delta = 1.0",
    "cnn.dropout = 0.2",
)


def stopped(run):
    return json.loads((run / layout.META).read_text()).get("stopped_early")


@pytest.fixture
def interrupted():
    """Run a training that is expected to stop as interrupted (KeyboardInterrupt), restoring pytest's Ctrl-C."""

    def run(train, *args):
        ctrl_c = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT after an interrupt
        try:
            with pytest.raises(KeyboardInterrupt):
                train(*args)
        finally:
            signal.signal(signal.SIGINT, ctrl_c)

    return run


def test_early_stopping_finishes_the_run_for_good(train, tmp_path, env, capsys):
    reference = tmp_path / "reference"
    train(reference, *EARLY)
    assert layout.last_epoch(reference) == 3 and status_of(reference) == "finished"
    stop = stopped(reference)
    assert stop["reason"] == "early_stopping" and stop["epoch"] == 3 and stop["monitor"] == "valid_acc"
    assert stop["mode"] == "max" and stop["n_epochs"] == 6
    meta = json.loads((reference / layout.META).read_text())
    assert meta["parameters"]["total"] == meta["parameters"]["trainable"] > 0

    files = {name: (reference / name).read_bytes() for name in (layout.HISTORY, layout.EVAL_RESULTS, layout.META)}
    for more in ((), ("training_loop.n_epochs = 10",)):  # the same command, and one with more epochs
        capsys.readouterr()
        train(reference, *EARLY, *more)
        assert {name: (reference / name).read_bytes() for name in files} == files
        assert "finished: stopped early after epoch 3 (early_stopping" in capsys.readouterr().out

    # killed mid-way through epoch 2 (before the stop), then after the stop but before FINISHED: the same command
    # ends as the uninterrupted run did
    steps_per_epoch = int(history(reference)["step"].iloc[0])
    run = tmp_path / "killed"
    args = [str(run), "configs/cnn.gin", "-b", "#".join([*FAST, *EARLY])]
    for point in (f"step:{steps_per_epoch + 2}", "finish"):
        out = subprocess.run(
            [sys.executable, "tests/kill_at.py", point, *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == -signal.SIGKILL, f"{point}: {out.returncode} {out.stderr[-1500:]}"
        assert status_of(run) == "dead"
    train(run, *EARLY)
    assert_same_runs(reference, run)
    assert status_of(run) == "finished" and stopped(run)["epoch"] == 3

    # the analysis knows: load_runs and bin/runs.py show the stop, the learning curves end (marked) at epoch 3
    from src.analysis.runs_table import runs_table
    from src.results import load_runs
    from src.searches.plots import plot

    runs = load_runs(tmp_path)
    assert runs.set_index("run").loc[str(run), ["stop_reason", "stop_epoch"]].tolist() == ["early_stopping", 3]
    assert runs_table(tmp_path)[["stop_reason", "stop_epoch"]].values.tolist() == [["early_stopping", 3]] * 2
    (tmp_path / "plots").mkdir()
    written = plot(runs.assign(name=["a", "b"]), [], False, "valid_acc", True, tmp_path / "plots")
    assert tmp_path / "plots" / "learning_curves.png" in written


def test_early_stopping_defaults_follow_the_module_and_bad_values_are_one_line(train, tmp_path):
    from src import config
    from src.callbacks import CALLBACKS
    from src.errors import UserError

    metrics = {"main": "valid_loss", "directions": {"valid_loss": "min", "valid_acc": "max"}}
    built = CALLBACKS.build("early_stopping", run_dir=str(tmp_path), metrics=metrics)
    assert (built.monitor, built.mode) == ("valid_loss", "min")
    config.parse([], ["early_stopping.monitor = 'valid_f1'"])
    with pytest.raises(UserError, match="valid_f1.*valid_loss, valid_acc"):
        CALLBACKS.build("early_stopping", run_dir=str(tmp_path), metrics=metrics)


def test_max_time_stops_resumably_and_the_next_start_finishes_identically(train, tmp_path, interrupted):
    bindings = ("training_loop.n_epochs = 2", "cnn.dropout = 0.2")
    train(tmp_path / "reference", *bindings)
    run = tmp_path / "run"
    interrupted(train, run, *bindings, "training_loop.max_time = {'milliseconds': 1}")  # up after the first step
    assert "time limit: training_loop.max_time (0 s) is up: saved" in (run / layout.STDERR).read_text()
    assert status_of(run) == "dead" and not (run / layout.EVAL_RESULTS).exists()
    assert torch.load(run / layout.PREEMPTED_CKPT, weights_only=True)["global_step"] == 1
    train(run, *bindings, "training_loop.max_time = '00:01:00:00'")  # the limit may change between attempts
    assert status_of(run) == "finished"
    assert_same_runs(tmp_path / "reference", run)


def test_ema_weights_are_the_model_and_resume_exactly(train, tmp_path, interrupted, monkeypatch):
    from src.recipes.evaluate import evaluate
    from src.results import load_model
    from src.training.callbacks.time_limit import TimeLimit

    bindings = ("training_loop.n_epochs = 2", "training_loop.callbacks = ['ema']", "ema.decay = 0.9")
    reference = tmp_path / "reference"
    train(reference, *bindings)
    best = torch.load(reference / layout.BEST_CKPT, weights_only=True)
    weights = "model.0.weight"
    assert not torch.equal(best["state_dict"][weights], best["current_model_state"][weights])  # averaged, not raw

    stored = json.loads((reference / layout.EVAL_RESULTS).read_text())
    evaluated, _ = evaluate(reference)
    assert evaluated == stored  # bin/evaluate.py tests the averaged weights, as the training's own test did
    model = load_model(reference)
    assert torch.equal(model.state_dict()[weights], best["state_dict"][weights])
    loss, acc = evaluate_by_hand(reference, "best", "test", 32)
    assert acc == pytest.approx(stored["test_acc"], abs=1e-6) and loss == pytest.approx(stored["test_loss"], rel=1e-5)

    # stopped mid-way through the second epoch (the wall-time limit, faked), resumed: exact
    monkeypatch.setattr(TimeLimit, "_time_up", lambda self, trainer: trainer.global_step >= 10)
    run = tmp_path / "run"
    interrupted(train, run, *bindings, "training_loop.max_time = {'hours': 1}")
    assert torch.load(run / layout.PREEMPTED_CKPT, weights_only=True)["global_step"] == 10
    monkeypatch.undo()
    train(run, *bindings, "training_loop.max_time = {'hours': 1}")
    assert_same_runs(reference, run)


def test_find_lr_writes_a_plot_and_a_suggestion(tmp_path, capsys):
    from src.cli.training import find_lr_main

    out = tmp_path / "lr"
    code = find_lr_main(["configs/cnn.gin", "-b", "#".join(FAST), "--out", str(out), "--steps", "20"])
    found = json.loads((out / "lr_find.json").read_text())
    assert code == 0 and (out / "lr_find.png").stat().st_size > 0
    assert 1e-6 <= found["suggested_lr"] <= 1.0 and len(found["lr"]) == len(found["loss"]) > 0
    assert f"suggested: supervised.lr = {found['suggested_lr']:.3g}" in capsys.readouterr().out
    assert not list(out.glob(".lr_find*"))  # lr_find's temporary checkpoint is gone


def test_the_suggested_lr_is_half_way_down_the_longest_fall_not_on_the_start_up_bump():
    from src.recipes.find_lr import valley

    # Lightning's smoothed loss: a bump at tiny rates (its bias correction), noise, the fall, then divergence
    losses = [1.25, 2.08, 2.22, 2.28, 2.27, 2.29, 2.25, 2.19, 2.10, 1.97, 1.81, 1.64, 1.47, 1.31, 1.18, 1.24, 1.41]
    assert valley(losses) == 9  # half-way down 2.28, 2.27, 2.25, ... 1.18 (indices 3-14); the steepest slope is at 0
    assert valley([2.0, float("nan"), 1.0, 0.5]) == 2 and valley([1.0, 2.0, 3.0]) is None and valley([]) is None


def test_swa_weights_are_the_model_and_resume_exactly(train, tmp_path, interrupted, monkeypatch, caplog):
    """SWA from the second epoch on, learning rate held at swa_lrs: best.ckpt holds the average; a run stopped in
    the third epoch and resumed ends as the uninterrupted one (the average travels in the checkpoint)."""
    from src.results import load_model
    from src.training.callbacks.time_limit import TimeLimit

    bindings = (
        "training_loop.n_epochs = 3",
        "training_loop.callbacks = ['swa', 'model_summary']",
        "swa.swa_epoch_start = 2",
        "swa.swa_lrs = 0.001",
    )
    reference = tmp_path / "reference"
    with caplog.at_level("INFO"):
        train(reference, *bindings)
    assert list(history(reference)["lr"]) == pytest.approx([0.003, 0.001, 0.001])  # held from the start epoch on
    last = torch.load(reference / layout.LAST_CKPT, weights_only=True)
    weights = "model.0.weight"
    assert not torch.equal(last["state_dict"][weights], last["current_model_state"][weights])  # averaged, not raw
    best = torch.load(reference / layout.BEST_CKPT, weights_only=True)
    assert torch.equal(load_model(reference).state_dict()[weights], best["state_dict"][weights])
    assert "model.0" in caplog.text  # model_summary: the depth-2 layer table at the start (Lightning's log)

    monkeypatch.setattr(TimeLimit, "_time_up", lambda self, trainer: trainer.global_step >= 16)  # in epoch 3
    run = tmp_path / "run"
    interrupted(train, run, *bindings, "training_loop.max_time = {'hours': 1}")
    monkeypatch.undo()
    train(run, *bindings, "training_loop.max_time = {'hours': 1}")
    assert_same_runs(reference, run)
    resumed = torch.load(run / layout.LAST_CKPT, weights_only=True)
    assert all(torch.equal(v, resumed["state_dict"][k]) for k, v in last["state_dict"].items())


def test_lr_monitor_sends_the_learning_rate_to_the_trackers(train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(
        run,
        "training_loop.n_epochs = 2",
        "training_loop.loggers = ['tensorboard']",
        "training_loop.callbacks = ['lr_monitor']",
        "lr_monitor.logging_interval = 'epoch'",  # 'step' logs every 50 steps (Lightning's log_every_n_steps)
    )
    events = EventAccumulator(str(run / layout.TENSORBOARD))
    events.Reload()
    tags = [t for t in events.Tags()["scalars"] if "lr" in t and t != "lr"]
    assert tags and [e.value for e in events.Scalars(tags[0])][0] == pytest.approx(0.003)
