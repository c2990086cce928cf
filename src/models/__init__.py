"""Models chosen by name. Importing this package registers every model."""

from src.models import autoencoder, cnn, mlp, resnet  # noqa: F401  (registration)
from src.models.registry import MODELS

__all__ = ["MODELS"]
