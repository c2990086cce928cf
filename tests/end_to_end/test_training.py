"""Real (short) trainings on toy digits through training_loop, in this process."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from src.errors import UserError
from src.run import layout
from src.run.status import status_of
from tests.helpers import evaluate_by_hand, history

METRICS = ["epoch", "step", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr"]


def test_training_learns_and_fills_the_run_folder(train, tmp_path):
    run = tmp_path / "run"
    metrics = train(run, "training_loop.n_epochs = 4")
    history = pd.read_csv(run / layout.HISTORY)
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert history["valid_acc"].iloc[-1] > history["valid_acc"].iloc[0]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert metrics["test_acc"] > 0.5
    for name in (
        layout.CONFIG,
        layout.BINDINGS,
        layout.META,
        layout.STDOUT,
        layout.STDERR,
        layout.LAST_CKPT,
        layout.BEST_CKPT,
        layout.EVAL_RESULTS,
        layout.HEARTBEAT,
        layout.FINISHED,
    ):
        assert (run / name).exists(), name
    assert (run / layout.INPUT_CONFIGS / "cnn.gin").read_text() == open("configs/cnn.gin").read()
    assert "training_loop.n_epochs = 4" in (run / layout.BINDINGS).read_text().splitlines()
    assert "training_loop.n_epochs = 4" in (run / layout.CONFIG).read_text()
    meta = json.loads((run / layout.META).read_text())
    assert {"command", "argv", "hostname", "git_commit", "git_dirty", "versions", "attempts"} <= set(meta)
    assert meta["attempts"][0]["end"] and meta["execution_time_s"] > 0
    stdout = (run / layout.STDOUT).read_text()
    assert "epoch 4/4" in stdout
    assert "dropout=0.0, n_blocks=2, width=8" in stdout  # the config table printed at start
    assert json.loads((run / layout.EVAL_RESULTS).read_text())["test_acc"] == pytest.approx(metrics["test_acc"])
    assert status_of(run) == "finished"


def test_resume_equals_uninterrupted_run(train, tmp_path):
    train(tmp_path / "straight", "training_loop.n_epochs = 4", "cnn.dropout = 0.3")
    train(tmp_path / "resumed", "training_loop.n_epochs = 2", "cnn.dropout = 0.3")
    stopped = pd.read_csv(tmp_path / "resumed" / layout.HISTORY)
    assert list(stopped["epoch"]) == [1, 2]
    train(tmp_path / "resumed", "training_loop.n_epochs = 4", "cnn.dropout = 0.3")

    straight = pd.read_csv(tmp_path / "straight" / layout.HISTORY)
    resumed = pd.read_csv(tmp_path / "resumed" / layout.HISTORY)
    assert list(straight.columns) == list(resumed.columns)
    timing = ["epoch_time", "examples_per_s"]  # the only columns that differ (README: "What happens when ...")
    assert set(METRICS) < set(straight.columns) and set(timing) < set(straight.columns)
    pd.testing.assert_frame_equal(straight.drop(columns=timing), resumed.drop(columns=timing), check_exact=True)
    eval_a = json.loads((tmp_path / "straight" / layout.EVAL_RESULTS).read_text())
    eval_b = json.loads((tmp_path / "resumed" / layout.EVAL_RESULTS).read_text())
    assert eval_a == eval_b
    meta = json.loads((tmp_path / "resumed" / layout.META).read_text())
    assert [a["start_epoch"] for a in meta["attempts"]] == [0, 2]
    assert meta["attempts"][1]["resumed_from"].endswith(layout.LAST_CKPT)
    assert "Resuming from" in (tmp_path / "resumed" / layout.STDOUT).read_text()


def test_history_dropped_past_the_checkpoint(train, tmp_path):
    """Rows written after the checkpoint we resume from (a crash between the two) are not duplicated."""
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 2")
    history = (run / layout.HISTORY).read_text()
    (run / layout.HISTORY).write_text(history + history.splitlines()[-1].replace("2,", "3,", 1) + "\n")
    (run / layout.FINISHED).unlink()
    train(run, "training_loop.n_epochs = 3")
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1, 2, 3]


def test_last_checkpoint_is_written_every_epoch(train, tmp_path):
    run = tmp_path / "run"
    # with a monitor that never improves after the first epoch, best.ckpt stays at epoch 1 ...
    train(run, "training_loop.n_epochs = 4", "checkpoint.monitor = 'epoch'", "checkpoint.mode = 'min'")
    assert torch.load(run / layout.BEST_CKPT, weights_only=True)["epoch"] == 0  # 0-based
    # ... while last.ckpt (and the one before it) follow every epoch
    assert torch.load(run / layout.LAST_CKPT, weights_only=True)["epoch"] == 3
    assert torch.load(run / layout.PREVIOUS_CKPT, weights_only=True)["epoch"] == 2


def test_resume_false_refuses_existing_checkpoint(train, tmp_path):
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 1")
    before = (run / layout.LAST_CKPT).read_bytes()
    with pytest.raises(UserError, match="already holds a checkpoint"):
        train(run, "training_loop.n_epochs = 2", "training_loop.resume = False")
    assert (run / layout.LAST_CKPT).read_bytes() == before


def test_finished_run_is_not_retrained(train, tmp_path, capsys):
    run = tmp_path / "run"
    first = train(run, "training_loop.n_epochs = 1")
    mtime = (run / layout.LAST_CKPT).stat().st_mtime_ns
    again = train(run, "training_loop.n_epochs = 1")
    assert "nothing to do" in capsys.readouterr().out
    assert (run / layout.LAST_CKPT).stat().st_mtime_ns == mtime
    assert again["test_acc"] == pytest.approx(first["test_acc"])


def test_results_api_on_trained_runs(train, tmp_path):
    from src.recipes.evaluate import evaluate
    from src.results import load_C, load_data, load_H, load_HC, load_model, load_runs

    run = tmp_path / "exp" / "a"
    train(run, "training_loop.n_epochs = 2", "supervised.lr = 0.01")
    train(tmp_path / "exp" / "b", "training_loop.n_epochs = 1", "supervised.lr = 0.001")

    metrics, path = evaluate(run, "last")
    assert path.name == "eval_results_last.json" and 0 <= metrics["test_acc"] <= 1

    history, config = load_HC(run)
    assert config["supervised.lr"] == 0.01 and config["training_loop.model"] == "cnn"
    assert list(history["epoch"]) == [1, 2]
    assert {"eval_test_acc", "eval_last_test_acc"} <= set(history.columns)
    assert load_H(run)["eval_last_test_acc"].iloc[0] == pytest.approx(metrics["test_acc"])
    assert load_C(run) == config

    runs = load_runs(tmp_path / "exp")
    assert sorted(runs["supervised.lr"]) == [0.001, 0.01]
    assert set(runs["status"]) == {"finished"}
    assert sorted(runs["epochs"]) == [1, 2]
    assert {"best_valid_acc", "final_valid_loss", "eval_test_acc"} <= set(runs.columns)
    assert len(load_runs(str(tmp_path / "exp" / "*"))) == 2
    row = runs.set_index("supervised.lr").loc[0.01]
    assert (
        row["best_valid_acc"] == history["valid_acc"].max()
        and row["final_train_loss"] == history["train_loss"].iloc[-1]
    )
    assert row["best_valid_loss"] == history["valid_loss"].min() and row["epochs"] == 2

    # load_model rebuilds from config.gin alone; its predictions equal the trained module's (best.ckpt).
    module = load_model(run)
    assert not module.training
    x, _ = next(load_data(run).batches("test"))
    state = torch.load(run / layout.BEST_CKPT, weights_only=True)["state_dict"]
    reference = load_model(run)
    reference.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(module(x), reference(x))
        # with the data module's transform, the reloaded model reproduces the test accuracy reported after training
        test = [(module(x).argmax(-1) == y) for x, y in load_data(run).batches("test")]
    accuracy = torch.cat(test).float().mean().item()
    assert accuracy == pytest.approx(json.loads((run / layout.EVAL_RESULTS).read_text())["test_acc"], abs=1e-6)


def test_device_resident_data_trains_the_same(train, tmp_path):
    train(tmp_path / "a", "training_loop.n_epochs = 2")
    train(tmp_path / "b", "training_loop.n_epochs = 2", "digits.device_resident = True")
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a" / layout.HISTORY)[METRICS], pd.read_csv(tmp_path / "b" / layout.HISTORY)[METRICS]
    )


def test_the_lr_column_is_the_learning_rate_each_epoch_trained_with(train, tmp_path):
    """A torch schedule steps at each epoch's end, before the epoch's row is written: the row still shows the lr the
    epoch trained with (it used to show the next epoch's). The step schedule multiplies the configured lr."""
    train(tmp_path / "steps", "supervised.scheduler = 'steps'", "supervised.schedule = [(0, 1.0), (2, 0.1)]",
          "supervised.lr = 0.01")  # fmt: skip
    assert list(history(tmp_path / "steps")["lr"]) == pytest.approx([0.01, 0.01, 0.001])
    train(tmp_path / "cosine", "supervised.scheduler = 'cosine'", "supervised.lr = 0.003")
    assert list(history(tmp_path / "cosine")["lr"]) == pytest.approx([0.003, 0.00225, 0.00075])  # T_max = 3 epochs


def test_logged_epoch_metrics_are_means_over_examples(train, tmp_path):
    """valid/test loss and accuracy in history.csv and eval_results.json equal a by-hand evaluation of the saved
    weights, weighting each example once (batch size 23 leaves a short last batch); train accuracy counts examples."""
    from src.data import DATA

    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 2", "digits.batch_size = 23")
    data = DATA.get("digits")(seed=0)
    assert len(data.splits["valid"].y) % 23 != 0 and len(data.splits["test"].y) % 23 != 0
    last = pd.read_csv(run / layout.HISTORY).iloc[-1]
    assert (last["valid_loss"], last["valid_acc"]) == pytest.approx(
        evaluate_by_hand(run, "last", "valid", 23), rel=1e-5
    )
    tested = json.loads((run / layout.EVAL_RESULTS).read_text())
    assert (tested["test_loss"], tested["test_acc"]) == pytest.approx(
        evaluate_by_hand(run, "best", "test", 23), rel=1e-5
    )
    n_train = len(data.splits["train"].y)  # train accuracy is correct / examples, not a mean of batch means
    assert n_train % 23 != 0 and last["train_acc"] * n_train == pytest.approx(round(last["train_acc"] * n_train))


def test_profiler_report_lands_in_the_run_folder(train, tmp_path):
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 1", "training_loop.profiler = 'simple'", "simple.extended = False")
    report = (run / layout.PROFILE_DIR / "fit-profile.txt").read_text()
    assert "run_training_batch" in report and "[LightningModule]SupervisedLearning.optimizer_step" in report
    assert "simple.extended = False" in (run / layout.CONFIG).read_text()


def test_partial_epoch_sums_travel_with_a_mid_epoch_checkpoint(tmp_path):
    """A SLURM preemption saves mid-epoch: the epoch's running metric sums go into the checkpoint file (loaded back
    with weights_only=True, as resume does) and the resumed epoch's means count every example once."""
    from src.models import MODELS
    from src.modules import MODULES

    def module():
        return MODULES.build("supervised", model=MODELS.get("mlp")(input_shape=(1, 8, 8), n_outputs=10))

    before, generator = module(), torch.Generator().manual_seed(0)
    for n in (5, 3):  # two ragged batches
        batch = (torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator))
        before.step(batch, "train")
    saved: dict = {}
    before.on_save_checkpoint(saved)
    torch.save(saved, tmp_path / "mid_epoch.ckpt")
    after = module()
    after.on_load_checkpoint(torch.load(tmp_path / "mid_epoch.ckpt", weights_only=True))
    (names, sums, count), (restored_names, restored, restored_count) = before._sums["train"], after._sums["train"]
    assert names == restored_names == ("loss", "acc") and count == restored_count == 8
    assert torch.equal(sums, restored) and restored is not sums
    assert 0 <= sums[1] <= 8 and sums[1] == sums[1].round()  # correct predictions, counted


