"""The registry of models: `training_loop.model = 'cnn'`.

A model builder takes `input_shape` (C, H, W) and `n_classes` from the data set, plus its own
gin-configurable parameters, and returns a plain `nn.Module` mapping a batch of inputs to logits.
"""

from src.registry import Registry

MODELS = Registry("model")
