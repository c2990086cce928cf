"""Callbacks chosen by name (src/callbacks/registry.py). Importing this package imports every module in it, which
registers what it defines: a new file in src/callbacks/ is registered without any other edit."""

from src.callbacks.registry import CALLBACKS
from src.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["CALLBACKS"]
