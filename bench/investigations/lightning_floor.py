#!/usr/bin/env python
"""Lightning's own minimum cost per training step, and the best harness / floor ratio it leaves on digits.

In one process, round after round (the VM's drift cancels within a round):
  plain      a trivial model (Linear 8 -> 2, batches of 64 from a list, Adam) trained by a plain loop
  automatic  the same model and batches in a bare pl.Trainer: no callbacks, logger, checkpoints, progress bar,
             model summary or validation, default profiler; Lightning's automatic optimisation
  manual     the same with manual optimisation (`manual_backward`, `optimizer.step()`), Lightning's lightest step
  digits     the floor's digits step: configs/cnn.gin's model, batches and transform, the hand-written loop
Lightning's fixed cost per step = automatic - plain (the model computes next to nothing). Any harness in which
Lightning's Trainer drives each batch pays at least that, so on digits its throughput ratio is at most
digits / (digits + fixed cost), before any callback, logging or cache effect of its own.
"""

from __future__ import annotations

import copy
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import disturbed_note, fmt, guarded, header, repeats, row  # noqa: E402

STEPS, EPOCHS = 100, 5  # per side and round; each side's figure is the median of epochs 2..


def trivial_batches() -> list[tuple]:
    import torch

    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(64, 8, generator=generator), torch.randint(0, 2, (64,), generator=generator))] * STEPS


def plain_epochs(model, batches, transform=lambda x: x) -> float:  # noqa: ANN001
    """Median ms per step over epochs 2.. of the hand-written loop."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    per_step = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        for x, y in batches:
            loss = F.cross_entropy(model(transform(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        per_step.append(1000 * (time.perf_counter() - start) / len(batches))
    return statistics.median(per_step[1:])


def lightning_epochs(model, batches, manual: bool) -> float:  # noqa: ANN001
    """Median ms per step over epochs 2.. of a bare Trainer."""
    import pytorch_lightning as pl
    import torch
    import torch.nn.functional as F

    class Trivial(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.automatic_optimization = model, not manual

        def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            if manual:
                optimizer = self.optimizers()
                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                optimizer.step()
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

        def train_dataloader(self) -> Batches:
            return Batches()  # not the list itself: Lightning reads a list as several loaders

    class Batches:
        def __iter__(self):  # noqa: ANN204
            return iter(batches)

        def __len__(self) -> int:
            return len(batches)

    per_step: list[float] = []

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            per_step.append(1000 * (time.perf_counter() - self.start) / len(batches))

    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        callbacks=[EpochTimer()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(Trivial())
    return statistics.median(per_step[1:])


def digits_floor():  # noqa: ANN201
    """(model, batches, transform) of the floor's digits training (configs/cnn.gin), batches in a fixed order."""
    import torch
    from handwritten import batches

    from src import config
    from src.data import DATA
    from src.models import MODELS

    config.parse(["configs/cnn.gin"], [])
    torch.manual_seed(0)
    data = DATA.get("digits")(seed=0)
    model = MODELS.get("cnn")(input_shape=data.input_shape, n_classes=data.n_classes)
    train = data.splits["train"]
    order = list(batches(len(train.y), data.batch_size, None, torch.Generator().manual_seed(0)))
    return model, [(train.x[i], train.y[i]) for i in order], lambda x: data.transform(x, train=True)


def main() -> None:
    import pytorch_lightning  # noqa: F401  (before the loggers are quietened: it configures its own)
    import torch

    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.manual_seed(0)
    trivial = torch.nn.Linear(8, 2)
    tiny = trivial_batches()
    digits_model, digits_batches, digits_transform = digits_floor()
    sides = {
        "plain": lambda: plain_epochs(copy.deepcopy(trivial), tiny),
        "automatic": lambda: lightning_epochs(copy.deepcopy(trivial), tiny, manual=False),
        "manual": lambda: lightning_epochs(copy.deepcopy(trivial), tiny, manual=True),
        "digits": lambda: plain_epochs(copy.deepcopy(digits_model), digits_batches, digits_transform),
    }
    for fn in sides.values():  # warm-up round, discarded
        fn()
    rounds: list[dict[str, float]] = []
    for _ in range(repeats()):
        rounds.append(guarded(lambda: {name: fn() for name, fn in sides.items()}, label="round"))

    def fixed(r: dict, side: str) -> float:
        return r[side] - r["plain"]

    figures = [
        ("trivial model, plain loop", lambda r: r["plain"], 3),
        ("trivial model, bare Trainer, automatic optimisation", lambda r: r["automatic"], 3),
        ("trivial model, bare Trainer, manual optimisation", lambda r: r["manual"], 3),
        ("**Lightning's fixed cost per step** (automatic − plain)", lambda r: fixed(r, "automatic"), 3),
        ("same, manual optimisation (manual − plain)", lambda r: fixed(r, "manual"), 3),
        ("digits: the floor's step (cnn.gin, hand-written loop)", lambda r: r["digits"], 3),
        ("5 % of the digits floor step (all a 0.95 ratio allows)", lambda r: 0.05 * r["digits"], 3),
        (
            "**best digits ratio a Trainer-driven harness can reach**: digits / (digits + fixed cost)",
            lambda r: r["digits"] / (r["digits"] + fixed(r, "automatic")),
            2,
        ),
        ("same with manual optimisation", lambda r: r["digits"] / (r["digits"] + fixed(r, "manual")), 2),
    ]
    header("figure (ms per step unless said; per round of one process)", "median (min–max)")
    for label, fn, digits in figures:
        row(label, fmt([fn(r) for r in rounds], digits=digits))
    disturbed_note()


if __name__ == "__main__":
    main()
