"""LightningModules chosen by name (src/modules/registry.py). Importing this package imports every module in it, which
registers what it defines: a new file in src/modules/ is registered without any other edit."""

from src.modules.registry import MODULES
from src.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["MODULES"]
