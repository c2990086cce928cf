"""LightningModules chosen by name. Importing this package registers every module."""

from src.modules import supervised  # noqa: F401  (registration)
from src.modules.registry import MODULES

__all__ = ["MODULES"]
