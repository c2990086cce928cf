"""Results analysis over run folders: no training code imported (load_model, load_data import it when called).

C = load_C(run)            # {"supervised.lr": 0.003, "training_loop.model": "cnn", ...}
H = load_H(run)            # history.csv as a DataFrame, plus eval_* columns from eval_results*.json
df = load_runs("results/tune_lr/**")   # one row per run: status, config, best_/final_/at_best_ of every metric
module = load_model(run)   # the trained LightningModule, eval mode
data = load_data(run)      # its data module: data.batches("test") as the model saw them
"""

from __future__ import annotations

import csv
import glob
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from src.config.bindings import parse_bindings
from src.errors import UserError
from src.run import layout, metric_directions, reading
from src.run.metric_directions import is_metric
from src.run.status import status_of

if TYPE_CHECKING:
    import pytorch_lightning as pl

PathLike = str | os.PathLike


def _require_run(run_dir: PathLike) -> Path:
    run_dir = Path(run_dir)
    if not layout.is_run_dir(run_dir):
        raise UserError(f"{str(run_dir)!r} is not a run folder (no {layout.CONFIG} inside).")
    return run_dir


def load_C(run_dir: PathLike) -> dict:
    """The run's operative gin bindings: {"scope/configurable.param": value}, macros resolved."""
    path = _require_run(run_dir) / layout.CONFIG
    try:
        return parse_bindings(reading.read_text(path))
    except Exception as e:  # gin's parser raises SyntaxError, ValueError and tokenize errors; bytes: decode errors
        raise UserError(
            f"{path} is damaged (not valid gin): {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e


def load_eval(run_dir: PathLike) -> dict:
    """eval_results.json -> eval_<metric>; eval_results_<name>.json -> eval_<name>_<metric>."""
    found = {}
    for path in sorted(Path(run_dir).glob("eval_results*.json")):
        prefix = "eval_" + path.stem[len("eval_results_") :] + "_" if path.stem != "eval_results" else "eval_"
        try:
            values = reading.read_json(path)
        except (OSError, ValueError) as e:  # JSON or decode errors
            raise UserError(f"{path} is damaged: {e}") from e
        if not isinstance(values, dict):
            raise UserError(f"{path} is damaged: not a JSON object")
        found.update({prefix + k: v for k, v in values.items() if k != "checkpoint"})
    return found


def load_H(run_dir: PathLike) -> pd.DataFrame:
    """history.csv (one row per epoch) with every eval_* result as a constant column."""
    run_dir = _require_run(run_dir)
    path = run_dir / layout.HISTORY
    try:
        history = pd.read_csv(io.StringIO(reading.read_text(path)))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        history = pd.DataFrame({"epoch": pd.Series(dtype=int)})
    except (ValueError, pd.errors.ParserError) as e:
        raise UserError(f"{path} is damaged: {str(e).splitlines()[0]}") from e
    for key, value in load_eval(run_dir).items():
        history[key] = value
    return history


def load_HC(run_dir: PathLike) -> tuple[pd.DataFrame, dict]:
    return load_H(run_dir), load_C(run_dir)


def find_runs(paths_or_glob: PathLike | Iterable[PathLike]) -> list[Path]:
    """Run folders named by, or found (recursively) under, the given paths and glob patterns."""
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, os.PathLike)) else list(paths_or_glob)
    found: list[Path] = []
    for item in items:
        matches = sorted(glob.glob(str(item), recursive=True))
        if not matches and not glob.has_magic(str(item)):
            raise UserError(f"{str(item)!r} does not exist.")
        for match in matches:
            for root, dirs, _ in os.walk(match):
                if layout.is_run_dir(root):
                    found.append(Path(root))
                    dirs.clear()  # runs do not nest
                else:
                    dirs.sort()
    return list(dict.fromkeys(found))


def higher_is_better(metric: str, run_dir: PathLike | None = None) -> bool:
    """From the direction the run recorded (metrics.json), else accuracies up, losses down. `best_x`, `final_x`
    and `eval_x` (`eval_test_acc`) go the way `x` does."""
    recorded = metric_directions.read(run_dir) if run_dir is not None else {}
    for prefix in ("best_", "final_", "eval_"):
        metric = metric.removeprefix(prefix)
    return metric_directions.direction(metric, recorded) != "min"


