"""A fully connected autoencoder: input -> `hidden` -> `latent` -> `hidden` -> a reconstruction of the input's shape."""

from __future__ import annotations

import math

import torch
from torch import nn

from src.models.registry import MODELS


class Autoencoder(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], latent: int, hidden: int) -> None:
        super().__init__()
        size = math.prod(input_shape)
        self.input_shape = tuple(input_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).view(-1, *self.input_shape)


@MODELS.register("autoencoder")
def autoencoder(input_shape: tuple[int, ...], latent: int = 16, hidden: int = 128) -> nn.Module:
    """Needs only the data's input shape: it predicts the input, whatever the data's labels."""
    return Autoencoder(input_shape, latent, hidden)
