#!/usr/bin/env python
"""bin/download_data.py NAME: download and verify a data set into DATA_DIR. See src/cli/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.training import download_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(download_main())
