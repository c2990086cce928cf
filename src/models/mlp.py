"""A multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from src.models.registry import MODELS


@MODELS.register("mlp")
def mlp(
    input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (256, 256), dropout: float = 0.0
) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)
