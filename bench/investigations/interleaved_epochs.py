#!/usr/bin/env python
"""Harness overhead measured epoch by epoch in one process, immune to the VM's drift: after each training epoch
of bin/train.py's training (or of Lightning alone, bench/bare_lightning.py), a bench-only callback trains a copy
of the model for one epoch with the hand-written loop (bench/handwritten.py's batches, transform, Adam). Each
Lightning epoch is paired with the floor epoch that ran right after it; per run: median over epochs 2.. of
floor ms per step / Lightning ms per step. configs/cnn.gin on digits (30 epochs) and on a CIFAR-10-sized fake
(8 epochs of 20 batches of 128, 5 validation batches); fresh processes, alternating.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import PY, alternate_many, disturbed_note, env, fake_cifar, fmt, header, repeats, row, timed  # noqa: E402

WORKLOADS = {
    "digits": ["training_loop.n_epochs=30"],
    "CIFAR-10-sized": [
        "training_loop.data='cifar10'",
        "training_loop.n_epochs=8",
        "training_loop.limit_train_batches=20",
        "training_loop.limit_val_batches=5",
        "training_loop.limit_test_batches=5",
    ],
}


def floor_callback(pairs: list[tuple[float, float]]):  # noqa: ANN201
    import pytorch_lightning as pl
    import torch
    import torch.nn.functional as F
    from handwritten import batches

    class InterleavedFloor(pl.Callback):
        def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
            self.data = trainer.datamodule
            self.model = copy.deepcopy(pl_module.model)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=pl_module.lr)

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.start, self.steps = time.perf_counter(), 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            self.steps += 1

        def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not trainer.sanity_checking:
                self.lightning_step = (time.perf_counter() - self.start) / self.steps

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            data, model, optimizer = self.data, self.model, self.optimizer
            train = data.splits["train"]
            generator = torch.Generator().manual_seed(trainer.current_epoch)
            with torch.enable_grad():
                model.train()
                start, steps = time.perf_counter(), 0
                limit = trainer.num_training_batches
                for index in batches(len(train.y), data.batch_size, limit, generator):
                    x, y = data.transform(train.x[index], train=True), train.y[index]
                    loss = F.cross_entropy(model(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    steps += 1
            if trainer.current_epoch >= 1:
                pairs.append((1000 * self.lightning_step, 1000 * (time.perf_counter() - start) / steps))

    return InterleavedFloor()


def one(kind: str, workload: str = "digits") -> dict[str, float]:
    """Runs in a child process: kind is 'harness' (training_loop, as bin/train.py) or 'lightning' (alone)."""
    pairs: list[tuple[float, float]] = []
    configs, bindings = ["configs/cnn.gin"], list(WORKLOADS[workload])
    if kind == "harness":
        import contextlib
        import io

        import gin

        from src import config
        from src.callbacks.registry import CALLBACKS
        from src.training_loop import training_loop

        CALLBACKS.register("interleaved_floor")(lambda run_dir: floor_callback(pairs))
        config.parse(configs, bindings)
        callbacks = [*gin.query_parameter("training_loop.callbacks"), "interleaved_floor"]
        bindings.append(f"training_loop.callbacks={callbacks!r}")
        config.parse(configs, bindings)
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            training_loop(f"{tmp}/run", config_files=configs, bindings=bindings)
    else:
        from bare_lightning import main

        main(configs, bindings, extra_callbacks=[floor_callback(pairs)])
    return {
        "ratio": statistics.median(floor / light for light, floor in pairs),
        "lightning_ms": statistics.median(light for light, _ in pairs),
        "floor_ms": statistics.median(floor for _, floor in pairs),
    }


def run(kind: str, workload: str, run_env: dict) -> dict[str, float]:
    _, done = timed([PY, "bench/investigations/interleaved_epochs.py", "--one", kind, workload], env=run_env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    data_dir = tempfile.mkdtemp(prefix="bench_cifar_")
    try:
        fake_cifar(data_dir)
        run_env = env(DATA_DIR=data_dir)
        header(
            "cnn.gin, epoch pairs",
            "ms per step (Lightning side)",
            "ms per step (floor epochs)",
            "floor / Lightning side = throughput ratio",
        )
        for workload in WORKLOADS:
            runs = alternate_many(
                {
                    "harness": functools.partial(run, "harness", workload, run_env),
                    "Lightning alone": functools.partial(run, "lightning", workload, run_env),
                },
                repeats(),
            )
            for name, results in runs.items():
                row(
                    f"{workload}: {name}",
                    fmt([r["lightning_ms"] for r in results]),
                    fmt([r["floor_ms"] for r in results]),
                    fmt([r["ratio"] for r in results]) + (", target >= 0.95" if name == "harness" else ""),
                )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    disturbed_note()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(*sys.argv[2:4])))
    else:
        main()
