#!/usr/bin/env python
"""Lightning alone: what any Lightning-based template costs before it adds anything.

    python bench/lightning_alone.py configs/cnn.gin [-b "training_loop.n_epochs=10#..."]

The template's own module, model and data module, built from the same gin configs as bin/train.py with the same
device, data placement, precision, memory format and compilation (bench/same_run.py), trained by a bare
`pl.Trainer`: no callbacks, loggers, checkpoints, progress bar or model summary; validation every epoch, test at the
end. Prints one JSON line: per-epoch training examples/s, measured as history.csv measures it (from the epoch's
start to the start of its validation).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from same_run import build, now, setting  # noqa: E402


def main(configs: list[str], bindings: list[str], extra_callbacks: list | None = None) -> dict:
    import pytorch_lightning as pl

    from src import config

    config.parse(configs, bindings)
    run = setting()
    parts, device = build(run)
    rates: list[float] = []

    class Throughput(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.start, self.n = now(device), 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            self.n += len(batch[1])

        def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not trainer.sanity_checking:
                rates.append(self.n / (now(device) - self.start))

    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=run.n_epochs,
        precision=run.precision,
        callbacks=[Throughput(), *(extra_callbacks or [])],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        limit_train_batches=run.limits["train"],
        limit_val_batches=run.limits["val"],
        limit_test_batches=run.limits["test"],
        num_sanity_val_steps=0,
    )
    trainer.fit(parts.module, datamodule=parts.data)
    tested = trainer.test(parts.module, datamodule=parts.data, verbose=False)[0]
    return {"examples_per_s": rates, "test_loss": tested["test_loss"], "device": str(device)}


if __name__ == "__main__":
    from src import config

    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", help="gin config files joined with '#'")
    parser.add_argument("-b", "--bindings", default="", help="gin bindings joined with '#'")
    args = parser.parse_args()
    print(json.dumps(main(config.split_joined(args.configs), config.split_joined(args.bindings))))
