"""The report's figures (src/searches/report.py), as PNG and PDF (inline in the terminal with the optional itermplot):
learning curves, and a metric at the selected checkpoint against each swept value; and an Optuna search's history and
parameter importances. Matplotlib is imported only when a figure is drawn.

What they promise: a line joins only runs that differ in the plotted value alone (replicates are averaged, with a ±1
std band clipped to the metric's range: an accuracy stays within [0, 1]); every line has its own colour and style; a
long legend sits beside the axes, and the runs of one numeric swept value are coloured along a colour bar instead;
early-stopped runs end with ×, pruned ones with ▼; log-spaced values (learning rates, widths 8, 16, 32) get a log
axis."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from src.errors import UserError
from src.figures import select_backend
from src.results import load_H
from src.run import layout
from src.searches.experiment import gin_value

if TYPE_CHECKING:
    import optuna
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BOUNDED = re.compile(r"(^|_)(acc|accuracy|auc|auroc|f1|precision|recall|iou|dice)$")  # metrics within [0, 1]
INSIDE = 6  # legends of more entries go beside the axes
COLOUR_BAR = 6  # more lines than this, coloured by one numeric swept value: a colour bar instead of a legend
LINE_STYLES = ("-", "--", ":", "-.")
STOPPED: dict[str, Any] = {"marker": "x", "markersize": 9}
PRUNED: dict[str, Any] = {"marker": "v", "markersize": 7}


@dataclass
class Series:
    """One line of the learning curves: a run, or a configuration's replicates (averaged)."""

    label: str
    value: Any  # the swept value when one key is swept (its colour on a colour bar), else None
    curves: list[pd.Series] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)  # epochs where early stopping ended a run
    pruned: list[int] = field(default_factory=list)  # epochs where an Optuna study stopped a run


def plot(
    table: pd.DataFrame,
    configs: Sequence[str],
    replicated: bool,
    metric: str,
    higher: bool,
    out: Path,
    extra: Sequence[str] = (),
    log_keys: Sequence[str] = (),
) -> list[Path]:
    """learning_curves and <metric>_vs_<key> (best_<metric> of each run) as PNG and PDF, and for each `extra`
    metric learning_curves_<m> and <m>_vs_<key> (its value at the selected checkpoint's epoch, at_best_<m>).
    `log_keys`: swept keys drawn on a log axis whatever their values (an Optuna space's log ranges)."""
    inline = select_backend()
    started = table[~table["status"].isin(["pending", "damaged"]) & table["run"].map(lambda r: Path(r).is_dir())]
    written: list[Path] = []
    for shown in [metric, *[m for m in extra if m != metric]]:
        suffix = "" if shown == metric else f"_{shown}"
        series = collect_series(started, configs, replicated, shown)
        written += learning_curves(series, configs, replicated, shown, out / f"learning_curves{suffix}", inline)
        column = f"best_{shown}" if shown == metric else f"at_best_{shown}"
        for key in configs:
            log = key in started and (key in log_keys or log_spaced(list(started[key])))
            stem = out / f"{shown}_vs_{short(key)}"
            direction = higher if shown == metric else None
            written += value_vs_key(started, configs, key, column, direction, log, stem, inline)
    return written


# -- learning curves --


def collect_series(started: pd.DataFrame, configs: Sequence[str], replicated: bool, metric: str) -> list[Series]:
    """The learning curves' lines, in the order of their swept values: one per configuration with replicates,
    else one per run."""
    found: dict[str, Series] = {}
    for _, row in started.iterrows():
        if (curve_stop := run_curve(row, metric)) is None:
            continue
        curve, stop = curve_stop
        label = ", ".join(f"{short(k)}={row[k]}" for k in configs) or "all"
        if not replicated:
            label = (
                f"{row['name']} (stopped early at epoch {stop})"
                if stop is not None
                else f"{row['name']} ({row['status']})"
            )
        value = row[configs[0]] if len(configs) == 1 else None
        series = found.setdefault(label, Series(label, value))
        series.curves.append(curve)
        if stop is not None:  # the curve ends there: marked, never extended to n_epochs
            series.stops.append(stop)
        if row["status"] == "pruned":
            series.pruned.append(int(curve.index[-1]))
    return [found[label] for label in sorted(found, key=natural_key)]


