"""Compare the results of two runs of the same config: the metric columns of history.csv (timings left out),
eval_results.json, the operative config.gin and the checkpoints' weights. Used by bin/reproduce.py.

    differences(original, reproduction, tolerance=0.0)  # [] when identical

No training code imported; torch only to read the checkpoints.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from src.errors import UserError
from src.results import load_C
from src.run import checkpoints, layout, reading

TIMING = re.compile(r"(^|_)time$|_per_s$")  # epoch_time, examples_per_s: they vary from run to run
CHECKPOINTS = (layout.BEST_CKPT, layout.LAST_CKPT)
ABSENT = "<absent>"


@dataclass(frozen=True)
class Difference:
    file: str
    item: str
    original: object
    reproduced: object
    difference: float | None  # |original - reproduced| for numbers (largest over a column or tensor), else None


def number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def value_difference(a: object, b: object) -> float | None:
    """0.0 when equal; |a - b| for two numbers; None (a difference beyond any tolerance) otherwise."""
    if a == b:
        return 0.0
    x, y = number(a), number(b)
    if x is None or y is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if math.isnan(x) and math.isnan(y):
        return 0.0
    return abs(x - y) if not (math.isnan(x) or math.isnan(y)) else math.inf


def beyond(difference: float | None, tolerance: float) -> bool:
    return difference is None or difference > tolerance


def read_history(run: Path) -> list[dict[str, str]]:
    try:
        return list(csv.DictReader(io.StringIO(reading.read_text(run / layout.HISTORY), newline="")))
    except FileNotFoundError:
        return []
    except (ValueError, csv.Error) as e:  # no text, no regular file, NUL characters
        raise UserError(f"{run / layout.HISTORY} is damaged: {str(e).splitlines()[0]}") from e


def compare_history(a: Path, b: Path, tolerance: float) -> list[Difference]:
    """One row per metric column that differs, at the epoch where it differs most."""
    rows_a, rows_b = read_history(a), read_history(b)
    if len(rows_a) != len(rows_b):
        return [Difference(layout.HISTORY, "epochs", len(rows_a), len(rows_b), None)]
    columns = dict.fromkeys(c for row in rows_a + rows_b for c in row if not TIMING.search(c))
    found = []
    for column in columns:
        pairs = [(ra.get(column, ABSENT), rb.get(column, ABSENT)) for ra, rb in zip(rows_a, rows_b, strict=True)]
        beyond_tolerance = [
            (i, d) for i, (va, vb) in enumerate(pairs) if beyond(d := value_difference(va, vb), tolerance)
        ]
        if beyond_tolerance:
            i, diff = max(beyond_tolerance, key=lambda pair: math.inf if pair[1] is None else pair[1])
            item = f"{column} (epoch {rows_a[i].get('epoch', i + 1)})"
            found.append(Difference(layout.HISTORY, item, *pairs[i], diff))
    return found


def read_json(path: Path) -> dict:
    try:
        value = reading.read_json(path)
    except FileNotFoundError:
        return {}
    except ValueError as e:  # no JSON, or no regular file
        raise UserError(f"{path} is damaged: {str(e).splitlines()[0]}") from e
    return value if isinstance(value, dict) else {}


def compare_mapping(name: str, a: dict, b: dict, tolerance: float) -> list[Difference]:
    found = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key, ABSENT), b.get(key, ABSENT)
        diff = value_difference(va, vb)
        if beyond(diff, tolerance):
            found.append(Difference(name, str(key), va, vb, diff))
    return found


def compare_config(a: Path, b: Path) -> list[Difference]:
    """The operative configs must be the same: a difference here explains any other."""
    ca, cb = load_C(a), load_C(b)
    return compare_mapping(layout.CONFIG, ca, cb, 0.0)


def compare_weights(a: Path, b: Path, name: str, tolerance: float) -> list[Difference]:
    """One row per tensor of the checkpoint's state_dict that differs (largest |difference| of its elements)."""
    import torch

    if not (a / name).is_file():
        return []
    if not (b / name).is_file():
        return [Difference(name, "file", "present", ABSENT, None)]
    sa, sb = (checkpoints.weights(run / name) for run in (a, b))
    found = []
    for key in sorted(set(sa) | set(sb)):
        ta, tb = sa.get(key), sb.get(key)
        if ta is None or tb is None or ta.shape != tb.shape:
            shape = [tuple(t.shape) if t is not None else ABSENT for t in (ta, tb)]
            found.append(Difference(name, key, f"shape {shape[0]}", f"shape {shape[1]}", None))
            continue
        if torch.equal(ta, tb):
            continue
        diff = (ta.double() - tb.double()).abs().max().item() if ta.numel() else 0.0
        if beyond(diff, tolerance):
            found.append(Difference(name, key, f"{ta.numel()} values", f"{tb.numel()} values", diff))
    return found


def differences(original: str | Path, reproduction: str | Path, tolerance: float = 0.0) -> list[Difference]:
    """Everything that differs beyond `tolerance` (absolute): [] means the results are the same."""
    a, b = Path(original), Path(reproduction)
    found = compare_config(a, b) + compare_history(a, b, tolerance)
    eval_a, eval_b = read_json(a / layout.EVAL_RESULTS), read_json(b / layout.EVAL_RESULTS)
    found += compare_mapping(layout.EVAL_RESULTS, eval_a, eval_b, tolerance)
    for name in CHECKPOINTS:
        found += compare_weights(a, b, name, tolerance)
    return found


def summary(original: str | Path) -> str:
    """What was compared, for the 'identical' line."""
    a = Path(original)
    rows = read_history(a)
    metrics = [c for c in (rows[0] if rows else {}) if not TIMING.search(c) and c not in ("epoch", "step")]
    checkpoints = [name for name in CHECKPOINTS if (a / name).is_file()]
    parts = [
        f"{layout.HISTORY} ({len(rows)} epochs: {', '.join(metrics)})",
        f"{layout.EVAL_RESULTS} ({', '.join(k for k in read_json(a / layout.EVAL_RESULTS) if k != 'checkpoint')})",
        *(f"{name} weights" for name in checkpoints),
        layout.CONFIG,
    ]
    return "; ".join(parts)
