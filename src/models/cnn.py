"""A small CNN: `n_blocks` of (conv-BN-ReLU, conv-BN-ReLU, 2x2 max-pool), global average pool, linear."""

from __future__ import annotations

from torch import nn

from src.models.registry import MODELS


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@MODELS.register("cnn")
def cnn(
    input_shape: tuple[int, ...], n_outputs: int, width: int = 32, n_blocks: int = 2, dropout: float = 0.0
) -> nn.Module:
    layers: list[nn.Module] = []
    c_in = input_shape[0]
    for i in range(n_blocks):
        c_out = width * 2**i
        layers += conv_bn_relu(c_in, c_out) + conv_bn_relu(c_out, c_out) + [nn.MaxPool2d(2)]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_outputs)]
    return nn.Sequential(*layers)
