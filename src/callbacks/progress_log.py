"""ProgressLog: a plain log line every N steps and at each epoch end, readable in `stdout.txt` and SLURM logs:

step 100/1000 | 7785.4 examples/s | loss 1.3832 | data 2.1 ms, step 7.0 ms | elapsed 00:00:02 | left 00:04:46

Under `training_loop.compile`, time spent compiling (src/training/speed.py) is left out of examples/s, the step time and
the time left, and shown on its own: `... | elapsed 00:01:02 | compile 00:00:58 | left 00:04:46`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from src.callbacks.registry import CALLBACKS
from src.errors import integer
from src.training.callbacks.history import batch_size_of, steps_done
from src.training.speed import compile_seconds

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT


def hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLog(pl.Callback):
    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps
        self._reset()

    def _reset(self) -> None:
        self.data_time = self.step_time = 0.0
        self.n_steps = self.n_examples = 0
        self.window_start = time.perf_counter()
        self.window_compile = compile_seconds()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start, self.start_step = time.perf_counter(), steps_done(trainer)
        self.global_before = trainer.global_step
        self.compile_start = compile_seconds()
        self.batch_end = time.perf_counter()
        self._reset()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batch_end = time.perf_counter()

    # The two per-step hooks only take the time and count; everything else waits for the line to be printed.
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.batch_start = time.perf_counter()
        self.data_time += self.batch_start - self.batch_end

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        self.batch_end = time.perf_counter()
        self.step_time += self.batch_end - self.batch_start
        self.n_steps += 1
        self.n_examples += batch_size_of(batch)
        if trainer.global_step > self.global_before:  # an optimizer stepped: a step is done (once per batch with
            self.global_before = trainer.global_step  # several optimizers, once per accumulation with one)
            step = steps_done(trainer) + 1  # Lightning counts it after this hook
            if step % self.every_n_steps == 0 and trainer.is_global_zero:
                loss = outputs.get("loss") if isinstance(outputs, dict) else outputs  # none under manual optimization
                self._print_step(trainer, step, float(loss) if isinstance(loss, torch.Tensor) else float("nan"))

    def _print_step(self, trainer: pl.Trainer, step: int, loss: float) -> None:
        now = time.perf_counter()
        total = trainer.estimated_stepping_batches
        elapsed = now - self.start
        compiled = compile_seconds()
        compiling = compiled - self.compile_start  # this attempt's, so far
        left = (elapsed - compiling) / max(step - self.start_step, 1) * (total - step)
        window_compile = compiled - self.window_compile  # compiling happens inside steps: left out of both
        rate = self.n_examples * trainer.world_size / max(now - self.window_start - window_compile, 1e-9)
        n = max(self.n_steps, 1)
        step_time = max(self.step_time - window_compile, 0.0)
        print(
            f"step {step}/{total} | {rate:.1f} examples/s | loss {loss:.4f} | "
            f"data {1000 * self.data_time / n:.1f} ms, step {1000 * step_time / n:.1f} ms | "
            f"elapsed {hms(elapsed)}{f' | compile {hms(compiling)}' if compiling else ''} | left {hms(left)}",
            flush=True,
        )
        self._reset()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            metrics = " | ".join(
                f"{k} {float(v):.4f}"
                for k, v in sorted(trainer.callback_metrics.items())
                if getattr(v, "numel", lambda: 1)() == 1
            )
            print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} | {metrics}", flush=True)


@CALLBACKS.register("progress_log")
def progress_log(run_dir: str, every_n_steps: int = 50) -> ProgressLog:
    return ProgressLog(every_n_steps=integer("progress_log.every_n_steps", every_n_steps))
