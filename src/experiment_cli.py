"""`main.py prepare|report [--name N]`: the command line every experiment folder's main.py calls.

SEARCHES = {"small": grid({"supervised.lr": [1e-3, 1e-2]}, {"training_loop.n_epochs": 3})}
sys.exit(experiment_main(Path(__file__).parent, SEARCHES))
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from src.cli import Parser, run_main
from src.errors import UserError
from src.experiment import REPLICATES, Point, prepare


def experiment_main(
    experiment_dir: Path,
    searches: dict[str, list[Point]],
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

    def main(args: argparse.Namespace) -> None:
        if args.name not in searches:
            raise UserError(f"Unknown search {args.name!r}. Valid names: {', '.join(searches)}.")
        points = searches[args.name]
        if args.command == "prepare":
            done = prepare(Path(experiment_dir), args.name, points, swept)
            for run in done.changed:
                print(f"changed: {run} finished with another config; kept as is (delete its folder to re-run)")
            print(f"{len(done.todo)} to run, {len(done.finished)} finished, {len(done.changed)} changed: {done.batch}")
        else:
            from src.report import report  # pandas, matplotlib: only when reporting

            report(Path(experiment_dir), args.name, points, swept, metric, replicates)

    return run_main(main, parser, argv)
