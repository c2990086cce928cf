"""Data sets chosen by name. Importing this package registers every data set."""

from src.data import cifar10, diabetes, digits  # noqa: F401  (registration)
from src.data.registry import DATA

__all__ = ["DATA"]
