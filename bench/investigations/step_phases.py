#!/usr/bin/env python
"""Where the harness's extra time per step goes, timed directly (no profiler distortion): forward, backward,
the rest of the step (loss, metric logging, optimizer, Lightning's closure and hooks) and the time between steps
(batch fetch, transform, loop), for bin/train.py's training (a bench-only callback plus forward hooks on the
model, added in the child process; src/ is untouched) vs the hand-written loop, digits, configs/cnn.gin,
20 epochs, alternating fresh processes. Per run: medians over the steps of epochs 2..; then median (min-max).
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import PY, alternate, disturbed_note, fmt, header, repeats, row, timed  # noqa: E402

BINDINGS = ["training_loop.n_epochs=20"]
PHASES = {
    "forward (model)": "fw",
    "backward": "bw",
    "rest of the step: loss, metric logging, optimizer step, Lightning closure and hooks": "rest",
    "between steps: batch fetch + transform, loop, callbacks' batch-start hooks": "between",
    "total per step": "total",
}


def harness() -> dict[str, list[float]]:
    import pytorch_lightning as pl

    from src import config
    from src.callbacks.registry import CALLBACKS
    from src.training_loop import training_loop

    t: dict = {"fw": [], "bw": [], "step": [], "between": []}
    now = time.perf_counter

    class Phases(pl.Callback):
        def on_fit_start(self, trainer, pl_module):
            pl_module.model.register_forward_pre_hook(lambda *_: t.__setitem__("f0", now()))
            pl_module.model.register_forward_hook(
                lambda module, *_: t["fw"].append(now() - t["f0"]) if module.training else None
            )

        def on_train_epoch_start(self, trainer, pl_module):
            t["end"] = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            t["s0"] = now()
            if t["end"] is not None:
                t["between"].append(t["s0"] - t["end"])

        def on_before_backward(self, trainer, pl_module, loss):
            t["b0"] = now()

        def on_after_backward(self, trainer, pl_module):
            t["bw"].append(now() - t["b0"])

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            t["end"] = now()
            t["step"].append(t["end"] - t["s0"])

    CALLBACKS.register("bench_phases")(lambda run_dir: Phases())
    config.parse(["configs/cnn.gin"], [*BINDINGS, "training_loop.callbacks=['progress_log', 'bench_phases']"])
    tmp = tempfile.mkdtemp(prefix="bench_phases_")
    try:
        training_loop(f"{tmp}/run")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t


def floor() -> dict[str, list[float]]:
    """The hand-written loop of bench/handwritten.py, with timers."""
    import torch
    import torch.nn.functional as F

    from bench.handwritten import batches, param
    from src import config
    from src.data import DATA
    from src.models import MODELS

    config.parse(["configs/cnn.gin"], BINDINGS)
    torch.manual_seed(0)
    data = DATA.get("digits")(seed=0)
    model = MODELS.get("cnn")(input_shape=data.input_shape, n_classes=data.n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=param("supervised.lr", 1e-3))
    train, now = data.splits["train"], time.perf_counter
    t: dict = {"fw": [], "bw": [], "step": [], "between": []}
    for epoch in range(param("training_loop.n_epochs", 10)):
        generator, end = torch.Generator().manual_seed(epoch), now()
        loss_sum, correct = torch.zeros(()), torch.zeros(())
        for index in batches(len(train.y), data.batch_size, None, generator):
            x, y = data.transform(train.x[index], train=True), train.y[index]
            s0 = now()
            t["between"].append(s0 - end)
            logits = model(x)
            t["fw"].append(now() - s0)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            b0 = now()
            loss.backward()
            t["bw"].append(now() - b0)
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(-1) == y).sum()
            end = now()
            t["step"].append(end - s0)
    return t


def summary(t: dict[str, list[float]]) -> dict[str, float]:
    """ms medians over the steps after the first epoch's."""
    skip = len(t["step"]) // 20

    def ms(key: str) -> float:
        return 1000 * statistics.median(t[key][skip:])

    out = {key: ms(key) for key in ("fw", "bw", "step", "between")}
    out["rest"] = out["step"] - out["fw"] - out["bw"]
    out["total"] = out["step"] + out["between"]
    return out


def one(kind: str) -> dict[str, float]:
    _, done = timed([PY, "bench/investigations/step_phases.py", "--one", kind])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    a, b = alternate(lambda: one("harness"), lambda: one("floor"), repeats(), labels=("harness", "floor"))
    header("digits, batch 64: ms per training step", "harness (bin/train.py)", "floor (hand-written)", "difference")
    for name, key in PHASES.items():
        diffs = [x[key] - y[key] for x, y in zip(a, b, strict=True)]
        row(name, fmt([x[key] for x in a]), fmt([y[key] for y in b]), f"{statistics.median(diffs):+.2f} ms")
    disturbed_note()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(summary(harness() if sys.argv[2] == "harness" else floor())))
    else:
        main()
