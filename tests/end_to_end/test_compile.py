"""Speed switches (src/training/speed.py): a compiled run's checkpoints hold plain parameter names, load eagerly, resume
exactly, and compilation may be switched on or off when a run continues; bad settings fail before training.

Compiling costs ~30-90 s per run on 2 loaded CPU cores (inductor's on-disk cache makes repeats cheaper): the compiled
trainings here are few and short, with batches of 25 that divide the toy splits (200 / 50 / 50), so that no partial
batch forces a recompilation for another shape.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from src.errors import UserError
from src.run import layout
from tests.helpers import ROOT, evaluate_by_hand

COMPILED = ("digits.batch_size = 25", "training_loop.compile = True")
EAGER = ("digits.batch_size = 25", "training_loop.compile = False")
METRICS = ["epoch", "step", "train_loss", "train_acc", "valid_loss", "valid_acc"]


def test_compiled_run_loads_eagerly_and_resumes_exactly(train, tmp_path, env):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    metrics = train(straight, *COMPILED, "training_loop.n_epochs = 2", "progress_log.every_n_steps = 4")

    state = torch.load(straight / layout.BEST_CKPT, weights_only=True)["state_dict"]
    assert state and not any("_orig_mod" in k for k in state)
    stored = json.loads((straight / layout.EVAL_RESULTS).read_text())
    assert stored["test_acc"] == pytest.approx(metrics["test_acc"])
    _, by_hand = evaluate_by_hand(straight, "best", "test", batch_size=25)  # load_model: eager
    assert by_hand == pytest.approx(stored["test_acc"], abs=1e-6)
    meta = json.loads((straight / layout.META).read_text())
    assert 0 < meta["compile_time_s"] == meta["attempts"][0]["compile_s"] < meta["execution_time_s"]
    assert " | compile 00:" in (straight / layout.STDOUT).read_text()

    out = subprocess.run(
        [sys.executable, "bin/evaluate.py", str(straight)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"test_acc {stored['test_acc']:.4f}" in out.stdout

    # Inductor's CPU kernels are deterministic for a fixed graph and thread count: the resumed run is bitwise equal.
    train(stopped, *COMPILED, "training_loop.n_epochs = 1")
    train(stopped, *COMPILED, "training_loop.n_epochs = 2")
    pd.testing.assert_frame_equal(
        pd.read_csv(straight / layout.HISTORY)[METRICS],
        pd.read_csv(stopped / layout.HISTORY)[METRICS],
        check_exact=True,
    )
    assert json.loads((stopped / layout.EVAL_RESULTS).read_text()) == stored


def test_resume_switches_compilation_on_and_off(train, tmp_path):
    run = tmp_path / "run"
    train(run, *EAGER, "training_loop.n_epochs = 1")
    train(run, *COMPILED, "training_loop.n_epochs = 2")  # eager -> compiled: no config-change refusal
    train(run, *EAGER, "training_loop.n_epochs = 3")  # compiled -> eager
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1, 2, 3]
    attempts = json.loads((run / layout.META).read_text())["attempts"]
    assert [a["start_epoch"] for a in attempts] == [0, 1, 2]
    assert [a.get("compile") for a in attempts] == [None, "default", None]
    # compile_s: only where something was compiled (here maybe nothing: dynamo reuses what an earlier test compiled)
    assert not any("compile_s" in a for a in (attempts[0], attempts[2]))
    assert not any("config_changes" in a for a in attempts)


def test_other_switches_train_and_leave_torch_as_found(train, tmp_path):
    from src.results import load_model

    before = torch.get_float32_matmul_precision()
    other = "medium" if before != "medium" else "high"
    run = tmp_path / "run"
    bindings = ("training_loop.channels_last = True", "training_loop.cudnn_benchmark = False")
    train(run, *bindings, f"training_loop.matmul_precision = {other!r}", "training_loop.n_epochs = 1")
    assert torch.get_float32_matmul_precision() == before
    assert "config_changes" not in json.loads((run / layout.META).read_text())["attempts"][0]
    assert load_model(run)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    # channels_last and cudnn.benchmark may change on resume, the arithmetic precision may not
    train(run, "training_loop.n_epochs = 2", f"training_loop.matmul_precision = {other!r}")
    with pytest.raises(UserError, match="training_loop.matmul_precision"):
        train(run, "training_loop.n_epochs = 3")


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        ("training_loop.compile = 'fastest'", r"Unknown torch.compile mode 'fastest'.*'max-autotune'"),
        ("training_loop.compile = 3", "must be True, False or a torch.compile mode"),
        ("training_loop.matmul_precision = 'tf32'", r"Unknown training_loop.matmul_precision 'tf32'.*'high'"),
        ("training_loop.cudnn_benchmark = 'yes'", "must be True, False or None"),
    ],
)
def test_bad_switches_fail_before_the_run_folder_exists(train, tmp_path, binding, message):
    with pytest.raises(UserError, match=message):
        train(tmp_path / "run", binding)
    assert not (tmp_path / "run").exists()


def test_compile_without_a_compiler_is_one_line_before_training(train, tmp_path, monkeypatch):
    from torch._inductor import config

    if torch.cuda.is_available():
        pytest.skip("checks the CPU's C++ compiler")
    monkeypatch.setattr(config.cpp, "cxx", (None, "no-such-cxx"))
    with pytest.raises(UserError, match="needs a C\\+\\+ compiler \\(no-such-cxx on the PATH\\).*compile = False"):
        train(tmp_path / "run", "training_loop.compile = 'max-autotune'")
    assert not (tmp_path / "run").exists()


def test_cudnn_benchmark_is_lightnings_benchmark_flag():
    from src.training.speed import benchmark_flag

    assert benchmark_flag(True, {"precision": "bf16-mixed"}) == {"precision": "bf16-mixed", "benchmark": True}
    assert benchmark_flag(None, {"benchmark": False}) == {"benchmark": False}
    with pytest.raises(UserError, match="disagree"):
        benchmark_flag(True, {"benchmark": False})
