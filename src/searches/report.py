"""Experiment report: a terminal table of every run (swept values, status, metrics), the best configuration,
`results.csv`, and plots (learning curves; best metric vs each swept value) as PNG and PDF.

Replicates (by default `training_loop.seed`; an experiment may declare others) are not hyperparameters: when one
varies, runs are grouped by the other swept values, each configuration shows mean ± std over its n runs
(`results_by_config.csv`), the best configuration is picked on the mean, and the plots show means with a ±1 std band.
Metrics are ranked in the direction the runs recorded (src/run/metric_directions.py).

Works on partial results: pending, running, dead, failed and damaged runs are listed, not fatal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from src.analysis.tables import fmt, print_frame
from src.errors import UserError, did_you_mean
from src.results import higher_is_better, load_runs
from src.run import metric_directions
from src.run.reading import read_bytes
from src.searches.experiment import REPLICATES, Point, experiment_runs_dir, run_names, swept_keys
from src.searches.plots import plot

if TYPE_CHECKING:
    pass


def collect(
    experiment_dir: Path,
    name: str,
    points: list[Point],
    swept: Sequence[str],
    names: Sequence[str] | None = None,
    logs: Path | None = None,
) -> pd.DataFrame:
    """One row per point of the search: `name` (the run folder's name), its swept values, status, metrics and `run`
    (the run folder's path, as in load_runs); pending if never started, failed (with its `error`) if the local
    runner's log in `logs` ends with the error that stopped it before its run folder existed. `names`: the run
    folders' names (default: from the swept values, as prepare names them)."""
    runs_dir = experiment_runs_dir(experiment_dir, name)
    found = load_runs(runs_dir) if runs_dir.is_dir() else pd.DataFrame()
    found = found.set_index("run") if len(found) else found
    rows = []
    for point, run_name in zip(points, names or run_names(points, swept), strict=True):
        path = str(runs_dir / run_name)
        row = found.loc[path].to_dict() if len(found) and path in found.index else not_started(logs, run_name)
        rows.append({"name": run_name, **row, **{k: point[k] for k in swept}, "run": path})
    return pd.DataFrame(rows)


def not_started(logs: Path | None, run: str) -> dict[str, str]:
    """A run without a folder: pending, unless bin/run_local.py's log of it ends with the one-line error of a job
    that stopped before creating its folder (a bad binding, missing data): then failed, with that error."""
    log = logs / f"{run}.log" if logs is not None else None
    try:
        lines = read_bytes(log).decode(errors="replace").splitlines() if log is not None and log.is_file() else []
    except (OSError, ValueError):
        lines = []
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    if last.startswith("error: "):
        return {"status": "failed", "error": f"{last.removeprefix('error: ')} (log {log})"}
    return {"status": "pending"}


def main_metric(table: pd.DataFrame) -> str:
    """The main metric the runs recorded (the first that did), else valid_loss."""
    for run in table["run"]:
        if (found := metric_directions.main_metric(run)) is not None:
            return found
    return "valid_loss"


def recorded_metrics(table: pd.DataFrame) -> list[str]:
    """The metrics with a best value in some run (history.csv columns with a direction), in column order."""
    return [c.removeprefix("best_") for c in table.columns if c.startswith("best_") and table[c].notna().any()]


def check_metric(metric: str, table: pd.DataFrame) -> None:
    """A metric the runs cannot be ranked by is one line naming what they record (a close match first), before
    anything is written. Test metrics never rank: choosing by them would tune the hyperparameters on the test set.
    Nothing to check while no run has recorded a metric."""
    if metric.startswith("test_") or metric.startswith("eval_"):
        valid = "valid_" + metric.removeprefix("eval_").removeprefix("test_")
        raise UserError(
            f"metric {metric!r} is measured on the test set: ranking runs by it would choose the hyperparameters on "
            f"the test set; rank by {valid!r} (report shows eval_test_* next to it)."
        )
    recorded = recorded_metrics(table)
    if not recorded or metric in recorded:
        return
    if f"final_{metric}" in table:
        raise UserError(
            f"metric {metric!r} has no recorded direction (metrics.json), so runs cannot be ranked by it; they "
            f"can be by: {', '.join(recorded)}."
        )
    hint = did_you_mean(metric, recorded)
    raise UserError(
        f"metric {metric!r} is not recorded by these runs; they record: {', '.join(recorded)}.{hint} "
        "(experiment_main(metric=...) in the experiment's main.py)"
    )


def by_config(table: pd.DataFrame, configs: Sequence[str], metric: str, higher: bool) -> pd.DataFrame:
    """One row per configuration (the swept values other than replicates): mean, std and n of best_<metric> over its
    runs that have it, best configuration first; and the mean and std of every at_best_* column (the other metrics
    at each run's selected checkpoint) as `<column> mean`, `<column> std`."""
    best = f"best_{metric}"
    if best not in table:  # no run has recorded the metric yet
        return pd.DataFrame(columns=[*configs, "mean", "std", "n"])
    started = table.dropna(subset=[best])
    keys = list(configs) or ["_all"]
    grouped = started.assign(_all="all").groupby(keys, dropna=False)
    summary = grouped[best].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    for column in [c for c in started.columns if c.startswith("at_best_")]:
        summary[[f"{column} mean", f"{column} std"]] = grouped[column].agg(["mean", "std"])
    summary = summary.reset_index().sort_values("mean", ascending=not higher, na_position="last")
    return summary.drop(columns=["_all"], errors="ignore").reset_index(drop=True)


def print_table(rows: pd.DataFrame, columns: Sequence[str], title: str) -> None:
    """The given columns of `rows` (those present), fitted like every table (src/analysis/tables.py): on a narrow
    terminal the first column, the status and the ranking metric stay."""
    present = [c for c in columns if c in rows]
    keep = [c for i, c in enumerate(present) if i == 0 or c == "status" or c.startswith("best_")]
    print_frame(rows.reindex(columns=present), title, keep=keep)


def check_plots(plots: Sequence[str], table: pd.DataFrame) -> None:
    """Each metric to plot besides the ranking one must be one the runs record (a close match named first)."""
    recorded = recorded_metrics(table)
    for metric in plots:
        if recorded and metric not in recorded:
            raise UserError(
                f"cannot plot metric {metric!r}: it is not recorded by these runs; they record: "
                f"{', '.join(recorded)}.{did_you_mean(metric, recorded)}"
            )


def report(
    experiment_dir: Path,
    name: str,
    points: list[Point],
    swept: Sequence[str] | None = None,
    metric: str | None = None,
    replicates: Sequence[str] = REPLICATES,
    names: Sequence[str] | None = None,
    plots: Sequence[str] = (),
    log_keys: Sequence[str] = (),
) -> pd.DataFrame:
    """Print and write the report of search `name`; return its table (one row per run, best first). `plots`: other
    recorded metrics to plot too (learning curves, and their value at each run's selected checkpoint against each
    swept value); `log_keys`: swept keys plotted on a log axis whatever their values."""
    swept = list(swept or swept_keys(points))
    table = collect(experiment_dir, name, points, swept, names, Path(experiment_dir) / name / "logs")
    metric = metric or main_metric(table)
    started = table[table["status"] != "pending"]
    check_metric(metric, table)
    check_plots(plots, table)
    out = Path(experiment_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    higher = higher_is_better(metric, started["run"].iloc[0] if len(started) else None)
    configs = [k for k in swept if k not in replicates]
    replicated = len(configs) < len(swept)
    if f"best_{metric}" in table:
        table = table.sort_values(f"best_{metric}", ascending=not higher, na_position="last").reset_index(drop=True)
    print_runs(table, swept, metric, main_metric(table))
    table.to_csv(out / "results.csv", index=False)
    finished = table[table["status"] == "finished"]
    if replicated:
        print_configurations(finished, swept, configs, replicates, metric, higher, out)
    else:
        print_best(finished, swept, metric)
    for path in plot(table, configs if replicated else swept, replicated, metric, higher, out, plots, log_keys):
        print(f"wrote {path}")
    return table


def print_runs(table: pd.DataFrame, swept: Sequence[str], metric: str, selected_by: str) -> None:
    """The table of runs: swept values, status, the ranking metric (best epoch), the other validation metrics at
    the selected checkpoint's epoch (at_best_*), the test results; then the counts, and the damaged and failed."""
    best = f"best_{metric}"
    evals = [c for c in table.columns if c == f"eval_test_{metric.split('_', 1)[-1]}"]
    stop = ["stop_reason"] if "stop_reason" in table else []
    at_best = [c for c in table.columns if c.startswith("at_best_valid_")]
    if metric == selected_by:  # the checkpoint is chosen by the ranking metric: at_best_<metric> is best_<metric>
        at_best = [c for c in at_best if c != f"at_best_{metric}"]
    print_table(table, ["name", *swept, "status", "epochs", *stop, best, "at_best_epoch", *at_best, *evals], "runs")
    counts = table["status"].value_counts().to_dict()
    print("status: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for _, row in table[table["status"] == "damaged"].iterrows():
        print(f"damaged: {row['name']}: {row.get('damaged')}")
    if "error" in table:
        for _, row in table[table["error"].notna()].iterrows():
            print(f"failed before its run folder existed: {row['name']}: {row['error']}")


def print_configurations(
    finished: pd.DataFrame,
    swept: Sequence[str],
    configs: Sequence[str],
    replicates: Sequence[str],
    metric: str,
    higher: bool,
    out: Path,
) -> None:
    """Replicates: mean ± std and n per configuration (results_by_config.csv), and the best configuration."""
    best = f"best_{metric}"
    summary = by_config(finished, configs, metric, higher)
    spread = [f"{m:.4g} ± {fmt(s)}" for m, s in zip(summary["mean"], summary["std"], strict=True)]
    shown = summary.assign(**{f"{best} mean ± std": spread})
    title = f"by configuration (replicates: {', '.join(k for k in swept if k in replicates)})"
    print_table(shown, [*configs, f"{best} mean ± std", "n"], title)
    summary.to_csv(out / "results_by_config.csv", index=False)
    if len(summary):
        top = summary.iloc[0]
        print(
            f"best configuration ({best} mean = {top['mean']:.4g} over {int(top['n'])} runs): "
            + (", ".join(f"{k} = {fmt(top[k])}" for k in configs) or "the only one")
        )


def print_best(finished: pd.DataFrame, swept: Sequence[str], metric: str) -> None:
    best = f"best_{metric}"
    if best in finished and len(finished):
        top = finished.iloc[0]
        print(
            f"best ({best} = {top[best]:.4g}): "
            + ", ".join(f"{k} = {fmt(top[k])}" for k in swept)
            + f"  [{top['run']}]"
        )
