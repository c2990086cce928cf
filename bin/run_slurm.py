#!/usr/bin/env python
"""bin/run_slurm.py BATCH [--max-jobs K] [--partition P --time T ...]: submit unfinished jobs as one SLURM job
array. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.runners import run_slurm_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_slurm_main())
