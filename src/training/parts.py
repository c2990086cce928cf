"""The one place that builds a run's parts by name: data module, model and module (training, `load_model`,
`load_data` and `bin/evaluate.py` all call `build_parts`).

The model builder receives the data's declared `model_kwargs` (src/data/registry.py), the module builder receives the
model (src/modules/registry.py); each also takes its own gin-configured parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from torch import nn


@dataclass
class Parts:
    data: pl.LightningDataModule
    model: nn.Module
    module: pl.LightningModule


def model_kwargs(datamodule: Any) -> dict[str, Any]:
    """What the data declares for its model: `model_kwargs`, else the `input_shape` / `n_outputs` attributes it
    has."""
    declared = getattr(datamodule, "model_kwargs", None)
    if declared is not None:
        return dict(declared)
    found = {"input_shape": getattr(datamodule, "input_shape", None)}
    found["n_outputs"] = getattr(datamodule, "n_outputs", None)
    return {k: v for k, v in found.items() if v is not None}


def build_parts(data: str, model: str, module: str, seed: int) -> Parts:
    """Build the named parts (gin must hold the run's config). Loads no data: see InMemoryDataModule."""
    from src.data import DATA
    from src.models import MODELS
    from src.modules import MODULES

    datamodule = DATA.build(data, seed=seed)
    net = MODELS.build(model, **model_kwargs(datamodule))
    return Parts(datamodule, net, MODULES.build(module, model=net))
