"""Which way is better for each metric a run logs: declared by the module, recorded in the run's metrics.json, read
by analysis code (src/results.py) without importing training code.

    metrics.json  {"main": "valid_acc", "directions": {"train_loss": "min", "valid_acc": "max", ...}}

A run folder without a readable metrics.json (damaged, or not the template's) has no directions: its metrics are
shown by their final values only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from src.errors import UserError
from src.run.layout import METRICS as FILE
from src.run.reading import Unreadable, read_json

NOT_METRICS = ("epoch", "step", "lr", "epoch_time", "examples_per_s")  # history.csv columns that are no results


def is_metric(column: str) -> bool:
    """A history.csv column that is a result: not NOT_METRICS, nor the learning rate `lr_<i>` of optimizer i."""
    return column not in NOT_METRICS and not (column.startswith("lr_") and column[3:].isdigit())


STAGES = ("train", "valid", "test")
DIRECTIONS = ("min", "max")


def declared(module: Any, name: str) -> dict[str, Any]:
    """The record of a module's declared metrics (see src/modules/registry.py); a bad declaration is a UserError."""
    metrics = getattr(module, "metric_directions", None) or {"loss": "min"}
    main = getattr(module, "main_metric", None) or next(iter(metrics))
    if not isinstance(metrics, dict) or any(d not in DIRECTIONS for d in metrics.values()):
        raise UserError(f"Module {name!r} declares metric_directions {metrics!r}: use a dict of name -> 'min'|'max'.")
    if main not in metrics:
        raise UserError(f"Module {name!r} declares main_metric {main!r}, not one of its metrics: {', '.join(metrics)}.")
    return {
        "main": f"valid_{main}",
        "directions": {f"{stage}_{m}": d for stage in STAGES for m, d in metrics.items()},
    }


def write(run_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    from src.run.layout import write_atomic

    write_atomic(Path(run_dir) / FILE, json.dumps(record, indent=2) + "\n")


def read(run_dir: str | os.PathLike) -> dict[str, str]:
    """The recorded directions {metric: 'min'|'max'}; {} when absent or unreadable (a damaged file must not stop
    analysis: its metrics are shown by their final values then). A hostile one (no regular file, too large, nested
    too deep) is a UserError naming it: its run is damaged."""
    try:
        record = read_json(Path(run_dir) / FILE)
        directions = record["directions"]
    except Unreadable as e:  # hostile (a FIFO, a device, nested deep): the run is damaged
        raise UserError(str(e)) from e
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(directions, dict):
        return {}
    return {str(k): v for k, v in directions.items() if v in DIRECTIONS}


def main_metric(run_dir: str | os.PathLike) -> str | None:
    try:
        main = read_json(Path(run_dir) / FILE)["main"]
    except Unreadable as e:
        raise UserError(str(e)) from e
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return main if isinstance(main, str) else None


def direction(metric: str, recorded: dict[str, str]) -> str | None:
    """'min', 'max', or None (no recorded direction)."""
    return recorded.get(metric)
