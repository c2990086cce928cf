"""`main.py prepare|report [--name N]`: the command line every experiment folder's main.py calls.

SEARCHES = {"small": grid({"supervised.lr": [1e-3, 1e-2]}, {"training_loop.n_epochs": 3}),
            "bayes": optuna_search({"supervised.lr": ("log", 1e-4, 0.3)}, n_trials=12, batch_size=4)}
sys.exit(experiment_main(Path(__file__).parent, SEARCHES))
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from src.cli.common import Parser, run_main
from src.errors import UserError, unknown
from src.searches.experiment import REPLICATES, Point, prepare

if TYPE_CHECKING:
    from src.searches.optuna_search import OptunaSearch


def experiment_main(
    experiment_dir: Path,
    searches: dict[str, list[Point] | OptunaSearch],
    swept: Sequence[str] | None = None,
    metric: str | None = None,
    replicates: Sequence[str] = REPLICATES,
    argv: Sequence[str] | None = None,
) -> int:
    """`metric`: what report ranks by (default: the module's main metric, `valid_<main_metric>`); `replicates`:
    swept bindings that repeat a configuration rather than change it (seeds), averaged over by report."""
    parser = Parser(prog=f"{Path(experiment_dir).name}/main.py")
    parser.add_argument("command", choices=["prepare", "report"])
    parser.add_argument("--name", default=next(iter(searches)), help=f"search space: {', '.join(searches)}")
    parser.add_argument(
        "--plot",
        action="append",
        default=[],
        metavar="METRIC",
        help="report: plot this recorded metric too (e.g. valid_loss; repeatable): its learning curves, and its value "
        "at each run's selected checkpoint against each swept value",
    )

    def main(args: argparse.Namespace) -> None:
        if args.name not in searches:
            raise UserError(unknown("search", args.name, searches))
        points = searches[args.name]
        if args.command == "prepare":
            from src.searches.bindings import check_bindings  # imports the training code: only to prepare

            if not isinstance(points, list):
                points.distributions()  # the space's syntax first: its own messages say what Optuna can express
            check_bindings(args.name, bindings_of(points))
        if not isinstance(points, list):  # adaptive (src/searches/optuna_search.py): its points come from its study
            return adaptive(points, Path(experiment_dir), args.name, args.command, metric, replicates, args.plot)
        if args.command == "prepare":
            done = prepare(Path(experiment_dir), args.name, points, swept)
            for run in done.changed:
                print(f"changed: {run} finished with another config; kept as is (delete its folder to re-run)")
            print(f"{len(done.todo)} to run, {len(done.finished)} finished, {len(done.changed)} changed: {done.batch}")
        else:
            from src.searches.report import report  # pandas, matplotlib: only when reporting

            report(Path(experiment_dir), args.name, points, swept, metric, replicates, plots=args.plot)

    return run_main(main, parser, argv)


def bindings_of(search: list[Point] | OptunaSearch) -> list[tuple[str, object]]:
    """Every (key, value) a search binds; of an adaptive search's space, each choice or both ends of a range (the
    checks a run applies to its values, at the values furthest apart)."""
    if isinstance(search, list):
        return [item for point in search for item in point.items()]
    space = []
    for key, spec in search.space.items():  # a malformed spec: its key only here, the spec checked by prepare
        values = (
            spec if isinstance(spec, list) else [*spec[1:]] if isinstance(spec, tuple) and len(spec) == 3 else [None]
        )
        space += [(key, value) for value in values]
    return [*space, *search.fixed.items()]


def adaptive(
    search: OptunaSearch,
    experiment_dir: Path,
    name: str,
    command: str,
    metric: str | None,
    replicates: Sequence[str],
    plots: Sequence[str] = (),
) -> None:
    if command == "report":
        search.report(experiment_dir, name, metric, replicates, plots)
        return
    done = search.prepare(experiment_dir, name)
    for state, runs in (("complete", done.told.complete), ("pruned", done.told.pruned), ("failed", done.told.failed)):
        if runs:
            print(f"told the study {len(runs)} {state}: {', '.join(runs)}")
    for run in done.told.failed:
        print(f"  failed: {run}: {done.told.reasons.get(run) or first_line(experiment_dir, name, run)}")
    for number in done.told.discarded:
        print(f"discarded trial {number}: a prepare was killed while asking for it (no run folder; a new trial "
              "takes its place)")  # fmt: skip
    if not done.todo:
        print(f"the budget of {search.n_trials} trials is spent: nothing to run ({done.batch} is empty)")
        return
    print(
        f"{len(done.asked)} new trials, {len(done.todo)} to run ({done.budget_left} left in the budget of "
        f"{search.n_trials}): {done.batch}; study {done.study}"
    )


def first_line(experiment_dir: Path, name: str, run: str) -> str:
    from src.run import layout, reading
    from src.searches.experiment import experiment_runs_dir

    failed = experiment_runs_dir(experiment_dir, name) / run / layout.FAILED
    text = reading.read_text(failed, 4096).strip() if failed.is_file() else ""
    return text.splitlines()[0] if text else "(no reason recorded)"
