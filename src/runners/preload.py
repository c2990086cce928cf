"""What the warm-start server (src/runners/warm.py) imports once, before it forks a child per job: the heavy
third-party packages a training imports, ~5 s a process on 2 CPU cores. Never the template's own code (src/): each
job imports that from disk, as bin/train.py does, so that an edit made during a sweep reaches the jobs started after
it, and meta.json's git diff describes the code that ran.

The server must not initialise CUDA: a forked child cannot use a CUDA context made before the fork, and
CUDA_VISIBLE_DEVICES (each job's own) is read only when CUDA initialises. Importing these packages does not; the
check below stops the server (the runner then starts its jobs cold) if a version ever does.
"""

import gc

import gin  # noqa: F401
import pytorch_lightning  # noqa: F401
import torch

try:
    import torch.utils.tensorboard  # noqa: F401  (the default logger's; absent without the tensorboard package)
except ImportError:
    pass

if torch.cuda.is_initialized():
    raise RuntimeError("importing torch and Lightning initialised CUDA: jobs cannot be forked from this process")

# Everything imported here lives as long as the server: the collector need never traverse it again, neither in the
# server (whose exit, which the runner waits for, takes ~1.2 s less) nor in the jobs (whose collections would
# otherwise write to, and so copy, the pages they share with the server). Python's documentation recommends this
# before forking without exec (gc.freeze).
gc.freeze()
