#!/usr/bin/env python
"""bin/find_lr.py CONFIGS [-b BINDINGS] [--out DIR]: the learning-rate range test. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.training import find_lr_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(find_lr_main())
