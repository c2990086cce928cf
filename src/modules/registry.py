"""The registry of LightningModules (the training logic around a model): `training_loop.module = 'supervised'`."""

from src.registry import Registry

MODULES = Registry("module")
