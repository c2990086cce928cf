"""Models chosen by name (src/models/registry.py). Importing this package imports every module in it, which
registers what it defines: a new file in src/models/ is registered without any other edit."""

from src.models.registry import MODELS
from src.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["MODELS"]
