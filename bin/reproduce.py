#!/usr/bin/env python
"""bin/reproduce.py RUN [--into DIR] [--tolerance T]: train a run again from its folder and compare. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.runs import reproduce_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(reproduce_main())