def summarize(run_dir: PathLike, monitor: str | None = None, mode: str | None = None) -> dict:
    """epochs, best_<metric> (the best epoch's value, in the metric's direction, when it has one) and final_<metric>
    of every metric column of history.csv; at_best_epoch, the epoch best.ckpt holds (the best of `monitor`, by default
    the main metric recorded in metrics.json, in `mode`, by default its direction), and at_best_<metric>, every
    metric at that epoch: what the selected checkpoint scored (a multi-term loss's terms at the checkpoint, not each
    term's best of any epoch); the eval_* results. Read with the csv module: ten times faster than a DataFrame per
    run, for thousands of runs. A damaged file is a UserError naming it."""
    run_dir = Path(run_dir)
    path = run_dir / layout.HISTORY
    try:
        text = io.StringIO(reading.read_text(path), newline="")
        lines = [line for line in csv.reader(text) if line]  # blank lines skipped, as csv.DictReader does
    except FileNotFoundError:
        lines = []
    except (OSError, ValueError, csv.Error) as e:  # bytes that are no text, NUL characters
        raise UserError(f"{path} is damaged: {e}") from e
    header, rows = (lines[0], lines[1:]) if lines else ([], [])
    width = len(header)
    padded = [row if len(row) == width else (row + [""] * width)[:width] for row in rows]
    columns = dict(zip(header, zip(*padded, strict=True), strict=False)) if rows else {}  # name -> texts
    try:
        summary: dict = {"epochs": int(columns["epoch"][-1]) if rows and "epoch" in columns else 0}
        recorded = metric_directions.read(run_dir)
        monitor = monitor or metric_directions.main_metric(run_dir)
        selected = best_row(
            columns.get(monitor or "", ()), mode or metric_directions.direction(monitor or "", recorded)
        )
        if selected is not None and "epoch" in columns:
            summary["at_best_epoch"] = int(columns["epoch"][selected])
        for name, texts in columns.items():
            if is_metric(name):
                summary.update(metric_summary(name, texts, metric_directions.direction(name, recorded), selected))
    except ValueError as e:
        raise UserError(f"{path} is damaged: {e}") from e
    return {**summary, **load_eval(run_dir)}


def metric_summary(name: str, texts: Sequence[str], direction: str | None, selected: int | None) -> dict[str, float]:
    """best_<name> (with a direction), final_<name>, at_best_<name> (the value at row `selected`), of the finite
    values."""
    values = [v for text in texts if text and (v := float(text)) == v]  # v == v drops NaN
    found = {}
    if values and direction is not None:
        found[f"best_{name}"] = max(values) if direction == "max" else min(values)
    if values:
        found[f"final_{name}"] = values[-1]
    if selected is not None and texts[selected] and (at := float(texts[selected])) == at:
        found[f"at_best_{name}"] = at
    return found


def best_row(texts: Sequence[str], mode: str | None) -> int | None:
    """The row whose epoch best.ckpt holds: the first with the best finite value in `mode` (Lightning's
    ModelCheckpoint replaces best.ckpt only on a strict improvement, and never by a NaN); None without values."""
    best: tuple[int, float] | None = None
    for i, text in enumerate(texts):
        value = float(text) if text else math.nan
        if mode in ("min", "max") and math.isfinite(value):
            if best is None or (value > best[1] if mode == "max" else value < best[1]):
                best = (i, value)
    return best[0] if best is not None else None


def stop_columns(run_dir: PathLike) -> dict:
    """stop_reason and stop_epoch of a run that stopped before its n_epochs and finished (early stopping), from
    meta.json; nothing for the others."""
    stop = layout.stopped_early(run_dir)
    return {"stop_reason": stop.get("reason"), "stop_epoch": stop.get("epoch")} if stop is not None else {}


def load_runs(paths_or_glob: PathLike | Iterable[PathLike], now: float | None = None) -> pd.DataFrame:
    """One row per run: path, status, every config binding, best_/final_ metrics, eval_ results, epochs (and
    stop_reason, stop_epoch for runs that stopped early). A run
    with a damaged file has status `damaged` and the reason (naming the file) in `damaged`; the others load."""
    rows = []
    for run in find_runs(paths_or_glob):
        try:
            why = layout.irregular(run)
            if why is not None:
                raise UserError(why)
            status = status_of(run, now)
            config = load_C(run)
            selection = config.get("checkpoint.monitor"), config.get("checkpoint.mode")  # if bound: best.ckpt's
            derived = {"run": str(run), "status": status, **summarize(run, *selection), **stop_columns(run)}
            rows.append({**config, **derived})  # a macro named like a column (`epochs = 3`) never hides it
        except UserError as e:
            rows.append({"run": str(run), "status": "damaged", "damaged": str(e)})
        except OSError as e:  # a file that cannot be read (a folder, a FIFO, a link, no permission)
            rows.append({"run": str(run), "status": "damaged", "damaged": f"{e.filename or run}: {e.strerror or e}"})
    return pd.DataFrame(rows)


def load_model(run_dir: PathLike, checkpoint: str = "best") -> pl.LightningModule:
    """The trained LightningModule (eval mode), rebuilt from the run's config.gin; weights loaded weights_only."""
    from src.recipes.reload import build_module  # training code, imported only here

    return build_module(Path(run_dir), checkpoint)[0].module


def load_data(run_dir: PathLike) -> pl.LightningDataModule:
    """The run's data module, as configured, prepared and set up (any LightningDataModule: `data.test_dataloader()`
    works). In-memory data (src/data/in_memory.py) also has `data.batches("test")`, which yields batches as the
    model saw them (normalised, not augmented), ready for `load_model(run)(x)`."""
    from src.recipes.reload import run_parts  # training code, imported only here

    data = run_parts(Path(run_dir))[0].data
    data.prepare_data()
    for stage in ("fit", "test"):
        data.setup(stage)
    return data
