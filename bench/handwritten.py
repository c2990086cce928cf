#!/usr/bin/env python
"""The floor: a hand-written plain-PyTorch training loop doing the template's work and nothing else.

    python bench/handwritten.py configs/cnn.gin [-b "training_loop.n_epochs=10#..."]

It reads the same gin configs as bin/train.py and trains what the template would (bench/same_run.py): the same
data tensors on the same device, the same batches in the same order (`EpochBatchSampler`'s permutation of (seed,
epoch)), the same per-batch transform and augmentation, model, optimizer and schedule (`supervised.*`), precision
(`training_loop.precision`: 32-true, bf16-mixed, 16-mixed), memory format, compilation and batch limits. Per
epoch: train (loss and accuracy summed on the device, read once), then evaluate the validation split; at the end,
evaluate the test split once. No checkpoints, no logs, no callbacks. Prints one JSON line: per-epoch examples/s
(the training part of the epoch, as history.csv measures it), epoch times and validation accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from same_run import build, now, setting  # noqa: E402


def autocast(device, precision: str):
    import torch

    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision in dtypes:
        return torch.autocast(device.type, dtype=dtypes[precision])
    if precision not in ("32-true", "32"):
        raise ValueError(f"the floor implements 32-true, bf16-mixed and 16-mixed, not {precision!r}")
    return contextlib.nullcontext()


def evaluate(model, data, split: str, limit, device, precision: str) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F

    model.eval()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    count = 0
    with torch.inference_mode():
        for i, (x, y) in enumerate(data._loader(split, shuffle=False)):
            if limit is not None and i >= limit:
                break
            x = data.transform(x.to(device, non_blocking=True), train=False)
            y = y.to(device, non_blocking=True)
            with autocast(device, precision):
                logits = model(x)
            loss += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(-1) == y).sum()
            count += len(y)
    return float(loss) / count, float(correct) / count


def main(configs: list[str], bindings: list[str], on_step=None) -> dict:
    """Train as the template would; `on_step(step)` (a profiler's window) is called after each optimizer step."""
    import torch
    import torch.nn.functional as F

    from src import config
    from src.modules import optim

    config.parse(configs, bindings)
    run = setting()
    parts, device = build(run)
    model, data, module = parts.model.to(device), parts.data, parts.module
    configured = optim.configure(
        model.parameters(),
        module.optimizer_name,
        module.lr,
        module.weight_decay,
        module.momentum,
        module.scheduler_name,
        run.n_epochs,
    )
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    schedule = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    scaler = torch.amp.GradScaler(device.type, enabled=run.precision == "16-mixed")
    loader = data.train_dataloader()
    limit = run.limits["train"]
    out: dict = {"examples_per_s": [], "epoch_time": [], "train_loss": [], "valid_acc": [], "device": str(device)}
    for epoch in range(run.n_epochs):
        start = now(device)
        model.train()
        loader.sampler.set_epoch(epoch)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        n = 0
        for i, (x, y) in enumerate(loader):
            if limit is not None and i >= limit:
                break
            x = data.transform(x.to(device, non_blocking=True), train=True)
            y = y.to(device, non_blocking=True)
            with autocast(device, run.precision):
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=module.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(-1) == y).sum()
            n += len(y)
            if on_step is not None:
                on_step(epoch * len(loader) + i + 1)
        train_end = now(device)
        if schedule is not None:
            schedule.step()
        _, valid_acc = evaluate(model, data, "valid", run.limits["val"], device, run.precision)
        out["examples_per_s"].append(n / (train_end - start))
        out["epoch_time"].append(now(device) - start)
        out["train_loss"].append(float(loss_sum) / n)
        out["valid_acc"].append(valid_acc)
    out["test_loss"], out["test_acc"] = evaluate(model, data, "test", run.limits["test"], device, run.precision)
    return out


if __name__ == "__main__":
    from src import config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", help="gin config files joined with '#'")
    parser.add_argument("-b", "--bindings", default="", help="gin bindings joined with '#'")
    args = parser.parse_args()
    print(json.dumps(main(config.split_joined(args.configs), config.split_joined(args.bindings))))
