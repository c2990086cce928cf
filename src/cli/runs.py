"""bin/runs.py, bin/diff_runs.py and bin/reproduce.py: argument parsing; the work is src/analysis/'s."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from src.cli.common import Parser, run_main
from src.errors import UserError


def runs_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/runs.py", description="Every run under DIR: status, the config that varies, best metrics, age."
    )
    parser.add_argument("folder", metavar="DIR", help="a results folder (searched recursively)")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    def main(args: argparse.Namespace) -> None:
        from src.analysis.runs_table import runs_table, short_headers
        from src.analysis.tables import print_frame

        if not Path(args.folder).is_dir():
            raise UserError(f"{args.folder!r} is not a folder.")
        table = runs_table(args.folder)
        if table.empty:
            print(f"no runs under {args.folder}")
        elif args.csv:
            table.to_csv(sys.stdout, index=False)
        else:
            # on a narrow terminal the age, then the bindings from the right are left out before the metrics
            keep = ["run", "status", *table.attrs["metrics"]]
            table.columns = headers = short_headers(table.columns)
            print_frame(table, f"{len(table)} runs in {args.folder}", keep=[h for h in headers if h in keep])

    return run_main(main, parser, argv)


def diff_runs_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/diff_runs.py",
        description="The gin bindings and the environment (commit, host, device, packages) that differ between two "
        "runs, side by side.",
    )
    parser.add_argument("a", metavar="RUN_A")
    parser.add_argument("b", metavar="RUN_B")

    def main(args: argparse.Namespace) -> None:
        import pandas as pd

        from src.analysis.runs_table import diff_bindings, diff_environment, path_labels
        from src.analysis.tables import print_frame

        rows = diff_bindings(args.a, args.b)
        if not rows:
            print("same operative config")
        labels = path_labels([args.a, args.b])
        if rows:
            shown = [(key, *[v if v == "<unset>" else repr(v) for v in values]) for key, *values in rows]  # as in gin
            columns = ["binding", *labels]
            print_frame(pd.DataFrame(shown, columns=columns), f"{len(rows)} bindings differ", keep=columns)
        rows = diff_environment(args.a, args.b)
        if not rows:
            print("same environment (git commit and diff, host, device, Python, packages)")
        else:
            columns = ["environment", *labels]
            print_frame(pd.DataFrame(rows, columns=columns), f"{len(rows)} environment differences", keep=columns)

    return run_main(main, parser, argv)


def reproduce_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/reproduce.py",
        description="Train a run again from its folder alone (commit, diff, configs, bindings) in a clean checkout, "
        "and compare: exit code 0 only when the results are identical.",
        epilog="example: bin/reproduce.py results/cnn --into /tmp/cnn.repro",
    )
    parser.add_argument("run", metavar="RUN", help="a finished run folder")
    parser.add_argument("--into", metavar="DIR", help="the new run folder (default: RUN.repro)")
    parser.add_argument(
        "--tolerance",
        metavar="T",
        type=float,
        default=0.0,
        help="largest absolute difference that counts as equal (default 0: bitwise; GPU runs need more, e.g. 1e-4)",
    )
    parser.add_argument("--repo", metavar="DIR", help="the git repository holding the run's commit (default: this one)")

    def main(args: argparse.Namespace) -> int:
        from src.analysis.reproduce import print_result, reproduce

        plan, found = reproduce(args.run, into=args.into, tolerance=args.tolerance, repo=args.repo)
        return print_result(found, plan, args.tolerance)

    return run_main(main, parser, argv)
