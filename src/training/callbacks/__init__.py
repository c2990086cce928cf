"""The callbacks every run has: they make the run folder what it is (checkpoints, history.csv, meta.json,
preemption, ...). Registered by name like src/callbacks/'s (importing this package imports every module in it), so
their options are gin bindings (`checkpoint.monitor`), but not for choosing: src/training_loop.py always adds them."""

from src.registry import import_submodules

import_submodules(__name__, __path__)
