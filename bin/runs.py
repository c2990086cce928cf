#!/usr/bin/env python
"""bin/runs.py DIR [--csv]: every run under DIR: status, the config that varies, best metrics, age. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.runs import runs_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(runs_main())
