"""The shipped configs train as their comments promise: configs/cnn.gin's accuracy, configs/cnn_full.gin on a
generated CIFAR-10."""

import json

import pytest

from src.data.download import download
from src.run import layout
from tests.helpers import ROOT, make_cifar_archive


@pytest.mark.slow
def test_resnet_trains_on_generated_cifar10(tmp_path, served, train):
    """configs/cnn_full.gin end to end on a tiny archive: uint8 batches are normalised and augmented in training."""
    import pandas as pd

    www, base = served
    archive, md5 = make_cifar_archive(www, n_per_batch=20)
    download("cifar10", tmp_path / "data", url=f"{base}/{archive.name}", md5=md5, quiet=True)
    run = tmp_path / "run"
    metrics = train(
        run,
        f"cifar10.root = '{tmp_path / 'data'}'",
        "cifar10.n_valid = 20",
        "cifar10.batch_size = 16",
        "resnet.width = 4",
        "resnet.blocks = [1, 1, 1]",
        "training_loop.n_epochs = 2",
        configs=("configs/cnn_full.gin",),
    )
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2] and list(history["step"]) == [5, 10]  # 80 training images, batch 16
    assert 0 <= metrics["test_acc"] <= 1 and list(history["lr"]) == [0.1, 0.1]


@pytest.mark.slow
def test_cnn_config_reaches_95_percent_on_digits(tmp_path):
    from src import config
    from src.training_loop import training_loop

    config.parse([str(ROOT / "configs/cnn.gin")], ["training_loop.loggers = []"])
    metrics = training_loop(str(tmp_path / "cnn"))
    assert metrics["test_acc"] >= 0.95
    assert json.loads((tmp_path / "cnn" / layout.EVAL_RESULTS).read_text())["test_acc"] >= 0.95
