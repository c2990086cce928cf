"""What a search's run folders tell its Optuna study: the metrics they record and which way each is better
(metrics.json, history.csv's header), and the best value of a finished run (history.csv). Files are read bounded
(src/run/reading.py): a damaged one gives its trial no value (NoValue), never a failed `prepare`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from src.errors import UserError
from src.run import layout, reading
from src.run.metric_directions import is_metric


def recorded_directions(runs_dir: Path) -> dict[str, str]:
    """{metric: 'min'|'max'} as the search's run folders recorded them (metrics.json); {} before any run has."""
    from src.run import metric_directions

    found: dict[str, str] = {}
    runs = sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()) if Path(runs_dir).is_dir() else []
    for run in runs:
        found.update(metric_directions.read(run))
    return found


def recorded_metrics(runs_dir: Path) -> list[str]:
    """The metrics a search's runs record while training, from any run folder's metrics.json (written when a run
    starts: the module's declaration, test metrics left out) and history.csv header; unreadable files are skipped
    (telling the study names them)."""
    found: dict[str, None] = {}
    runs = sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()) if Path(runs_dir).is_dir() else []
    for run in runs:
        try:
            declared = reading.read_json(run / layout.METRICS).get("directions", {})
            found.update((m, None) for m in declared if isinstance(m, str) and not m.startswith("test_"))
        except (OSError, ValueError, AttributeError):
            pass
        try:
            header = next(csv.reader(io.StringIO(reading.read_text(run / layout.HISTORY), newline="")), [])
            found.update((c, None) for c in header if is_metric(c))
        except (OSError, ValueError, csv.Error):
            pass
    return list(found)


class NoValue(Exception):
    """A finished run that gives its trial no value (history.csv missing, unreadable, or the metric never finite):
    the trial is told FAIL, and a new one takes its place."""


def best_value(run_dir: Path, metric: str, maximize: bool) -> float:
    """The best value of `metric` over the run's epochs (history.csv); a metric the run does not log is one line,
    a history without a finite value of it NoValue (why, naming the file)."""
    path = run_dir / layout.HISTORY
    try:
        reader = csv.DictReader(io.StringIO(reading.read_text(path), newline=""))
        rows = list(reader)
        columns = list(reader.fieldnames or [])
        texts = [row[metric] for row in rows if row.get(metric) not in (None, "")]
        values = [v for v in map(float, texts) if v == v]
    except FileNotFoundError as e:
        raise NoValue(f"{path} is missing") from e
    except (OSError, ValueError, csv.Error) as e:  # undecodable bytes, NUL characters, a value that is no number
        raise NoValue(f"{path} is damaged: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if columns and metric not in columns:
        logged = ", ".join(c for c in columns if is_metric(c))
        raise UserError(
            f"The runs do not log {metric!r} ({run_dir.name}/{layout.HISTORY} has {logged or 'no metrics'}): "
            "choose one of those as optuna_search(metric=...)."
        )
    if not values:
        raise NoValue(f"{path} has no finite {metric} (NaN or empty in every epoch)")
    return max(values) if maximize else min(values)