def test_bindings_the_run_never_uses_are_warned_and_recorded(train, tmp_path, capsys):
    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 1", "mlp.hidden = [8]", "diabetes.batch_size = 3")
    err = capsys.readouterr().err
    assert "warning: mlp.hidden is not used: this run never calls 'mlp'" in err
    assert "warning: diabetes.batch_size is not used" in err and "cnn.width" not in err
    meta = json.loads((run / layout.META).read_text())
    assert meta["attempts"][-1]["unused_bindings"] == ["diabetes.batch_size", "mlp.hidden"]


@pytest.mark.slow
def test_dry_run_prints_the_operative_config_and_writes_nothing(tmp_path, capsys):
    from src import config
    from src.training_loop import training_loop

    config.parse(["configs/cnn.gin"], ["cnn.width = 4", "supervised.loss = 'bce'"])
    assert training_loop(str(tmp_path / "run"), dry_run=True) == {}
    out = capsys.readouterr().out
    assert "cnn.width = 4\n" in out and "supervised.loss = 'bce'\n" in out
    assert "digits.toy = False\n" in out and "heartbeat.interval = 30.0\n" in out  # defaults of what the run calls
    assert not (tmp_path / "run").exists()


def test_an_unused_binding_of_a_called_configurable_is_not_said_never_called(capsys):
    import gin

    from src.config.operative import OperativeConfig
    from src.training_loop import warn_unused

    @gin.configurable("test_called_with_its_own_x")
    def called(x=1, y=2):
        return x + y

    gin.parse_config(
        "test_called_with_its_own_x.x = 5\ntest_called_with_its_own_x.y = 3\ntrain/test_called_with_its_own_x.y = 4"
    )
    try:
        called(x=7)  # the caller's x wins over the binding
        assert warn_unused(OperativeConfig.now()) == [
            "test_called_with_its_own_x.x",
            "train/test_called_with_its_own_x.y",
        ]
    finally:
        gin.clear_config()
    assert capsys.readouterr().err == (
        "warning: test_called_with_its_own_x.x is not used: the code that calls 'test_called_with_its_own_x' passes "
        "this parameter itself\n"
        "warning: train/test_called_with_its_own_x.y is not used: this run calls 'test_called_with_its_own_x', but "
        "never in scope 'train'\n"
    )


@pytest.mark.parametrize("value", ["True", "2"])
def test_fast_dev_run_is_a_smoke_test_that_leaves_no_run_folder(train, tmp_path, capsys, value):
    run = tmp_path / "run"
    metrics = train(run, f"training_loop.fast_dev_run = {value}")
    assert "test_acc" in metrics  # it did train and test
    out = capsys.readouterr().out
    scratch = re.search(r"fast_dev_run: a smoke test in (\S+) \(removed after it\); nothing is saved to ", out)
    assert scratch and not Path(scratch[1]).exists()
    assert not run.exists() and list(tmp_path.iterdir()) == []
