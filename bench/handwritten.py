#!/usr/bin/env python
"""The floor: a hand-written plain-PyTorch training loop doing the template's work and nothing else.

    python bench/handwritten.py configs/cnn.gin [-b "training_loop.n_epochs=10#..."]

It reads the same gin configs as bin/train.py and builds the same model (`src.models.MODELS`) and the same data
tensors (the registered data module's splits and per-batch transform) with the same seed, batch size, epochs,
optimizer (from `supervised.*`), batch limits and torch threads; the batches come in the same order
(`EpochBatchSampler`'s permutation of (seed, epoch)). Per epoch: train (loss and accuracy accumulated like
Lightning's epoch means), then evaluate the validation split; at the end, evaluate the test split once.
No checkpoints, no logs, no callbacks. Prints one JSON line: per-epoch examples/s (training part of the epoch,
as history.csv measures it), epoch times and validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gin  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from src import config  # noqa: E402


def param(name: str, default):
    try:
        return gin.query_parameter(name)
    except ValueError:
        return default


def batches(n: int, batch_size: int, limit: int | None, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    starts = range(0, n, batch_size)
    for start in list(starts)[:limit]:
        yield order[start : start + batch_size]


@torch.no_grad()
def evaluate(model, split, transform, batch_size: int, limit: int | None) -> tuple[float, float]:
    model.eval()
    loss = correct = count = 0.0
    for index in batches(len(split.y), batch_size, limit, None):
        x, y = transform(split.x[index], train=False), split.y[index]
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        count += len(y)
    return loss / count, correct / count


def main(configs: list[str], bindings: list[str]) -> dict:
    from src.data import DATA
    from src.models import MODELS

    config.parse(configs, bindings)
    seed, n_epochs = param("training_loop.seed", 0), param("training_loop.n_epochs", 10)
    limit_train, limit_val, limit_test = (
        param(f"training_loop.limit_{s}_batches", None) for s in ("train", "val", "test")
    )
    if param("training_loop.num_threads", None):
        torch.set_num_threads(param("training_loop.num_threads", None))
    torch.manual_seed(seed)  # what pl.seed_everything does for torch
    data = DATA.get(param("training_loop.data", "digits"))(seed=seed)
    model = MODELS.get(param("training_loop.model", "cnn"))(input_shape=data.input_shape, n_classes=data.n_classes)
    assert param("supervised.optimizer", "adam") == "adam", "the floor implements Adam only"
    optimizer = torch.optim.Adam(
        model.parameters(), lr=param("supervised.lr", 1e-3), weight_decay=param("supervised.weight_decay", 0.0)
    )
    train, bs = data.splits["train"], data.batch_size
    out = {
        "examples_per_s": [],
        "epoch_time": [],
        "train_loss": [],
        "valid_acc": [],
        "threads": torch.get_num_threads(),
    }
    for epoch in range(n_epochs):
        start = time.perf_counter()
        model.train()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        loss_sum, correct, n = torch.zeros(()), torch.zeros(()), 0
        for index in batches(len(train.y), bs, limit_train, generator):
            x, y = data.transform(train.x[index], train=True), train.y[index]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(-1) == y).sum()
            n += len(y)
        train_end = time.perf_counter()
        _, valid_acc = evaluate(model, data.splits["valid"], data.transform, bs, limit_val)
        out["examples_per_s"].append(n / (train_end - start))
        out["epoch_time"].append(time.perf_counter() - start)
        out["train_loss"].append(float(loss_sum) / n)
        out["valid_acc"].append(valid_acc)
    out["test_loss"], out["test_acc"] = evaluate(model, data.splits["test"], data.transform, bs, limit_test)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", help="gin config files joined with '#'")
    parser.add_argument("-b", "--bindings", default="", help="gin bindings joined with '#'")
    args = parser.parse_args()
    print(json.dumps(main(config.split_joined(args.configs), config.split_joined(args.bindings))))
