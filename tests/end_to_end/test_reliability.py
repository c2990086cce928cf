"""Nothing lost, nothing leaked: kills, corrupt checkpoints, locks, config changes, NaNs, secrets, DDP."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from src.errors import RunInUse, UserError
from src.run import checkpoints, layout
from src.run import lock as run_lock
from src.run.status import status_of
from tests.helpers import FAST, ROOT, assert_same_runs, evaluate_by_hand, history, lock_holder

METRICS = ["epoch", "step", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr"]
CRASH_BINDINGS = [*FAST, "training_loop.n_epochs = 5", "cnn.dropout = 0.2"]


def test_sigkill_at_many_points_then_rerun_equals_uninterrupted(tmp_path, train, env):
    reference = tmp_path / "reference"
    train(reference, *CRASH_BINDINGS[len(FAST) :])
    steps_per_epoch = int(history(reference)["step"].iloc[0])
    rng = random.Random(7)  # random moments, reproducible
    points = [
        "step:3",  # inside the first epoch, before any checkpoint
        "save:1:mid",  # half-way through writing a checkpoint
        "write:history.csv:2",  # half-way through writing history.csv
        "save:2:after",  # between best.ckpt and last.ckpt of one epoch
        f"step:{rng.randint(1, steps_per_epoch)}",  # random steps of later epochs
        "save:3:mid",
        "write:meta.json:2",
        f"step:{rng.randint(1, steps_per_epoch)}",
        "save:2:mid",
        "write:eval_results.json:1",  # after training, while writing the test results
        "finish",  # everything written but FINISHED
    ]
    run = tmp_path / "crashed"
    args = [str(run), "configs/cnn.gin", "-b", "#".join(CRASH_BINDINGS)]
    for point in points:
        out = subprocess.run(
            [sys.executable, "tests/kill_at.py", point, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == -signal.SIGKILL, f"{point}: {out.returncode} {out.stderr[-1500:]}"
        assert not (run / layout.FINISHED).exists()
    final = subprocess.run(
        [sys.executable, "bin/train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    pd.testing.assert_frame_equal(history(reference), history(run), check_exact=True)
    assert json.loads((reference / layout.EVAL_RESULTS).read_text()) == json.loads(
        (run / layout.EVAL_RESULTS).read_text()
    )
    assert status_of(run) == "finished" and not list(run.glob(".*.tmp"))
    attempts = json.loads((run / layout.META).read_text())["attempts"]
    assert len(attempts) >= 8  # every attempt that got as far as training is recorded


def test_corrupt_last_checkpoint_falls_back_to_previous(train, tmp_path):
    train(tmp_path / "reference", "training_loop.n_epochs = 3", "cnn.dropout = 0.2")
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 2", "cnn.dropout = 0.2")
    last = run / layout.LAST_CKPT
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    train(run, "training_loop.n_epochs = 3", "cnn.dropout = 0.2")
    assert "warning: last.ckpt is unusable" in (run / layout.STDERR).read_text()
    pd.testing.assert_frame_equal(history(tmp_path / "reference"), history(run), check_exact=True)
    # the damaged file was set aside, not rotated into previous.ckpt: two good checkpoints again
    assert (run / f"{layout.LAST_CKPT}{layout.UNUSABLE_SUFFIX}").is_file()
    assert checkpoints.problem(run / layout.PREVIOUS_CKPT) is None
    assert checkpoints.problem(run / layout.LAST_CKPT) is None


def test_resume_takes_the_newer_of_last_and_preemption_checkpoints(tmp_path):
    def make(name: str, age: float) -> Path:
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (time.time() - age, time.time() - age))
        return tmp_path / name

    previous, last = make(layout.PREVIOUS_CKPT, 300), make(layout.LAST_CKPT, 100)
    preempted = make(layout.PREEMPTED_CKPT, 200)
    assert checkpoints.candidates(tmp_path) == [last, preempted, previous]
    preempted = make(layout.PREEMPTED_CKPT, 50)
    assert checkpoints.candidates(tmp_path) == [preempted, last, previous]


def test_a_stale_preemption_checkpoint_is_not_resumed_and_goes(train, tmp_path):
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 1")
    stale = run / layout.PREEMPTED_CKPT  # as if the run had been preempted before its last epoch ended
    shutil.copy(run / layout.LAST_CKPT, stale)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    (run / layout.FINISHED).unlink()
    train(run, "training_loop.n_epochs = 2")
    assert f"Resuming from {run / layout.LAST_CKPT}" in (run / layout.STDOUT).read_text()
    assert not stale.exists()  # superseded by the new last.ckpt
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1, 2]


@pytest.mark.parametrize(
    ("warned_at", "extra", "stopped", "saved_step"),
    [  # toy digits: 7 batches an epoch; warned_at: (epoch, batch index)
        ((1, 1), (), "saved {run}/preempted.ckpt after step 9;", 9),  # mid-epoch
        ((0, 6), (), "stopped before epoch 2, which resumes from last.ckpt;", 7),  # an epoch's end comes first
        # mid-way through an accumulation window: saved after the window's optimizer step (4 steps an epoch)
        ((1, 2), ("training_loop.accumulate_grad_batches = 2",), "saved {run}/preempted.ckpt after step 6;", 6),
    ],
)
def test_preemption_warning_stops_at_a_batch_end_and_the_resumed_run_is_identical(
    train, tmp_path, monkeypatch, warned_at, extra, stopped, saved_step
):
    """SIGUSR1 (SLURM's warning before preemption): a checkpoint at the end of that batch (or of its epoch), the
    run stops as interrupted (not failed); run again, it continues from there and ends as an uninterrupted run
    does, bit for bit."""
    from src.training.callbacks.preemption import Preemption

    bindings = ("training_loop.n_epochs = 3", "cnn.dropout = 0.2", *extra)
    train(tmp_path / "reference", *bindings)
    run = tmp_path / "run"
    hook = Preemption.on_train_batch_end

    def warn(self, trainer, pl_module, outputs, batch, batch_idx):  # noqa: ANN001, ANN202
        if (trainer.current_epoch, batch_idx) == warned_at:
            os.kill(os.getpid(), signal.SIGUSR1)
        hook(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(Preemption, "on_train_batch_end", warn)
    ctrl_c = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT after an interrupt: pytest's must come back
    try:
        with pytest.raises(KeyboardInterrupt):
            train(run, *bindings)
    finally:
        signal.signal(signal.SIGINT, ctrl_c)
    monkeypatch.undo()
    assert f"preempted: {stopped.format(run=run)}" in (run / layout.STDERR).read_text()
    assert status_of(run) != "failed" and not (run / layout.FINISHED).exists()
    resume_from = run / (layout.PREEMPTED_CKPT if (run / layout.PREEMPTED_CKPT).exists() else layout.LAST_CKPT)
    assert torch.load(resume_from, weights_only=True)["global_step"] == saved_step

    train(run, *bindings)
    assert f"Resuming from {resume_from}" in (run / layout.STDOUT).read_text()
    assert not (run / layout.PREEMPTED_CKPT).exists() and status_of(run) == "finished"
    pd.testing.assert_frame_equal(history(tmp_path / "reference"), history(run), check_exact=True)
    assert json.loads((tmp_path / "reference" / layout.EVAL_RESULTS).read_text()) == json.loads(
        (run / layout.EVAL_RESULTS).read_text()
    )


PEER_STOPPED = """
import sys, types
from src.training.callbacks.preemption import Preemption
environment = types.SimpleNamespace(creates_processes_externally=True)  # started by srun
trainer = types.SimpleNamespace(world_size=2, strategy=types.SimpleNamespace(cluster_environment=environment))
callback = Preemption(sys.argv[1], peer_grace_s=float(sys.argv[2]))
callback.on_train_start(trainer, None)
print("training", flush=True)
try:
    callback.on_exception(trainer, None, RuntimeError("Connection reset by peer"))  # the other process ended
except KeyboardInterrupt as stop:  # as Ctrl-C: the run is not failed, and resumes when started again
    print(f"stopped: {stop}", flush=True)
    sys.exit(130)
print("counts as failed", flush=True)
"""


def test_an_error_from_a_stopped_peer_is_no_failure_when_the_job_is_cancelled(tmp_path, env):
    """scancel's TERM reaches srun's processes one after another: the error that the first one's end causes in the
    others must not fail the run. A SLURM job being cancelled says so at once (its state); elsewhere the process's
    own TERM follows within a moment. An error with neither counts as a failure after the grace."""
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text("#!/bin/sh\necho 'JobId=7 JobName=x JobState=COMPLETING Reason=None'\n")
    scontrol.chmod(0o755)
    cases = {
        "slurm": ({"SLURM_JOB_ID": "7", "PATH": f"{scontrol.parent}:{env['PATH']}"}, "30"),
        "term": ({}, "30"),
        "failed": ({}, "0.2"),
    }
    children = {  # all at once: each spends seconds importing Lightning
        case: subprocess.Popen(
            [sys.executable, "-c", PEER_STOPPED, str(tmp_path), grace],
            stdout=subprocess.PIPE,
            text=True,
            env={**env, **extra},
            cwd=ROOT,
        )  # fmt: skip
        for case, (extra, grace) in cases.items()
    }
    assert children["term"].stdout.readline() == "training\n"
    time.sleep(0.5)
    children["term"].send_signal(signal.SIGTERM)
    out = {case: child.communicate(timeout=60)[0] for case, child in children.items()}
    assert (children["slurm"].returncode, out["slurm"]) == (130, "training\nstopped: SLURM job 7 was cancelled\n")
    assert (children["term"].returncode, out["term"]) == (-signal.SIGTERM, "")  # ended by its TERM: no FAILED
    assert (children["failed"].returncode, out["failed"]) == (0, "training\ncounts as failed\n")


def test_preemption_warning_during_start_up_stops_before_training(train, tmp_path):
    """bin/train.py listens for SIGUSR1 from its start: a warning before fit stops the run at its first epoch
    (nothing to save yet) instead of killing the process with the signal's default action."""
    from src.training import preemption_signal

    run = tmp_path / "run"
    previous = signal.getsignal(preemption_signal.SIGNAL)
    ctrl_c = signal.getsignal(signal.SIGINT)
    try:
        preemption_signal.listen()
        os.kill(os.getpid(), preemption_signal.SIGNAL)  # as if it came while torch was being imported
        with pytest.raises(KeyboardInterrupt):
            train(run, "training_loop.n_epochs = 2")
    finally:
        signal.signal(preemption_signal.SIGNAL, previous)
        signal.signal(signal.SIGINT, ctrl_c)
    assert "preempted: stopped before epoch 1" in (run / layout.STDERR).read_text()
    assert not preemption_signal.warned() and not (run / layout.FAILED).exists()
    train(run, "training_loop.n_epochs = 2")
    assert status_of(run) == "finished"


def test_no_valid_checkpoint_starts_afresh(train, tmp_path):
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 2")
    (run / layout.FINISHED).unlink()
    for name in (layout.LAST_CKPT, layout.PREVIOUS_CKPT):
        (run / name).write_bytes(b"garbage" * 100)
    train(run, "training_loop.n_epochs = 2")
    stderr = (run / layout.STDERR).read_text()
    assert "warning: previous.ckpt is unusable" in stderr and "starting from scratch" in stderr
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1, 2]


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/template-pwned",))


