"""SLURM's preemption warning (SIGUSR1), recorded as a flag from the moment a training process starts listening:
a warning that comes during imports, data loading or the final test is not lost and does not kill the process
(SIGUSR1's default action). src/training/callbacks/preemption.py acts on the flag at the next batch end or epoch start.

Imports nothing heavy: bin/train.py listens before it imports torch.
"""

from __future__ import annotations

import signal
import threading

SIGNAL = signal.SIGUSR1
# Set by bin/run_slurm.py's task script, which requeues the task itself once all of its processes have stopped
# (a requeue from inside rank 0 would kill the other processes while they still shut down).
REQUEUED_BY_TASK_SCRIPT = "REQUEUED_BY_TASK_SCRIPT"
_warned = threading.Event()


def listen() -> None:
    """Record SIGUSR1 from now on (main thread only: Python runs signal handlers there)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(SIGNAL, lambda signum, frame: _warned.set())


def warned() -> bool:
    return _warned.is_set()


def clear() -> None:
    """The warning was acted on (the run stopped): a later training in the same process starts unwarned."""
    _warned.clear()
