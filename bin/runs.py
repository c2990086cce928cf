#!/usr/bin/env python
"""bin/runs.py DIR [--csv]: every run under DIR: status, the config that varies, best metrics, age."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli import run_main  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bin/runs.py", description=__doc__)
    parser.add_argument("folder", metavar="DIR", help="a results folder (searched recursively)")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    def main(args):
        from src.errors import UserError
        from src.runs_table import print_frame, runs_table

        if not Path(args.folder).is_dir():
            raise UserError(f"{args.folder!r} is not a folder.")
        table = runs_table(args.folder)
        if table.empty:
            print(f"no runs under {args.folder}")
        elif args.csv:
            table.to_csv(sys.stdout, index=False)
        else:
            print_frame(table, f"{len(table)} runs in {args.folder}")

    sys.exit(run_main(main, parser))
