"""The registry of models: `training_loop.model = 'cnn'`.

The contract. A model builder returns a plain `nn.Module`. It receives, by keyword, those of the data set's
declared `model_kwargs` that its signature names (the shipped data sets declare `input_shape` and `n_outputs`: the
number of classes of a classifier, of values of a regression), plus its own gin-configurable parameters. A parameter
without a default that the data does not declare (and gin does not bind) is a one-line error before training.
What the model maps a batch's inputs to is up to the module that trains it (logits, values, a reconstruction...).
"""

from src.registry import Registry

DECLARED = "the data (its model_kwargs): remove the binding"

MODELS = Registry(
    "model",
    offers={k: DECLARED for k in ("input_shape", "n_outputs")},  # what the shipped data sets declare
    offered_by=DECLARED,
)
