"""The registry of LightningModules (the training logic around a model): `training_loop.module = 'supervised'`.

The contract. A module builder (usually the LightningModule class) receives the model as `model=` plus its own
gin-configurable parameters, and:
- implements Lightning's training/validation/test steps (and `configure_optimizers`);
- logs its metrics once per epoch as `<stage>_<name>` with stage in train, valid, test (`valid_loss`, `test_mae`);
- declares them with their direction, as attributes (class or instance):

      metric_directions = {"loss": "min", "acc": "max"}  # every metric it logs: better is lower (min) or higher
      main_metric = "acc"  # the one that picks best.ckpt: `valid_<main_metric>`

The training loop records the declared directions in the run folder (metrics.json), so that analysis code ranks runs
without importing training code, and the checkpoint monitor defaults to `valid_<main_metric>`. A module without
declarations is taken to log `loss` (min). Subclassing `EpochMetricsModule` (src/modules/epoch_metrics.py) gives
cheap per-epoch means over examples and exact mid-epoch resume of them; any LightningModule works.
"""

from src.registry import Registry

MODULES = Registry("module", offers={"model": "the run (training_loop.model): bind that instead"})