def test_checkpoint_with_pickled_code_is_refused_safely(train, tmp_path):
    from src.results import load_model

    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 1")
    torch.save({"state_dict": {}, "loops": {}, "evil": Payload()}, run / layout.BEST_CKPT)
    with pytest.raises(UserError, match="Cannot load .*best.ckpt safely"):
        load_model(run)
    torch.save({"state_dict": {}, "loops": {}, "evil": Payload()}, run / layout.LAST_CKPT)
    (run / layout.FINISHED).unlink()
    train(run, "training_loop.n_epochs = 2")
    assert "warning: last.ckpt is unusable (Weights only load failed" in (run / layout.STDERR).read_text()
    assert not os.path.exists("/tmp/template-pwned")


def test_a_checkpoint_without_fitting_weights_is_one_line(tmp_path, capsys):
    """A checkpoint that loads safely but holds no state_dict, or weights of another shape: load_model and
    bin/evaluate.py say so in one line naming the checkpoint. The run folder is built by hand: nothing is trained."""
    from src.cli.training import evaluate_main
    from src.results import load_model

    run = tmp_path / "run"
    run.mkdir()
    (run / layout.CONFIG).write_text(
        "training_loop.data = 'digits'\ntraining_loop.model = 'mlp'\ntraining_loop.module = 'supervised'\n"
        "digits.toy = True\n"
    )
    best = run / layout.BEST_CKPT
    torch.save({"epoch": 3}, best)
    with pytest.raises(UserError, match=f"^{best} is not a Lightning checkpoint \\(no state_dict\\)"):
        load_model(run)
    assert evaluate_main([str(run), "--checkpoint", "best"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {best} is not a Lightning checkpoint (no state_dict)."]
    weights = {k: torch.zeros(*v.shape, 2) for k, v in load_model_state(run).items()}
    torch.save({"state_dict": weights}, best)
    with pytest.raises(UserError, match=f"^{best} does not fit the model .*size mismatch") as error:
        load_model(run)
    assert "\n" not in str(error.value)


def load_model_state(run):
    """The state_dict of the model the run's config builds, untrained."""
    from src.recipes.reload import run_parts

    return run_parts(run)[0].module.state_dict()


def test_a_checkpoint_that_could_never_be_resumed_is_refused_when_saved(tmp_path):
    """A numpy number in a callback's state: weights_only loading would refuse every checkpoint, and every resume
    would silently start afresh. The first save says so instead, and writes nothing."""
    import numpy as np

    from src.training.callbacks.checkpoint import RunCheckpointIO

    safe = {"state_dict": {"w": torch.ones(2)}, "epoch": 1, "loops": {"x": [1.0, (2, "a")]}, "size": torch.Size([2])}
    RunCheckpointIO().save_checkpoint(safe, tmp_path / layout.LAST_CKPT)
    assert checkpoints.problem(tmp_path / layout.LAST_CKPT) is None
    unsafe = {**safe, "callbacks": {"MyCallback": {"best": np.float64(0.5)}}}
    with pytest.raises(UserError, match=r"best.ckpt would hold checkpoint\['callbacks'\]\['MyCallback'\]\['best'\]: "
                       r"a numpy.float64, which torch.load\(weights_only=True\) refuses"):  # fmt: skip
        RunCheckpointIO().save_checkpoint(unsafe, tmp_path / layout.BEST_CKPT)
    assert sorted(p.name for p in tmp_path.iterdir()) == [layout.LAST_CKPT]


def test_one_writer_per_run_folder(train, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = lock_holder(run)
    with pytest.raises(RunInUse, match=rf"is in use by pid {holder.pid} on "):
        train(run, "training_loop.n_epochs = 1")
    assert [p.name for p in run.iterdir()] == [run_lock.LOCK]  # the folder in use is left as it was: no FAILED
    holder.send_signal(signal.SIGKILL)  # a dead holder leaves a stale LOCK file that must not block
    holder.wait()
    train(run, "training_loop.n_epochs = 1")
    assert status_of(run) == "finished"


def test_config_guard(train, tmp_path):
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 1")
    with pytest.raises(UserError, match=r"another config \(supervised.lr: 0.003 -> 0.01\)"):
        train(run, "training_loop.n_epochs = 2", "supervised.lr = 0.01")
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1]
    train(run, "training_loop.n_epochs = 2", "supervised.lr = 0.01", "training_loop.allow_config_change = True")
    attempt = json.loads((run / layout.META).read_text())["attempts"][-1]
    assert attempt["config_changes"] == [{"binding": "supervised.lr", "old": "0.003", "new": "0.01"}]
    assert "supervised.lr = 0.01" in (run / layout.CONFIG).read_text()
    # a parameter that a newer version of the code added, at its default, is not a change
    config, stored = run / layout.CONFIG, (run / layout.CONFIG).read_text()
    config.write_text(stored.replace("digits.toy = True\n", ""))  # toy's default is False
    with pytest.raises(UserError, match=r"another config \(digits.toy: '<unset>' -> True\)"):
        train(run, "training_loop.n_epochs = 2", "supervised.lr = 0.01")
    train(run, "training_loop.n_epochs = 2", "supervised.lr = 0.01", "digits.toy = False")  # at its default: no change
    # where in-memory data lives changes nothing that is trained (the batches and their order are the same)
    train(
        run, "training_loop.n_epochs = 2", "supervised.lr = 0.01", "digits.toy = False", "digits.device_resident = True"
    )
    config.write_text(stored)
    # profiling and how often losses are checked change nothing that is trained: no allow_config_change needed
    profiled = ["training_loop.profiler = 'simple'", "simple.extended = False", "finite_loss.check_every_n_steps = 7"]
    train(run, "training_loop.n_epochs = 3", "supervised.lr = 0.01", *profiled)
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1, 2, 3]


def test_a_list_given_for_the_same_tuple_is_no_config_change():
    from src.config.bindings import parse_bindings
    from src.training.config_guard import config_changes

    stored = "training_loop.callbacks = ('progress_log',)\nsupervised.lr = 0.1\n"  # gin writes the default tuple
    stored = parse_bindings(stored)
    assert (
        config_changes(stored, parse_bindings("training_loop.callbacks = ['progress_log']\nsupervised.lr = 0.1\n"))
        == []
    )
    changed = config_changes(
        stored, parse_bindings("training_loop.callbacks = ['progress_log', 'ema']\nsupervised.lr = 0.1\n")
    )
    assert changed == [("training_loop.callbacks", ("progress_log",), ["progress_log", "ema"])]


def test_nan_loss_stops_the_run(train, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(UserError, match=r"Training loss is (nan|inf) at step \d+ \(epoch 2\)"):
        # a fine first epoch, then a learning rate that blows up
        train(
            run,
            "training_loop.n_epochs = 3",
            "supervised.scheduler = 'steps'",
            "supervised.schedule = [(0, 1.0), (1, 1e30)]",
        )
    assert status_of(run) == "failed" and "Training loss is" in (run / layout.FAILED).read_text()
    last = torch.load(run / layout.LAST_CKPT, weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1]


def test_secrets_never_reach_the_run_folder(train, tmp_path, monkeypatch):
    token, key, password = "nep-tok-4b1d9f0e77", "wandb-key-9c2e51aa", "mlflow-pw-31415926"
    monkeypatch.setenv("NEPTUNE_API_TOKEN", token)
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    config = tmp_path / "leaky.gin"
    config.write_text(f"include 'configs/cnn.gin'\n# my token is {token}\ntraining_loop.loggers = ['tensorboard']\n")
    run = tmp_path / "run"
    train(
        run,
        f"training_loop.n_epochs = 1  # {key}",
        "training_loop.loggers = ['tensorboard']",
        f"progress_log.every_n_steps = 1  # {password}",
        configs=(str(config),),
    )
    print(f"printing {password} to stdout")  # outside the run: only the run's files matter
    found = [
        p for p in run.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in (token, key, password))
    ]
    assert found == []
    assert "***" in (run / layout.INPUT_CONFIGS / "leaky.gin").read_text()
    assert (run / "tensorboard").is_dir()


def test_console_copy_of_the_output_is_masked_too(tmp_path, monkeypatch):
    """What a run prints also reaches the console, which SLURM and bin/run_local.py write to log files."""
    import io

    from src.run.tee import tee_output

    secret = "hf-token-8d3c2b1a0f"
    monkeypatch.setenv("HF_TOKEN", secret)
    console = io.StringIO()
    monkeypatch.setattr(sys, "stdout", console)
    with tee_output(tmp_path / "out.txt", tmp_path / "err.txt"):
        print(f"logging in with {secret}")
    assert console.getvalue() == (tmp_path / "out.txt").read_text() == "logging in with ***\n"


def test_run_that_never_starts_leaves_no_folder(train, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Exception, match="bogus"):
        train(run, "training_loop.precision = 'bogus'")
    assert not run.exists()


@pytest.mark.parametrize("n_epochs", [2])
def test_ddp_on_cpu_two_processes(tmp_path, env, n_epochs):
    run = tmp_path / "ddp"
    bindings = [
        *FAST,
        "training_loop.accelerator = 'cpu'",
        "training_loop.devices = 2",
        "training_loop.strategy = 'ddp'",
    ]
    for epochs in (1, n_epochs):  # a first run, then a resume to more epochs
        out = subprocess.run(
            [
                sys.executable,
                "bin/train.py",
                str(run),
                "configs/cnn.gin",
                "-b",
                "#".join([*bindings, f"training_loop.n_epochs = {epochs}"]),
            ],
            cwd=ROOT,
            env={**env, "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
    h = pd.read_csv(run / layout.HISTORY)
    assert list(h["epoch"]) == [1, 2]
    assert list(h["step"]) == [4, 8]  # 200 toy examples, batch 32, split over 2 processes: 4 steps each
    meta = json.loads((run / layout.META).read_text())
    assert len(meta["attempts"]) == 2 and meta["attempts"][1]["start_epoch"] == 1
    assert status_of(run) == "finished" and (run / layout.EVAL_RESULTS).is_file()
    # each process validated half of the 50 examples; the logged metrics are over all 50
    from src import config

    config.parse([str(ROOT / "configs/cnn.gin")], FAST)
    valid = evaluate_by_hand(run, "last", "valid", batch_size=25)
    assert (h["valid_loss"].iloc[-1], h["valid_acc"].iloc[-1]) == pytest.approx(valid, rel=1e-5)


def test_finite_loss_checks_pending_losses_before_any_checkpoint():
    from types import SimpleNamespace

    from src.training.callbacks.finite_loss import FiniteLoss, NonFiniteLoss

    callback = FiniteLoss(check_every_n_steps=100)
    for step, loss in enumerate([0.5, 0.4, float("nan"), float("inf")], start=1):
        trainer = SimpleNamespace(global_step=step, current_epoch=2, world_size=1)
        callback.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, step - 1)  # no host read yet
    for _ in range(2):  # and again at any later save: the diverged weights are never written
        with pytest.raises(NonFiniteLoss, match=r"Training loss is nan at step 3 \(epoch 3\)"):
            callback.on_save_checkpoint(trainer, None, {})  # raising here aborts the save
    healthy = FiniteLoss(check_every_n_steps=100)
    healthy.on_train_batch_end(trainer, None, {"loss": torch.tensor([0.1, 0.2])}, None, 4)
    healthy.on_save_checkpoint(trainer, None, {})  # finite: the save goes on


def test_every_decision_of_a_start_is_made_under_the_runs_lock(train, tmp_path, monkeypatch):
    """A slow start (a big data load) of the same run while another command trains and finishes it with another
    config: the slow one decides what to do only once it holds the run's lock, so it refuses the changed config
    instead of training its own from scratch over the finished run (which it did when it chose "no checkpoint,
    start afresh" before waiting for the data)."""
    from src.data.digits import Digits

    run = tmp_path / "run"
    load = Digits.load

    def slow_load(self):
        monkeypatch.setattr(Digits, "load", load)  # the other start loads normally
        train(run, "training_loop.n_epochs = 1", "supervised.lr = 0.01")  # ...and finishes meanwhile
        return load(self)

    monkeypatch.setattr(Digits, "load", slow_load)
    with pytest.raises(UserError, match=r"was trained with another config \(supervised.lr: 0.01 -> 0.003\)"):
        train(run, "training_loop.n_epochs = 2")
    assert status_of(run) == "finished" and "supervised.lr = 0.01" in (run / layout.CONFIG).read_text()
    assert list(history(run)["epoch"]) == [1]
    train(run, "training_loop.n_epochs = 1", "supervised.lr = 0.01")  # the same config: nothing to do, untouched
    assert len(json.loads((run / layout.META).read_text())["attempts"]) == 1


def test_a_resume_under_another_thread_count_keeps_the_runs_count_and_ends_identical(train, tmp_path, capsys):
    """The local runner gives a job more threads when fewer jobs are left: the resumed attempt computes with the
    count of the run's first attempt (recorded in meta.json), so it ends as the uninterrupted run does."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(tmp_path / "straight", "training_loop.n_epochs = 3")
        train(tmp_path / "resumed", "training_loop.n_epochs = 1")
        torch.set_num_threads(2)
        train(tmp_path / "resumed", "training_loop.n_epochs = 3")
        assert "threads: 1, as the run's first attempt" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
    attempts = json.loads((tmp_path / "resumed" / layout.META).read_text())["attempts"]
    assert [a["threads"]["torch"] for a in attempts] == [1, 1]
    assert_same_runs(tmp_path / "straight", tmp_path / "resumed")
