"""`bin/runs.py DIR`: one row per run found under DIR (status, the config that varies, best metrics, age),
and `bin/diff_runs.py A B`: the gin bindings and the environment (commit, host, device, packages) that differ
between two runs."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from src.config.bindings import same_kind
from src.results import load_C, load_runs
from src.run import environment, layout, metric_directions, reading

ALWAYS = ["training_loop.model", "training_loop.data"]
ALWAYS_METRICS = ["epochs", "stop_reason", "stop_epoch"]


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The metric columns worth showing, in the order their runs are listed: `best_<main>` of every main metric the
    runs recorded (metrics.json), `best_valid_loss`, then the matching `eval_test_*`. A run without a readable
    metrics.json contributes each `best_valid_*` it has."""
    mains: list[str] = []
    for _, row in runs.iterrows():
        if row["status"] == "damaged":  # its files are not read again
            continue
        main = metric_directions.main_metric(row["run"])
        found = [main] if main is not None else [c.removeprefix("best_") for c in runs if c.startswith("best_valid_")]
        mains += [m for m in found if m not in mains and pd.notna(row.get(f"best_{m}"))]
    if "valid_loss" not in mains:
        mains.append("valid_loss")
    best = [f"best_{m}" for m in mains]
    tests = [f"eval_test_{m.removeprefix('valid_')}" for m in mains]
    return [c for c in [*ALWAYS_METRICS, *best, *tests] if c in runs]


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
    """Runs under `folder` with the columns worth showing: the bindings that vary between runs come first, then the
    metrics (`metric_columns`, also in `table.attrs["metrics"]`)."""
    runs = load_runs(folder)
    if runs.empty:
        return runs
    now = time.time()
    config = [c for c in runs.columns if "." in c and c not in ALWAYS and c != "run"]
    varying = [c for c in config if runs[c].map(lambda v: repr(same_kind(v))).nunique() > 1]  # ['a'] is ('a',)
    metrics = metric_columns(runs)
    columns = ["run", "status", *[c for c in ALWAYS if c in runs], *varying, *metrics]
    table = runs[columns].copy()
    table.attrs["metrics"] = metrics  # what a narrow terminal keeps after run and status
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


def describe_diff(run: str | Path) -> str:
    """git_diff.patch in a few words: none, or its size and a hash to tell two apart."""
    path = Path(run) / layout.GIT_DIFF
    text = reading.read_text(path) if path.is_file() else ""
    if not text.strip():
        return "none" if path.is_file() else environment.MISSING
    return f"{len(text.splitlines())} lines, sha1 {hashlib.sha1(text.encode()).hexdigest()[:10]}"


def diff_environment(a: str | Path, b: str | Path) -> list[tuple[str, object, object]]:
    """(what, in a, in b) for what differs in the environment: git commit, uncommitted changes (git_diff.patch),
    host, device, Python and every package version (only the few in meta.json for runs without packages.txt)."""
    ma, mb = layout.read_meta(a), layout.read_meta(b)
    missing = environment.MISSING
    rows: list[tuple[str, object, object]] = [
        (label, ma.get(key, missing), mb.get(key, missing))
        for label, key in (("git commit", "git_commit"), ("host", "hostname"), ("device", "device"))
    ]
    rows.append((layout.GIT_DIFF, describe_diff(a), describe_diff(b)))
    for label, key in (("threads", "threads"), ("deterministic", "deterministic")):  # of the first attempt
        first = [(m.get("attempts") or [{}])[0].get(key, missing) for m in (ma, mb)]
        shown = [json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in first]
        rows.append((label, shown[0], shown[1]))
    rows.append(
        ("python", ma.get("versions", {}).get("python", missing), mb.get("versions", {}).get("python", missing))
    )
    (pa, complete_a), (pb, complete_b) = environment.recorded_packages(a), environment.recorded_packages(b)
    partial = [packages for packages, complete in ((pa, complete_a), (pb, complete_b)) if not complete]
    names = set().union(*partial) if partial else None
    rows += [(f"package {name}", va, vb) for name, va, vb in environment.package_differences(pa, pb, names)]
    return [row for row in rows if row[1] != row[2]]


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
