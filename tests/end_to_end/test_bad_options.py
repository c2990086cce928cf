"""A bad callback option is a one-line UserError naming it when the callback is built, before the run folder exists:
not an error after an epoch, a crashed thread, a busy loop, or a silently different training. Two weight averages
(ema and swa) in one run are refused the same way."""

import pytest

from src import config
from src.errors import UserError

METRICS = {"main": "valid_acc", "directions": {"valid_loss": "min", "valid_acc": "max"}}


def build(name, tmp_path, *bindings):
    from src.callbacks import CALLBACKS

    config.parse([], list(bindings))
    return CALLBACKS.build(name, run_dir=str(tmp_path), metrics=METRICS)


def test_a_bad_option_leaves_no_run_folder(train, tmp_path):
    with pytest.raises(UserError, match="both 'ema' and 'swa'"):
        train(tmp_path / "run", "training_loop.callbacks = ['progress_log', 'ema', 'swa']")
    assert not (tmp_path / "run").exists()
