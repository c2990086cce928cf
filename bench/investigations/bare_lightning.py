#!/usr/bin/env python
"""Lightning alone: what any Lightning-based template costs before it adds anything.

    python bench/investigations/bare_lightning.py configs/cnn.gin [-b "training_loop.n_epochs=10#..."]

The same module (`supervised`), model and data module as bin/train.py, built from the same gin configs, trained by
a `pl.Trainer` with no callbacks, loggers, checkpoints, progress bar or model summary; validation every epoch,
test at the end. Prints one JSON line: per-epoch training examples/s, measured as history.csv measures it (from
the epoch's start to the start of its validation).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py

from handwritten import param  # noqa: E402

from src import config  # noqa: E402


def main(configs: list[str], bindings: list[str], extra_callbacks: list | None = None) -> dict:
    import pytorch_lightning as pl
    import torch

    from src.data import DATA
    from src.models import MODELS
    from src.modules import MODULES

    config.parse(configs, bindings)
    if param("training_loop.num_threads", None):
        torch.set_num_threads(param("training_loop.num_threads", None))
    seed = param("training_loop.seed", 0)
    pl.seed_everything(seed, verbose=False)
    data = DATA.get(param("training_loop.data", "digits"))(seed=seed)
    model = MODELS.get(param("training_loop.model", "cnn"))(input_shape=data.input_shape, n_classes=data.n_classes)
    module = MODULES.get(param("training_loop.module", "supervised"))(model=model)
    rates: list[float] = []

    class Throughput(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.start, self.n = time.perf_counter(), 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            self.n += len(batch[1])

        def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not trainer.sanity_checking:
                rates.append(self.n / (time.perf_counter() - self.start))

    trainer = pl.Trainer(
        max_epochs=param("training_loop.n_epochs", 10),
        callbacks=[Throughput(), *(extra_callbacks or [])],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        limit_train_batches=param("training_loop.limit_train_batches", None),
        limit_val_batches=param("training_loop.limit_val_batches", None),
        limit_test_batches=param("training_loop.limit_test_batches", None),
        num_sanity_val_steps=param("training_loop.num_sanity_val_steps", 2),
    )
    trainer.fit(module, datamodule=data)
    tested = trainer.test(module, datamodule=data, verbose=False)[0]
    return {"examples_per_s": rates, "test_acc": tested["test_acc"]}


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", help="gin config files joined with '#'")
    parser.add_argument("-b", "--bindings", default="", help="gin bindings joined with '#'")
    args = parser.parse_args()
    print(json.dumps(main(config.split_joined(args.configs), config.split_joined(args.bindings))))
