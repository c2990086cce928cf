#!/usr/bin/env python
"""bin/diff_runs.py RUN_A RUN_B: the gin bindings that differ between two runs. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.runs import diff_runs_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(diff_runs_main())
