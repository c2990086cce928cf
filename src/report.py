"""Experiment report: a terminal table of every run (swept values, status, metrics), the best configuration,
`results.csv`, and plots (learning curves; best metric vs each swept value) as PNG and PDF.

Works on partial results: pending, running, dead and failed runs are listed, not fatal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from src.experiment import Point, experiment_runs_dir, run_names, swept_keys
from src.results import higher_is_better, load_H, load_runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def collect(experiment_dir: Path, name: str, points: list[Point], swept: Sequence[str]) -> pd.DataFrame:
    """One row per point of the search: its swept values, status and metrics (pending if never started)."""
    runs_dir = experiment_runs_dir(experiment_dir, name)
    found = load_runs(runs_dir) if runs_dir.is_dir() else pd.DataFrame()
    found = found.set_index("run") if len(found) else found
    rows = []
    for point, run in zip(points, run_names(points, swept), strict=True):
        path = str(runs_dir / run)
        row = found.loc[path].to_dict() if len(found) and path in found.index else {"status": "pending"}
        rows.append({"run": run, **{k: point[k] for k in swept}, **row, "path": path})
    return pd.DataFrame(rows)


def print_table(table: pd.DataFrame, swept: Sequence[str], metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = ["run", *swept, "status", "epochs", f"best_{metric}", "eval_test_acc"]
    view = Table(title="runs", show_lines=False)
    for column in columns:
        view.add_column(column, justify="left" if column in ("run", "status") else "right")
    for _, row in table.iterrows():
        view.add_row(*[fmt(row.get(c)) for c in columns])
    Console().print(view)


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def plot(table: pd.DataFrame, swept: Sequence[str], metric: str, out: Path) -> list[Path]:
    """learning_curves.{png,pdf} and <metric>_vs_<key>.{png,pdf}; inline too when MPLBACKEND is itermplot."""
    import matplotlib

    inline = "itermplot" in os.environ.get("MPLBACKEND", "")
    if not inline:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    started = table[table["status"] != "pending"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, row in started.iterrows():
        history = load_H(row["path"])
        if metric in history and len(history):
            ax.plot(history["epoch"], history[metric], marker=".", label=f"{row['run']} ({row['status']})")
    ax.set(xlabel="epoch", ylabel=metric, title="learning curves")
    if len(started):
        ax.legend(fontsize="x-small", ncol=2)
    written += save(fig, out / "learning_curves", inline)

    best = f"best_{metric}"
    for key in swept:
        if best not in started or not pd.api.types.is_numeric_dtype(started[key]):
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(started[key], started[best], alpha=0.6, label="runs")
        means = started.groupby(key)[best].mean()
        ax.plot(means.index, means.values, color="black", label="mean")
        if started[key].min() > 0 and started[key].max() / started[key].min() > 10:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=best, title=f"{best} vs {key}")
        ax.legend()
        written += save(fig, out / f"{metric}_vs_{key.rsplit('.', 1)[-1]}", inline)
    return written


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
    experiment_dir: Path, name: str, points: list[Point], swept: Sequence[str] | None, metric: str
) -> pd.DataFrame:
    swept = list(swept or swept_keys(points))
    table = collect(experiment_dir, name, points, swept)
    out = Path(experiment_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    best = f"best_{metric}"
    if best in table:
        table = table.sort_values(best, ascending=not higher_is_better(metric), na_position="last")
    print_table(table, swept, metric)
    counts = table["status"].value_counts().to_dict()
    print("status: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    finished = table[table["status"] == "finished"]
    if best in finished and len(finished):
        top = finished.iloc[0]
        print(
            f"best ({best} = {top[best]:.4g}): "
            + ", ".join(f"{k} = {fmt(top[k])}" for k in swept)
            + f"  [{top['path']}]"
        )
    table.to_csv(out / "results.csv", index=False)
    for path in plot(table, swept, metric, out):
        print(f"wrote {path}")
    return table
