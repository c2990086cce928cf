#!/usr/bin/env python
"""bin/evaluate.py RUN_DIR [--checkpoint best|last]: test a trained run. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.training import evaluate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(evaluate_main())
