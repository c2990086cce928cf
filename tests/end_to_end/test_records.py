"""What a run records is what happened: a module's per-step logs reach the trackers per step and stay out of
history.csv's epoch rows; a module with several optimizers (manual optimization) counts one step per batch in the
log line and history.csv, and records every optimizer's learning rate."""

import pytest
import torch

from src.modules import MODULES
from src.modules.supervised import SupervisedLearning
from tests.helpers import history


class PerStepLogging(SupervisedLearning):
    def training_step(self, batch, batch_idx):
        self.log("batch_index", float(batch_idx), on_step=True, on_epoch=False)  # per step only
        return super().training_step(batch, batch_idx)


class TwoOptimizers(SupervisedLearning):
    """A GAN's shape: two optimizers stepping in every batch (here on two halves of one model's parameters)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        first, second = self.optimizers()
        loss = self.step(batch, "train")
        for optimizer in (first, second):
            optimizer.zero_grad()
        self.manual_backward(loss)
        first.step()
        second.step()
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self.log_epoch("train")
        return loss

    def configure_optimizers(self):
        params = list(self.parameters())
        return torch.optim.Adam(params[: len(params) // 2], lr=0.003), torch.optim.SGD(
            params[len(params) // 2 :], lr=0.01
        )


for name, module in (("test_per_step_logging", PerStepLogging), ("test_two_optimizers", TwoOptimizers)):
    if name not in MODULES:
        MODULES.register(name, denylist=("model",))(module)


def test_per_step_logs_reach_the_trackers_per_step_and_stay_out_of_history(train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(run, "training_loop.module = 'test_per_step_logging'", "training_loop.loggers = ['tensorboard']",
          "training_loop.log_every_n_steps = 1", "training_loop.n_epochs = 2")  # fmt: skip
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("batch_index")]
    steps_per_epoch = int(history(run)["step"].iloc[0])
    assert logged == [(s, float(s % steps_per_epoch)) for s in range(2 * steps_per_epoch)]  # every step, as sent
    assert "batch_index" not in history(run).columns  # its last value is no epoch's value


def test_several_optimizers_count_one_step_per_batch_and_record_every_learning_rate(train, tmp_path, capsys):
    run = tmp_path / "run"
    train(run, "training_loop.module = 'test_two_optimizers'", "progress_log.every_n_steps = 7",
          "training_loop.n_epochs = 2")  # fmt: skip
    rows = history(run)
    assert list(rows["step"]) == [7, 14]  # 200 toy examples, batch 32: 7 batches an epoch (not 14 optimizer steps)
    assert list(rows["lr"]) == pytest.approx([0.003] * 2) and list(rows["lr_1"]) == pytest.approx([0.01] * 2)
    out = capsys.readouterr().out
    assert "step 7/14 |" in out and "step 14/14 |" in out and "left 00:00:00" in out


def test_lightning_habits_work(train, tmp_path, capsys):
    """`Module.load_from_checkpoint(path, model=...)` as Lightning users do (one line if the model is missing);
    `--print_config` (LightningCLI's spelling) and `%gin.REQUIRED` are one line each, naming what to do."""
    from src.cli.training import train_main
    from src.errors import UserError
    from src.models import MODELS
    from src.results import load_model

    run = tmp_path / "run"
    train(run, "training_loop.n_epochs = 1")
    net = MODELS.build("cnn", input_shape=(1, 8, 8), n_outputs=10)  # cnn.width = 8: the run's (FAST) bindings
    loaded = SupervisedLearning.load_from_checkpoint(run / "best.ckpt", model=net, weights_only=True)
    expected = load_model(run).state_dict()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
    with pytest.raises(UserError, match=r"needs the model: pass model=\.\.\., or use load_model\(run_folder\)"):
        SupervisedLearning.load_from_checkpoint(run / "best.ckpt", weights_only=True)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        train_main([str(tmp_path / "x"), "configs/cnn.gin", "--print_config"])
    assert exited.value.code == 2
    assert "unrecognized argument --print_config. Did you mean '--print-config'?" in capsys.readouterr().err
    assert train_main([str(tmp_path / "x"), "configs/cnn.gin", "-b", "cnn.width = %gin.REQUIRED"]) == 2
    assert "error: cnn.width is %gin.REQUIRED in the config: give it a value" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
