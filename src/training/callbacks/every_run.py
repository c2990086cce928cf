"""The callbacks every run has, built together and in their order, with a typed handle: the training loop reaches
`run.meta` or `run.history` by name, never by searching a list for a type."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytorch_lightning as pl

from src.training.callbacks.checkpoint import RunCheckpoint
from src.training.callbacks.finite_loss import FiniteLoss
from src.training.callbacks.heartbeat import Heartbeat
from src.training.callbacks.history import HistoryWriter
from src.training.callbacks.meta_saver import MetaSaver
from src.training.callbacks.preemption import Preemption
from src.training.callbacks.registry import CALLBACKS
from src.training.callbacks.rng_state import RNGState
from src.training.callbacks.tracker_metrics import TrackerMetrics


@dataclasses.dataclass
class RunCallbacks:
    finite_loss: FiniteLoss  # first: a diverged epoch raises before any other callback records or saves it
    rng_state: RNGState
    history: HistoryWriter
    tracker_metrics: TrackerMetrics  # after history: trackers receive its rows
    meta: MetaSaver
    heartbeat: Heartbeat
    checkpoint: RunCheckpoint
    preemption: Preemption  # last: its save at a batch's end sees what the other callbacks did with that batch

    def in_order(self) -> list[pl.Callback]:
        return [getattr(self, field.name) for field in dataclasses.fields(self)]


# field -> registered name (its options are gin bindings under that name: `meta_saver` has none, `heartbeat.interval`)
REGISTERED = {field.name: field.name for field in dataclasses.fields(RunCallbacks)} | {"meta": "meta_saver"}
NAMES = tuple(REGISTERED.values())


def build(run_dir: str, metrics: dict[str, Any]) -> RunCallbacks:
    """Every run's callbacks for the run folder `run_dir` and the module's declared `metrics`."""
    run = RunCallbacks(
        **{field: CALLBACKS.build(name, run_dir=run_dir, metrics=metrics) for field, name in REGISTERED.items()}
    )
    run.tracker_metrics.history = run.history
    return run
