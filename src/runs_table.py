"""`bin/runs.py DIR`: one row per run found under DIR (status, the config that varies, best metrics, age),
and `bin/diff_runs.py A B`: the gin bindings that differ between two runs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from src import run_dir as layout
from src.results import load_C, load_runs

ALWAYS = ["training_loop.model", "training_loop.data"]
METRICS = ["epochs", "best_valid_acc", "best_valid_loss", "eval_test_acc"]


def age(run: str, now: float) -> str:
    """Time since the run last wrote anything we track (history, heartbeat, finish)."""
    stamps = [
        p.stat().st_mtime
        for name in (layout.FINISHED, layout.HEARTBEAT, layout.HISTORY, layout.CONFIG)
        if (p := Path(run) / name).exists()
    ]
    seconds = now - max(stamps) if stamps else float("nan")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s" if seconds == seconds else "-"


def runs_table(folder: str | Path) -> pd.DataFrame:
    """Runs under `folder` with the columns worth showing: the bindings that vary between runs come first."""
    runs = load_runs(folder)
    if runs.empty:
        return runs
    now = time.time()
    config = [c for c in runs.columns if "." in c and c not in ALWAYS and c != "run"]
    varying = [c for c in config if runs[c].astype(str).nunique() > 1]
    columns = ["run", "status", *[c for c in ALWAYS if c in runs], *varying, *[m for m in METRICS if m in runs]]
    table = runs[columns].copy()
    table["age"] = [age(r, now) for r in runs["run"]]
    root = Path(folder).resolve()
    table["run"] = [
        str(Path(r).resolve().relative_to(root)) if Path(r).resolve().is_relative_to(root) else r for r in table["run"]
    ]
    return table


def diff_bindings(a: str | Path, b: str | Path) -> list[tuple[str, object, object]]:
    """(binding, value in a, value in b) for every binding that differs, missing values as '<unset>'."""
    ca, cb = load_C(a), load_C(b)
    return [
        (k, ca.get(k, "<unset>"), cb.get(k, "<unset>"))
        for k in sorted(set(ca) | set(cb))
        if ca.get(k, "<unset>") != cb.get(k, "<unset>")
    ]


def short_headers(columns: Sequence[str]) -> list[str]:
    """Bindings by their parameter name alone ('supervised.lr' -> 'lr') where that is unambiguous."""
    short = [str(c).rsplit(".", 1)[-1] for c in columns]
    return [s if short.count(s) == 1 else str(c) for s, c in zip(short, columns, strict=True)]


def path_labels(paths: Sequence[str | Path]) -> list[str]:
    """The shortest path suffix that tells each path from the others ('results/a/lr=0.1', 'results/b/lr=0.1' ->
    'a/lr=0.1', 'b/lr=0.1'); the paths as given if they are the same folder."""
    parts = [Path(p).resolve().parts for p in paths]
    labels = [str(p) for p in paths]
    for k in range(1, max(map(len, parts)) + 1):
        suffixes = [str(Path(*p[-k:])) for p in parts]
        if len(set(suffixes)) == len(suffixes):
            return suffixes
    return labels
