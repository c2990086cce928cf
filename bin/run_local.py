#!/usr/bin/env python
"""bin/run_local.py BATCH [--jobs N] [--gpus 0,2 --gpus-per-job K --jobs-per-gpu M] [--cold]: run a batch file's
unfinished jobs N at a time on this machine, each on its own free GPU(s) where there are GPUs. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.runners import run_local_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_local_main())
