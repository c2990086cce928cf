"""Experiments: search spaces and `prepare` (one config per point + batch.sh of the unfinished runs). The
`main.py prepare|report` command line shared by every experiment folder is src/cli/experiment.py.

An experiment folder holds `template_config.gin` and a short `main.py` that defines its search spaces:

    GRIDS = {"small": grid({"supervised.lr": [1e-3, 1e-2]}, {"training_loop.n_epochs": 3})}
    sys.exit(experiment_main(Path(__file__).parent, GRIDS))   # from src.cli.experiment

A point is a dict of gin bindings; its config is the template followed by those bindings. An adaptive search, whose
points an Optuna study chooses batch by batch, is `optuna_search` (src/searches/optuna_search.py).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.run import layout
from src.run.status import DONE, status_of
from src.runners.batch import Job, write_batch

Point = dict[str, Any]
REPLICATES = ("training_loop.seed",)  # swept bindings that repeat a configuration: report averages over them


def grid(axes: dict[str, Sequence], fixed: dict[str, Any] | None = None) -> list[Point]:
    """Every combination of the axes' values (first axis slowest), each with the fixed bindings."""
    keys = list(axes)
    return [{**dict(zip(keys, values, strict=True)), **(fixed or {})} for values in itertools.product(*axes.values())]


def random_search(space: dict[str, Any], n: int, seed: int = 0, fixed: dict[str, Any] | None = None) -> list[Point]:
    """n points drawn with `seed`: a list is a choice, ("log", lo, hi) log-uniform, ("uniform", lo, hi) uniform,
    ("int", lo, hi) and ("log_int", lo, hi) integers from lo to hi (both included), uniform or log-uniform."""
    rng = random.Random(seed)

    def draw(spec: list[Any] | tuple[str, float, float]) -> Any:
        if isinstance(spec, list):
            return rng.choice(spec)
        kind, low, high = spec
        if kind == "log":
            return float(f"{10 ** rng.uniform(math.log10(low), math.log10(high)):.3g}")
        if kind == "uniform":
            return float(f"{rng.uniform(low, high):.3g}")
        if kind == "int":
            return rng.randint(int(low), int(high))
        if kind == "log_int":
            return min(max(round(math.exp(rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))), low), high)
        raise ValueError(
            f"unknown distribution {kind!r} (use a list, ('log', lo, hi), ('uniform', lo, hi), ('int', lo, hi) or "
            "('log_int', lo, hi))"
        )

    return [{**{k: draw(v) for k, v in space.items()}, **(fixed or {})} for _ in range(n)]


def gin_value(value: Any) -> str:
    return repr(value)  # Python literals (numbers, 'strings', lists, tuples, True/None) are gin literals


def run_name(point: Point, swept: Sequence[str]) -> str:
    """A readable folder name from the swept values: 'lr=0.001_seed=0'."""
    short = {key: key.rsplit(".", 1)[-1] for key in swept}
    if len(set(short.values())) < len(short):
        short = {key: key for key in swept}
    name = "_".join(f"{short[key]}={point[key]}" for key in swept)
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", name) or "run"


def run_names(points: list[Point], swept: Sequence[str]) -> list[str]:
    """One folder name per point; numbered when the swept values alone do not tell them apart."""
    names = [run_name(point, swept) for point in points]
    return names if len(set(names)) == len(names) else [f"{i:03d}_{n}" for i, n in enumerate(names)]


def swept_keys(points: list[Point]) -> list[str]:
    """The bindings whose value differs between points."""
    return [k for k in points[0] if len({repr(p.get(k)) for p in points}) > 1]


def config_text(template: str, point: Point) -> str:
    lines = [f"{key} = {gin_value(value)}" for key, value in point.items()]
    return template.rstrip() + "\n\n# Point of the search (written by prepare)\n" + "\n".join(lines) + "\n"


@dataclass
class Prepared:
    batch: Path
    todo: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # finished runs whose config differs: kept, not re-run


def experiment_runs_dir(experiment_dir: Path, name: str, results_dir: Path | None = None) -> Path:
    """Where a search's run folders go: <results>/<experiment folder's name>/<search name>/<run>."""
    return (results_dir or layout.results_root()).resolve() / Path(experiment_dir).resolve().name / name


def prepare(
    experiment_dir: Path,
    name: str,
    points: list[Point],
    swept: Sequence[str] | None = None,
    results_dir: Path | None = None,
    names: Sequence[str] | None = None,
) -> Prepared:
    """Write <experiment>/<name>/configs/<run>.gin for every point and <experiment>/<name>/batch.sh of the runs
    not finished. A finished run whose stored config differs from the new one is reported and left alone.
    `names`: the run folders' names (default: from the swept values)."""
    experiment_dir = Path(experiment_dir).resolve()
    swept = list(swept or swept_keys(points))
    out = experiment_dir / name
    configs = out / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    runs = experiment_runs_dir(experiment_dir, name, results_dir)
    template = (experiment_dir / "template_config.gin").read_text()
    prepared = Prepared(batch=out / "batch.sh")
    jobs = []
    for point, run in zip(points, names or run_names(points, swept), strict=True):
        text = config_text(template, point)
        config, run_dir = configs / f"{run}.gin", runs / run
        stored = run_dir / layout.INPUT_CONFIGS / config.name
        if status_of(run_dir) in DONE:
            if stored.is_file() and stored.read_text() != text:
                prepared.changed.append(run)
            else:
                prepared.finished.append(run)
                layout.write_atomic(config, text)
            continue
        layout.write_atomic(config, text)
        prepared.todo.append(run)
        jobs.append(Job((str(run_dir), str(config))))
    title = f"{experiment_dir.name}/{name}: {len(jobs)} of {len(points)} runs to do, results in {runs}"
    write_batch(prepared.batch, jobs, title)
    return prepared
