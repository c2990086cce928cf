#!/usr/bin/env python
"""bin/run_local.py BATCH [--jobs N]: run a batch file's unfinished jobs N at a time on this machine."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli import run_main  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bin/run_local.py", description=__doc__)
    parser.add_argument("batch", metavar="BATCH", help="a batch.sh written by an experiment's `main.py prepare`")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="jobs at a time (default 2)")
    parser.add_argument("--threads", type=int, help="CPU threads per job (default: cores // jobs)")

    def main(args):
        from src.runners.local import run_local

        return run_local(args.batch, jobs=args.jobs, threads=args.threads)

    sys.exit(run_main(main, parser))
