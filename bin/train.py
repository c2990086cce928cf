#!/usr/bin/env python
"""bin/train.py SAVE_DIR CONFIGS [-b BINDINGS]: train (or resume) a run. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.training import train_command  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_command())
