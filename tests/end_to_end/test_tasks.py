"""The shipped tasks beyond classification (regression on diabetes, an autoencoder on digits), end to end: train,
resume exactly, evaluate, reload; the checkpoint monitor follows the module; directions recorded and used."""

import json

import pandas as pd
import pytest
import torch

from src.errors import UserError
from src.run import layout
from tests.helpers import history

TASKS = {
    # config, bindings, the main metric, its direction
    "regression": ("configs/regression.gin", ["diabetes.batch_size = 64"], "valid_mse", "min"),
    "autoencoder": ("configs/autoencoder.gin", ["autoencoder.hidden = 32"], "valid_mse", "min"),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_task_trains_resumes_exactly_evaluates_and_reloads(task, train, tmp_path):
    from src.recipes.evaluate import evaluate
    from src.results import load_data, load_model, load_runs

    config, bindings, main, direction = TASKS[task]
    train(tmp_path / "straight", *bindings, "training_loop.n_epochs = 3", configs=(config,))
    train(tmp_path / "resumed", *bindings, "training_loop.n_epochs = 2", configs=(config,))
    metrics = train(tmp_path / "resumed", *bindings, "training_loop.n_epochs = 3", configs=(config,))

    straight, resumed = (history(tmp_path / r) for r in ("straight", "resumed"))
    pd.testing.assert_frame_equal(straight, resumed, check_exact=True)
    assert {"train_loss", "valid_mse", "valid_mae"} <= set(resumed.columns) and "valid_acc" not in resumed
    run = tmp_path / "resumed"
    eval_results = json.loads((run / layout.EVAL_RESULTS).read_text())
    assert eval_results == json.loads((tmp_path / "straight" / layout.EVAL_RESULTS).read_text())
    assert metrics["test_mse"] == eval_results["test_mse"]

    record = json.loads((run / layout.METRICS).read_text())
    assert record["main"] == main and record["directions"][main] == direction
    best = torch.load(run / layout.BEST_CKPT, weights_only=True)
    assert best["epoch"] + 1 == int(resumed.loc[resumed[main].idxmin(), "epoch"])  # best.ckpt: the lowest valid_mse

    row = load_runs(run).iloc[0]
    assert (
        row["best_valid_mse"] == resumed["valid_mse"].min() and row["final_valid_mse"] == resumed["valid_mse"].iloc[-1]
    )
    assert row["best_train_mae"] == resumed["train_mae"].min()

    evaluated, _ = evaluate(run, "best")
    assert evaluated["test_mse"] == pytest.approx(eval_results["test_mse"], rel=1e-6)
    model, data = load_model(run), load_data(run)
    with torch.no_grad():
        errors = [
            (model(x) - (x if task == "autoencoder" else y)).square().flatten(1).mean(1)
            for x, y in data.batches("test")
        ]
    assert torch.cat(errors).mean().item() == pytest.approx(eval_results["test_mse"], rel=1e-5)


def test_autoencoder_never_uses_the_labels(train, tmp_path):
    """Shuffled labels change nothing: reconstruction reads the inputs only."""
    config, bindings, _, _ = TASKS["autoencoder"]
    train(tmp_path / "a", *bindings, "training_loop.n_epochs = 1", configs=(config,))
    from src.data.digits import Digits

    original = Digits.load

    def scrambled(self):
        splits = original(self)
        for split in splits.values():
            split.y = split.y[torch.randperm(len(split.y), generator=torch.Generator().manual_seed(1))]
        return splits

    Digits.load = scrambled
    try:
        train(tmp_path / "b", *bindings, "training_loop.n_epochs = 1", configs=(config,))
    finally:
        Digits.load = original
    a, b = (history(tmp_path / r) for r in "ab")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_monitor_not_declared_is_an_error_before_training(train, tmp_path):
    with pytest.raises(UserError, match=r"checkpoint.monitor 'valid_acc' is not a metric the module logs; it logs: "):
        train(tmp_path / "run", "checkpoint.monitor = 'valid_acc'", configs=("configs/regression.gin",))
    assert not (tmp_path / "run").exists()


def test_monitor_the_module_does_not_log_is_an_error_after_the_first_validation(train, tmp_path):
    """A monitor with an explicit mode may name an undeclared metric: if it is not logged either, one line."""
    with pytest.raises(UserError, match=r"'valid_f1' is not logged by the module \(it logs: .*valid_acc"):
        train(tmp_path / "run", "checkpoint.monitor = 'valid_f1'", "checkpoint.mode = 'max'")


def test_bce_loss_on_multi_label_targets():
    from src.modules.supervised import SupervisedLearning

    module = SupervisedLearning(model=torch.nn.Identity(), loss="bce")
    logits = torch.tensor([[2.0, -1.0], [-3.0, 0.5]])
    module.step((logits, torch.tensor([[1.0, 0.0], [1.0, 1.0]])), "valid")
    names, sums, count = module._sums["valid"]
    assert names == ("loss", "acc") and count == 2
    assert sums[1].item() == pytest.approx(1.0 + 0.5)  # example 1: both right; example 2: one of two
    assert module.metric_directions == {"loss": "min", "acc": "max"} and module.main_metric == "acc"
