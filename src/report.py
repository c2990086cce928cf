"""Experiment report: a terminal table of every run (swept values, status, metrics), the best configuration,
`results.csv`, and plots (learning curves; best metric vs each swept value) as PNG and PDF.

Replicates (by default `training_loop.seed`; an experiment may declare others) are not hyperparameters: when one
varies, runs are grouped by the other swept values, each configuration shows mean ± std over its n runs
(`results_by_config.csv`), the best configuration is picked on the mean, and the plots show means with a ±1 std band.
Metrics are ranked in the direction the runs recorded (src/metric_directions.py).

Works on partial results: pending, running, dead, failed and damaged runs are listed, not fatal.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from src import metric_directions
from src import run_dir as layout
from src.errors import UserError
from src.experiment import REPLICATES, Point, experiment_runs_dir, gin_value, run_names, swept_keys
from src.results import higher_is_better, load_H, load_runs
from src.tables import fmt, print_frame

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure


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
        lines = log.read_text(errors="replace").splitlines() if log is not None and log.is_file() else []
    except OSError:
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
    close = difflib.get_close_matches(metric, recorded, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UserError(
        f"metric {metric!r} is not recorded by these runs; they record: {', '.join(recorded)}.{hint} "
        "(experiment_main(metric=...) in the experiment's main.py)"
    )


def by_config(table: pd.DataFrame, configs: Sequence[str], metric: str, higher: bool) -> pd.DataFrame:
    """One row per configuration (the swept values other than replicates): mean, std and n of best_<metric> over its
    runs that have it, best configuration first."""
    best = f"best_{metric}"
    started = table.dropna(subset=[best]) if best in table else table.iloc[0:0]
    keys = list(configs) or ["_all"]
    grouped = started.assign(_all="all").groupby(keys, dropna=False)[best]
    summary = grouped.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    summary = summary.sort_values("mean", ascending=not higher, na_position="last")
    return summary.drop(columns=["_all"], errors="ignore").reset_index(drop=True)


def print_table(rows: pd.DataFrame, columns: Sequence[str], title: str) -> None:
    """The given columns of `rows` (those present), fitted like every table (src/tables.py): on a narrow terminal
    the first column, the status and the ranking metric stay."""
    present = [c for c in columns if c in rows]
    keep = [c for i, c in enumerate(present) if i == 0 or c == "status" or c.startswith("best_")]
    print_frame(rows.reindex(columns=present), title, keep=keep)


def log_spaced(values: Sequence[float]) -> bool:
    """Positive values spanning more than a factor 10 (learning rates, weight decays): plotted on a log axis."""
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def plot(
    table: pd.DataFrame, configs: Sequence[str], replicated: bool, metric: str, higher: bool, out: Path
) -> list[Path]:
    """learning_curves.{png,pdf} and <metric>_vs_<key>.{png,pdf}; inline too when MPLBACKEND is itermplot."""
    import matplotlib

    inline = "itermplot" in os.environ.get("MPLBACKEND", "")
    if not inline:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    started = table[~table["status"].isin(["pending", "damaged"]) & table["run"].map(lambda r: Path(r).is_dir())]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves: dict[str, list[pd.Series]] = {}
    stops: dict[str, list[int]] = {}  # label -> epochs where early stopping ended a run
    for _, row in started.iterrows():
        if (found := run_curve(row, metric)) is None:
            continue
        curve, stop = found
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={row[k]}" for k in configs) or "all"
        if not replicated:
            label = f"{row['name']} ({row['status']})"
        if stop is not None and not replicated:
            label = f"{row['name']} (stopped early at epoch {stop})"
        curves.setdefault(label, []).append(curve)
        if stop is not None:  # the curve ends there: marked, never extended to n_epochs
            stops.setdefault(label, []).append(stop)
    for label in sorted(curves, key=natural_key):
        frame = pd.concat(curves[label], axis=1)
        mean = frame.mean(axis=1)  # with replicates, each epoch's mean is over the runs that trained it
        line = ax.plot(
            mean.index, mean.values, marker=".", label=label + (f" (n={frame.shape[1]})" if replicated else "")
        )
        for epoch in stops.get(label, []):
            ax.plot([epoch], [mean[epoch]], marker="x", markersize=9, color=line[0].get_color())
        if replicated and frame.shape[1] > 1:
            std = frame.std(axis=1)
            ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2, color=line[0].get_color())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="epoch", ylabel=metric, title="learning curves" + (" (mean ± std over replicates)" if replicated else "")
    )
    if stops:
        ax.plot([], [], "kx", label="stopped early")
    if curves:
        ax.legend(fontsize="x-small", ncol=2)
    written += save(fig, out / "learning_curves", inline)

    best = f"best_{metric}"
    for key in configs:
        if best not in started or not pd.api.types.is_numeric_dtype(started[key]):
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(started[key], started[best], alpha=0.6, label="runs")
        stats = started.groupby(key)[best].agg(["mean", "std"]).sort_index()
        ax.plot(stats.index, stats["mean"], color="black", label="mean")
        if replicated:
            ax.fill_between(
                stats.index,
                stats["mean"] - stats["std"].fillna(0),
                stats["mean"] + stats["std"].fillna(0),
                color="black",
                alpha=0.15,
                label="± std",
            )
        if log_spaced(list(started[key])):
            ax.set_xscale("log")
        arrow = "higher is better" if higher else "lower is better"
        ax.set(xlabel=key, ylabel=f"{best} ({arrow})", title=f"{best} vs {key}")
        ax.legend()
        written += save(fig, out / f"{metric}_vs_{key.rsplit('.', 1)[-1]}", inline)
    return written


def run_curve(row: pd.Series, metric: str) -> tuple[pd.Series, int | None] | None:
    """(the run's `metric` by epoch, the epoch early stopping ended it or None); None if the run has no such curve,
    or, with a one-line warning naming the file, if its history.csv or meta.json is damaged: the report goes on."""
    run = Path(row["run"])
    try:
        history = load_H(run)
    except UserError as e:
        skip(str(e))
        return None
    if metric not in history or not len(history):
        return None
    if "epoch" not in history or not pd.api.types.is_numeric_dtype(history["epoch"]):
        skip(f"{run / layout.HISTORY} is damaged: no numeric epoch column")
        return None
    curve = history.set_index("epoch")[metric]
    if not curve.index.is_unique:
        skip(f"{run / layout.HISTORY} is damaged: an epoch appears twice")
        return None
    if not stopped_early(row):
        return curve, None
    stop = pd.to_numeric(pd.Series([row["stop_epoch"]]), errors="coerce").iloc[0]
    if stop not in curve.index:
        skip(f"{run / layout.META} is damaged: it stopped early at epoch {row['stop_epoch']!r}, not in history")
        return None
    return curve, int(stop)


def skip(problem: str) -> None:
    print(f"warning: {problem}; its learning curve is left out", file=sys.stderr)


def stopped_early(row: pd.Series) -> bool:
    return "stop_epoch" in row and row["stop_epoch"] == row["stop_epoch"] and row["stop_epoch"] is not None


def natural_key(label: str) -> tuple:
    """Legend order by value: 'lr=0.0003' before 'lr=0.003' before 'lr=0.03'."""
    parts = []
    for item in label.replace(",", " ").split():
        value = item.split("=", 1)[-1].split(" ")[0]
        try:
            parts.append((0, float(value), ""))
        except ValueError:
            parts.append((1, math.inf, item))
    return tuple(parts)


def save(fig: Figure, stem: Path, inline: bool) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=120)
    if inline:
        plt.show()
    plt.close(fig)
    return paths


def report(
    experiment_dir: Path,
    name: str,
    points: list[Point],
    swept: Sequence[str] | None = None,
    metric: str | None = None,
    replicates: Sequence[str] = REPLICATES,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Print and write the report of search `name`; return its table (one row per run, best first)."""
    swept = list(swept or swept_keys(points))
    table = collect(experiment_dir, name, points, swept, names, Path(experiment_dir) / name / "logs")
    metric = metric or main_metric(table)
    started = table[table["status"] != "pending"]
    check_metric(metric, table)
    out = Path(experiment_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    higher = higher_is_better(metric, started["run"].iloc[0] if len(started) else None)
    configs = [k for k in swept if k not in replicates]
    replicated = len(configs) < len(swept)
    best = f"best_{metric}"
    if best in table:
        table = table.sort_values(best, ascending=not higher, na_position="last").reset_index(drop=True)
    evals = [c for c in table.columns if c == f"eval_test_{metric.split('_', 1)[-1]}"]
    stop = ["stop_reason"] if "stop_reason" in table else []
    print_table(table, ["name", *swept, "status", "epochs", *stop, best, *evals], "runs")
    counts = table["status"].value_counts().to_dict()
    print("status: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for _, row in table[table["status"] == "damaged"].iterrows():
        print(f"damaged: {row['name']}: {row.get('damaged')}")
    if "error" in table:
        for _, row in table[table["error"].notna()].iterrows():
            print(f"failed before its run folder existed: {row['name']}: {row['error']}")
    table.to_csv(out / "results.csv", index=False)
    finished = table[table["status"] == "finished"]
    if replicated:
        summary = by_config(finished, configs, metric, higher)
        shown = summary.assign(
            **{
                f"{best} mean ± std": [
                    f"{m:.4g} ± {fmt(s)}" for m, s in zip(summary["mean"], summary["std"], strict=True)
                ]
            }
        )
        print_table(
            shown,
            [*configs, f"{best} mean ± std", "n"],
            f"by configuration (replicates: {', '.join(k for k in swept if k in replicates)})",
        )
        summary.to_csv(out / "results_by_config.csv", index=False)
        if len(summary):
            top = summary.iloc[0]
            print(
                f"best configuration ({best} mean = {top['mean']:.4g} over {int(top['n'])} runs): "
                + (", ".join(f"{k} = {fmt(top[k])}" for k in configs) or "the only one")
            )
    elif best in finished and len(finished):
        top = finished.iloc[0]
        print(
            f"best ({best} = {top[best]:.4g}): "
            + ", ".join(f"{k} = {fmt(top[k])}" for k in swept)
            + f"  [{top['run']}]"
        )
    for path in plot(table, configs if replicated else swept, replicated, metric, higher, out):
        print(f"wrote {path}")
    return table


def optuna_report(study: optuna.Study, out: Path, fixed: dict[str, Any]) -> list[Path]:
    """An optuna_search's additions (src/optuna_search.py): Optuna's optimization history and parameter importances
    (optuna.visualization.matplotlib) as PNG and PDF, and the best trial's bindings, printed and as best.gin."""
    import warnings

    import matplotlib
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    inline = "itermplot" in os.environ.get("MPLBACKEND", "")
    if not inline:
        matplotlib.use("Agg")
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    print("study: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    written = []
    complete = counts.get("complete", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is marked experimental
        if complete:
            history = cast("Figure", optuna_plots.plot_optimization_history(study).figure)
            written += save(history, out / "optuna_history", inline)
        if complete >= 2:
            evaluator = FanovaImportanceEvaluator(seed=0)  # a random forest: seeded, the same plot every time
            figure = cast("Figure", optuna_plots.plot_param_importances(study, evaluator=evaluator).figure)
            written += save(figure, out / "optuna_importances", inline)
        else:
            print("parameter importances: need at least 2 completed trials")
    if complete:
        best = study.best_trial
        lines = [f"{k} = {gin_value(v)}" for k, v in {**best.params, **fixed}.items()]
        path = out / "best.gin"
        header = f"# best trial {best.number} of study {study.study_name!r}: {best.value:.6g}\n"
        path.write_text(header + "\n".join(lines) + "\n")
        print(f"best trial {best.number} ({best.value:.4g}): " + ", ".join(lines[: len(best.params)]) + f"  -> {path}")
        written.append(path)
    for path in written:
        print(f"wrote {path}")
    return written
