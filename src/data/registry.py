"""The registry of data sets: `training_loop.data = 'digits'`."""

from src.registry import Registry

DATA = Registry("data set")
