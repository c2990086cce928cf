"""A bad callback option is a one-line UserError naming it when the callback is built, before the run folder exists:
not an error after an epoch, a crashed thread, a busy loop, or a silently different training. Two weight averages
(ema and swa) in one run are refused the same way."""

import pytest

from src import config
from src.errors import UserError, one_line

METRICS = {"main": "valid_acc", "directions": {"valid_loss": "min", "valid_acc": "max"}}


def build(name, tmp_path, *bindings):
    from src.callbacks import CALLBACKS

    config.parse([], list(bindings))
    return CALLBACKS.build(name, run_dir=str(tmp_path), metrics=METRICS)


@pytest.mark.parametrize(
    "name, bindings, message",
    [
        ("heartbeat", ["heartbeat.interval = 0"], "heartbeat.interval must be a positive number, got 0."),
        ("heartbeat", ["heartbeat.interval = 'x'"], "heartbeat.interval must be a number, got 'x'."),  # by annotation
        ("progress_log", ["progress_log.every_n_steps = 0"], "progress_log.every_n_steps must be a positive integer"),
        ("finite_loss", ["finite_loss.check_every_n_steps = 0"], "finite_loss.check_every_n_steps must be a positive"),
        ("ema", ["ema.update_every_n_steps = 0"], "ema.update_every_n_steps must be a positive integer, got 0."),
        ("ema", ["ema.start_step = -1"], "ema.start_step must be an integer >= 0, got -1."),
        ("ema", ["ema.decay = 'x'"], "ema.decay must be a number, got 'x'."),
        ("ema", ["ema.decay = 1.5"], "ema.decay must be a number between 0 and 1 (exclusive), got 1.5."),
        ("swa", ["swa.swa_lrs = 'x'"], "swa.swa_lrs must be a number or None, got 'x'."),
        ("swa", ["swa.swa_lrs = -0.1"], "swa.swa_lrs must be a positive learning rate (a number) or None, got -0.1."),
        ("early_stopping", ["early_stopping.min_delta = 'x'"], "early_stopping.min_delta must be a number, got 'x'."),
        ("early_stopping", ["early_stopping.min_delta = -1"], "early_stopping.min_delta must be a number >= 0"),
        ("model_summary", ["model_summary.max_depth = -5"], "model_summary.max_depth must be an integer >= -1, got -5"),
        (
            "early_stopping",
            ["early_stopping.monitor = 'nosuch'", "early_stopping.mode = 'min'"],
            "early_stopping.monitor 'nosuch' is not a metric the module logs; it logs: valid_loss, valid_acc.",
        ),
        (
            "early_stopping",
            ["early_stopping.monitor = 'valid_aac'"],
            "early_stopping.monitor 'valid_aac' is not a metric the module logs; it logs: valid_loss, valid_acc. Did you mean 'valid_acc'?",
        ),
    ],
)
def test_a_bad_option_is_one_line_naming_it_when_the_callback_is_built(tmp_path, name, bindings, message):
    with pytest.raises(UserError) as error:
        build(name, tmp_path, *bindings)
    assert message in one_line(error.value)  # as src/cli/ prints it (without gin's "In call to" context)


def test_good_options_still_build(tmp_path):
    assert build("heartbeat", tmp_path, "heartbeat.interval = 0.5").interval == 0.5
    assert build("model_summary", tmp_path, "model_summary.max_depth = -1")._max_depth == -1  # every level
    assert build("swa", tmp_path, "swa.swa_lrs = 0.01").swa_lrs == 0.01
    built = build("early_stopping", tmp_path, "early_stopping.monitor = 'valid_loss'", "early_stopping.mode = 'max'")
    assert (built.monitor, built.mode) == ("valid_loss", "max")  # a declared metric in the other direction: allowed


def test_ema_and_swa_in_one_run_are_refused_when_built_naming_both(tmp_path):
    bindings = ["training_loop.callbacks = ['progress_log', 'ema', 'swa']"]
    for name in ("ema", "swa"):
        with pytest.raises(UserError, match=r"^training_loop.callbacks has both 'ema' and 'swa': .*keep one\."):
            build(name, tmp_path, *bindings)
    assert build("progress_log", tmp_path, *bindings) is not None
    assert build("ema", tmp_path, "training_loop.callbacks = ['ema', 'ema']") is not None  # one average, named twice


def test_two_averages_given_without_gin_are_refused_before_the_first_step(tmp_path):
    import pytorch_lightning as pl
    from pytorch_lightning.demos.boring_classes import BoringModel

    from src.callbacks.weight_averaging import RunEMA, RunSWA

    class Counting(BoringModel):
        steps = 0

        def training_step(self, batch, batch_idx):
            Counting.steps += 1
            return super().training_step(batch, batch_idx)

    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        callbacks=[RunEMA(), RunSWA(swa_epoch_start=0)],
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(UserError, match=r"Two weight averages in one run \(RunEMA and RunSWA\)"):
        trainer.fit(Counting())
    assert Counting.steps == 0


def test_a_misspelt_monitor_suggests_the_metric_meant(tmp_path):
    """A swap of two letters ('valid_mea') suggests the metric meant ('valid_mae'), not the closest by difflib's
    ratio ('valid_mse')."""
    from src.callbacks import CALLBACKS

    metrics = {"main": "valid_mse", "directions": {"valid_loss": "min", "valid_mse": "min", "valid_mae": "min"}}
    config.parse([], ["early_stopping.monitor = 'valid_mea'"])
    with pytest.raises(UserError) as error:
        CALLBACKS.build("early_stopping", run_dir=str(tmp_path), metrics=metrics)
    assert one_line(error.value).endswith("it logs: valid_loss, valid_mse, valid_mae. Did you mean 'valid_mae'?")
