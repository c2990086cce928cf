#!/usr/bin/env python
"""Data pipeline: time to fetch a batch from the data module's train_dataloader and transform it (the
module's `transform(x, train=True)`, which the template runs in on_after_batch_transfer: normalisation and
augmentation for CIFAR-10) vs the time of the training step it feeds (forward, backward,
Adam), measured directly in one plain loop, for digits and for CIFAR-10-sized data (fake, random images).
Also the "data X ms, step Y ms" of ProgressLog in a real bin/train.py run (epochs 2.., which includes
Lightning's glue between steps in "data").
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import PY, disturbed_note, env, fake_cifar, fmt, guarded, header, repeats, row, timed  # noqa: E402

WORKLOADS = {
    "digits (batch 64)": ["training_loop.data='digits'"],
    "CIFAR-10-sized (batch 128)": ["training_loop.data='cifar10'"],
}
STEPS = 60  # per repetition


def direct(bindings: list[str]) -> tuple[list[float], list[float]]:
    """(ms per fetch, ms per step) of each repetition, the loader re-iterated (next epoch) when exhausted."""
    import gin
    import torch
    import torch.nn.functional as F

    from src import config
    from src.data import DATA
    from src.models import MODELS

    config.parse(["configs/cnn.gin"], bindings)
    torch.manual_seed(0)
    data = DATA.get(gin.query_parameter("training_loop.data"))(seed=0)
    model = MODELS.get("cnn")(input_shape=data.input_shape, n_classes=data.n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=gin.query_parameter("supervised.lr"))
    loader, epoch = data.train_dataloader(), 0
    batches = iter(loader)

    def one_repetition():
        nonlocal batches, epoch
        fetch = step = 0.0
        for _ in range(STEPS):
            start = time.perf_counter()
            try:
                x, y = next(batches)
            except StopIteration:
                epoch += 1
                loader.sampler.set_epoch(epoch)
                batches = iter(loader)
                x, y = next(batches)
            x = data.transform(x, train=True)  # the template applies it after the (here no-op) device transfer
            middle = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            end = time.perf_counter()
            fetch, step = fetch + middle - start, step + end - middle
        return 1000 * fetch / STEPS, 1000 * step / STEPS

    one_repetition()  # warm-up
    results = [guarded(one_repetition) for _ in range(repeats())]
    return [r[0] for r in results], [r[1] for r in results]


def progress_log(bindings: list[str], data_dir: str) -> tuple[list[float], list[float]]:
    """ProgressLog's (data ms, step ms) windows of one bin/train.py run, epochs 2 and later."""
    tmp = tempfile.mkdtemp(prefix="bench_data_")
    try:
        _, done = timed(
            [
                PY,
                "bin/train.py",
                f"{tmp}/run",
                "configs/cnn.gin",
                "-b",
                "#".join(
                    [
                        *bindings,
                        "training_loop.n_epochs=3",
                        "training_loop.limit_train_batches=25",
                        "training_loop.limit_val_batches=2",
                        "training_loop.limit_test_batches=2",
                        "progress_log.every_n_steps=5",
                    ]
                ),
            ],
            env=env(DATA_DIR=data_dir),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    after_epoch_1 = done.stdout.split("epoch 1/", 1)[1]
    found = re.findall(r"data ([\d.]+) ms, step ([\d.]+) ms", after_epoch_1)
    return [float(d) for d, _ in found], [float(s) for _, s in found]


def main() -> None:
    import os

    data_dir = tempfile.mkdtemp(prefix="bench_cifar_")
    os.environ["DATA_DIR"] = data_dir
    try:
        fake_cifar(data_dir)
        header("data set", "measured by", "fetch (data) ms", "step ms", "fetch / step", "target")
        for name, bindings in WORKLOADS.items():
            for label, (fetch, step) in (
                ("direct loop", direct(bindings)),
                ("ProgressLog, bin/train.py", progress_log(bindings, data_dir)),
            ):
                shares = [100 * f / s for f, s in zip(fetch, step, strict=True)]
                row(name, label, fmt(fetch), fmt(step), fmt(shares, "%", 1), "< 5%")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    disturbed_note()


if __name__ == "__main__":
    main()
