"""Data sets chosen by name (src/data/registry.py). Importing this package imports every module in it, which
registers what it defines: a new file in src/data/ is registered without any other edit."""

from src.data.registry import DATA
from src.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["DATA"]
