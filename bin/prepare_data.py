#!/usr/bin/env python
"""bin/prepare_data.py NAME [--toy] [--out FOLDER] [--force]: write a file-backed or streaming data set's folder.
See src/cli/data.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli.data import prepare_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(prepare_main())
