"""The report's figures (src/searches/report.py): learning curves and the best metric against each swept value, as PNG
and PDF (inline in the terminal with itermplot), means with a +-1 std band where runs are replicated; and an Optuna
search's history and parameter importances. Matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from src.analysis.figures import select_backend
from src.errors import UserError
from src.results import load_H
from src.run import layout
from src.searches.experiment import gin_value

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure


def log_spaced(values: Sequence[float]) -> bool:
    """Positive values spanning more than a factor 10 (learning rates, weight decays): plotted on a log axis."""
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def plot(
    table: pd.DataFrame, configs: Sequence[str], replicated: bool, metric: str, higher: bool, out: Path
) -> list[Path]:
    """learning_curves.{png,pdf} and <metric>_vs_<key>.{png,pdf}; inline too when MPLBACKEND is itermplot."""
    inline = select_backend()
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


def optuna_report(study: optuna.Study, out: Path, fixed: dict[str, Any], metric: str) -> list[Path]:
    """An optuna_search's additions (src/searches/optuna_search.py): Optuna's optimization history and parameter
    importances (optuna.visualization.matplotlib) as PNG and PDF, and the best trial's bindings, printed and as
    best.gin."""
    import warnings

    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    inline = select_backend()
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    print("study: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    written = []
    complete = counts.get("complete", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is marked experimental
        if complete:
            target = f"{metric} (best epoch of each trial)"
            history = cast("Figure", optuna_plots.plot_optimization_history(study, target_name=target).figure)
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
