#!/usr/bin/env python
"""bin/diff_runs.py RUN_A RUN_B: the gin bindings that differ between two runs, side by side."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli import run_main  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bin/diff_runs.py", description=__doc__)
    parser.add_argument("a", metavar="RUN_A")
    parser.add_argument("b", metavar="RUN_B")

    def main(args):
        import pandas as pd

        from src.runs_table import diff_bindings, print_frame

        rows = diff_bindings(args.a, args.b)
        if not rows:
            print("same operative config")
        else:
            print_frame(pd.DataFrame(rows, columns=["binding", args.a, args.b]), f"{len(rows)} bindings differ")

    sys.exit(run_main(main, parser))