def learning_curves(
    series: list[Series], configs: Sequence[str], replicated: bool, metric: str, stem: Path, inline: bool
) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4.5))
    bounds = metric_bounds(metric, [v for s in series for c in s.curves for v in c])
    bar = colour_bar(series, configs)
    styles = line_styles(len(series))
    for i, line in enumerate(series):
        colour = bar.to_rgba(line.value) if bar is not None else styles[i][0]
        draw_series(ax, line, replicated, bounds, colour, styles[i][1] if bar is None else "-", labelled=bar is None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    title = "learning curves" + (" (mean ± std over replicates)" if replicated else "")
    ax.set(xlabel="epoch", ylabel=metric, title=title)
    markers(ax, any(s.stops for s in series), any(s.pruned for s in series))
    if bar is not None:
        fig.colorbar(bar, ax=ax, label=configs[0])
    place_legend(ax, with_lines=bar is None)
    return save(fig, stem, inline)


def draw_series(
    ax: Axes,
    series: Series,
    replicated: bool,
    bounds: tuple[float, float],
    colour: Any,
    style: str,
    labelled: bool = True,
) -> None:
    """The series' mean curve (each epoch's mean over the runs that trained it), its ±1 std band (replicates),
    × where early stopping ended a run, ▼ where a study pruned one; in the legend unless `labelled` is False (a
    colour bar says which is which)."""
    frame = pd.concat(series.curves, axis=1)
    mean = frame.mean(axis=1)
    label = (series.label + (f" (n={frame.shape[1]})" if replicated else "")) if labelled else None
    ax.plot(mean.index, mean.values, marker=".", color=colour, linestyle=style, label=label)
    if replicated and frame.shape[1] > 1:
        std = frame.std(axis=1).fillna(0)
        low, high = (mean - std).clip(lower=bounds[0]), (mean + std).clip(upper=bounds[1])
        ax.fill_between(mean.index, low, high, alpha=0.2, color=colour)
    for epochs, style_of in ((series.stops, STOPPED), (series.pruned, PRUNED)):
        for epoch in epochs:
            ax.plot([epoch], [mean[epoch]], color=colour, linestyle="none", **style_of)


def markers(ax: Axes, stopped: bool, pruned: bool) -> None:
    """Legend entries for the end markers that appear."""
    if stopped:
        ax.plot([], [], color="black", linestyle="none", label="stopped early", **STOPPED)
    if pruned:
        ax.plot([], [], color="black", linestyle="none", label="pruned by the study", **PRUNED)


def colour_bar(series: list[Series], configs: Sequence[str]) -> Any:
    """A ScalarMappable colouring many lines by the one numeric swept value (log-scaled where the values are), or
    None: then each line gets its own colour and style from line_styles."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize

    values = [s.value for s in series]
    if len(configs) != 1 or len(series) <= COLOUR_BAR or not all(is_number(v) for v in values):
        return None
    low, high = min(values), max(values)
    norm = LogNorm(low, high) if log_spaced(values) else Normalize(low, high)
    return ScalarMappable(norm=norm, cmap=colormaps["viridis"])


def line_styles(n: int) -> list[tuple[Any, str]]:
    """n distinct (colour, line style) pairs: tab10's ten colours solid, then dashed, dotted, dash-dotted (tab20's
    colours beyond 40 lines)."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 40 else "tab20"].colors  # type: ignore[attr-defined]
    return [(palette[i % len(palette)], LINE_STYLES[(i // len(palette)) % len(LINE_STYLES)]) for i in range(n)]


def place_legend(ax: Axes, with_lines: bool = True) -> None:
    """The legend inside the axes when short, else beside them (never over the curves); none when empty."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) <= INSIDE or not with_lines:
        ax.legend(fontsize="x-small")
    else:
        ax.legend(
            fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1), ncol=1 + len(handles) // 30, handlelength=3
        )


# -- a metric against one swept value --


def value_vs_key(
    started: pd.DataFrame,
    configs: Sequence[str],
    key: str,
    column: str,
    higher: bool | None,
    log: bool,
    stem: Path,
    inline: bool,
) -> list[Path]:
    """`column` (best_<metric>, or at_best_<metric>) of each run against `key`: the runs as points (pruned ones ▼),
    and lines only through runs that differ in `key` alone (pruned ones left out), one per combination of the other
    swept values, their replicates averaged (±1 std band). Never a mean over runs that differ in another value."""
    import matplotlib.pyplot as plt

    if column not in started or key not in started or not pd.api.types.is_numeric_dtype(started[key]):
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    others = [k for k in configs if k != key]
    ended = started[started["status"] != "pruned"]  # a pruned run's best is not comparable: a point, on no line
    groups = list(ended.groupby(others, dropna=False, sort=True)) if others else [((), ended)]
    lines = [(name, g) for name, g in groups if g[key].nunique() > 1]
    drawn = len(lines) <= 10 and bool(lines)  # more would be noise: the points alone
    styles = line_styles(len(lines))
    bounds = metric_bounds(column, list(started[column].dropna()))
    for (name, group), (colour, style) in zip(lines if drawn else [], styles, strict=False):
        label = ", ".join(f"{short(k)}={v}" for k, v in zip(others, tuple_of(name), strict=True))
        replicates = len(group) > group[key].nunique()
        mean_line(
            ax, group, key, column, bounds, (colour, style), label or ("mean over replicates" if replicates else None)
        )
    points(ax, started, key, column)
    if log:
        ax.set_xscale("log")
    arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
    metric = column.removeprefix("at_best_").removeprefix("best_")
    what = (
        f"{metric} at each run's selected checkpoint" if column.startswith("at_best_") else f"best {metric} of each run"
    )
    ax.set(xlabel=key, ylabel=f"{column}{arrow}", title=f"{what} vs {short(key)}")
    place_legend(ax)
    return save(fig, stem, inline)


def mean_line(
    ax: Axes,
    group: pd.DataFrame,
    key: str,
    column: str,
    bounds: tuple[float, float],
    look: tuple[Any, str],
    label: str | None,
) -> None:
    """The mean of `column` at each value of `key` over the group's runs (replicates), ±1 std where there are
    several; `look`: (colour, line style)."""
    colour, style = look
    stats = group.groupby(key)[column].agg(["mean", "std"]).sort_index()
    ax.plot(stats.index, stats["mean"], color=colour, linestyle=style, label=label)
    if stats["std"].notna().any():
        std = stats["std"].fillna(0)
        low, high = (stats["mean"] - std).clip(lower=bounds[0]), (stats["mean"] + std).clip(upper=bounds[1])
        ax.fill_between(stats.index, low, high, color=colour, alpha=0.15)


def points(ax: Axes, started: pd.DataFrame, key: str, column: str) -> None:
    pruned = started["status"] == "pruned"
    ax.scatter(started.loc[~pruned, key], started.loc[~pruned, column], color="black", alpha=0.6, s=16, label="runs")
    if pruned.any():
        ax.scatter(started.loc[pruned, key], started.loc[pruned, column], color="grey", marker="v", s=30,
                   label="pruned runs (best before the study stopped them)")  # fmt: skip


# -- shared --


def metric_bounds(metric: str, values: Sequence[float]) -> tuple[float, float]:
    """The range a std band is clipped to: [0, 1] for accuracies and other rates (while every value is in it:
    a percentage is not), else none."""
    name = metric.removeprefix("at_best_").removeprefix("best_")
    finite = [v for v in values if is_number(v)]
    if BOUNDED.search(name) and all(0 <= v <= 1 for v in finite):
        return 0.0, 1.0
    return -math.inf, math.inf


def log_spaced(values: Sequence[Any]) -> bool:
    """Positive values spanning a factor 10 or more (learning rates: 0.001, 0.003, 0.01), or spaced by a constant
    factor rather than a constant step (widths 8, 16, 32): plotted on a log axis."""
    distinct = sorted({float(v) for v in values if is_number(v)})
    if len(distinct) < 2 or distinct[0] <= 0:
        return False
    if distinct[-1] / distinct[0] >= 10:
        return True
    if len(distinct) < 3:
        return False
    steps = [b - a for a, b in zip(distinct, distinct[1:], strict=False)]
    factors = [math.log(b / a) for a, b in zip(distinct, distinct[1:], strict=False)]
    return max(factors) / min(factors) < max(steps) / min(steps)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def tuple_of(name: Any) -> tuple:
    return name if isinstance(name, tuple) else (name,)


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
    for item in re.split(r"[,\s]+|_(?=[A-Za-z][\w.]*=)", label):  # 'lr=0.1_width=8' as 'lr=0.1', 'width=8'
        if not item:
            continue
        value = item.split("=", 1)[-1].split(" ")[0]
        try:
            parts.append((0, float(value), ""))
        except ValueError:
            parts.append((1, math.inf, item))
    return tuple(parts)


def save(fig: Figure, stem: Path, inline: bool) -> list[Path]:
    """PNG and PDF; the whole figure, a legend beside the axes included."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    if inline:
        plt.show()
    plt.close(fig)
    return paths


# -- an Optuna search's additions --


def optuna_report(study: optuna.Study, out: Path, fixed: dict[str, Any], metric: str) -> list[Path]:
    """An optuna_search's additions (src/searches/optuna_search.py): Optuna's optimization history and parameter
    importances (optuna.visualization.matplotlib) as PNG and PDF, and the best trial's bindings, printed and as
    best.gin."""
    from optuna.trial import TrialState

    inline = select_backend()
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    print("study: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    written = optuna_figures(study, out, metric, counts.get("complete", 0), inline)
    if counts.get("complete", 0):
        written.append(best_gin(study, out, fixed))
    for path in written:
        print(f"wrote {path}")
    return written


def optuna_figures(study: optuna.Study, out: Path, metric: str, complete: int, inline: bool) -> list[Path]:
    import warnings

    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as optuna_plots

    written: list[Path] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is marked experimental
        if complete:
            target = f"{metric} (best epoch of each trial)"
            history = cast("Figure", optuna_plots.plot_optimization_history(study, target_name=target).figure)
            written += save(history, out / "optuna_history", inline)
        values = {t.value for t in study.trials if t.value is not None}
        if complete >= 2 and len(values) >= 2:
            evaluator = FanovaImportanceEvaluator(seed=0)  # a random forest: seeded, the same plot every time
            figure = cast("Figure", optuna_plots.plot_param_importances(study, evaluator=evaluator).figure)
            written += save(figure, out / "optuna_importances", inline)
        elif complete >= 2:  # fANOVA has no variance to split (it would raise)
            print("parameter importances: every completed trial has the same value, so no parameter matters yet")
        else:
            print("parameter importances: need at least 2 completed trials")
    return written


def best_gin(study: optuna.Study, out: Path, fixed: dict[str, Any]) -> Path:
    """The best trial's bindings, printed and written to <out>/best.gin (git-ignored)."""
    best = study.best_trial
    lines = [f"{k} = {gin_value(v)}" for k, v in {**best.params, **fixed}.items()]
    path = out / "best.gin"
    header = f"# best trial {best.number} of study {study.study_name!r}: {best.value:.6g}\n"
    path.write_text(header + "\n".join(lines) + "\n")
    print(f"best trial {best.number} ({best.value:.4g}): " + ", ".join(lines[: len(best.params)]) + f"  -> {path}")
    return path
