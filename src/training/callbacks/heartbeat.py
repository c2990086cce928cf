"""Heartbeat: touches `HEARTBEAT` every `interval` seconds from a background thread while the run is alive.

The file holds the interval, so readers (src/run/status.py) can tell a live run from a dead one.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytorch_lightning as pl

from src.errors import number
from src.run import layout
from src.training.callbacks.registry import CALLBACKS


class Heartbeat(pl.Callback):
    def __init__(self, run_dir: str | Path, interval: float = 30.0) -> None:
        self.path = Path(run_dir) / layout.HEARTBEAT
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        layout.touch(self.path, f"{self.interval}\n")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and self._thread is None:
            self.beat()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


@CALLBACKS.register("heartbeat")
def heartbeat(run_dir: str, interval: float = 30.0) -> Heartbeat:
    """interval: seconds between touches of HEARTBEAT (readers call a run dead after a few missed ones)."""
    return Heartbeat(run_dir, interval=number("heartbeat.interval", interval))
