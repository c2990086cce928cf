"""glibc's malloc settings for a training process: freed step buffers are kept for the next step.

glibc (Linux) gives blocks above its mmap threshold straight from the kernel and returns freed heap above its trim
threshold to it. Both start low (128 KiB, 256 KiB) and rise only when a large block is freed, so a process's speed
depended on its history: CIFAR-10 in memory (its 30 MB files read and freed) trained at full speed, the same data
read from files ~13 % slower on 2 CPU cores, every step faulting its activations back in from the kernel (2,000
more page faults a step; bench/README.md, "Data beyond memory"). Fixed at the top of glibc's own dynamic range
instead: blocks up to 32 MiB come from the heap, and up to 64 MiB of freed heap stays with the process.

A child forked from it (a DataLoader worker) goes back to glibc's starting values: a worker only reads, and would
otherwise keep up to 64 MiB of freed heap each (2 workers of the file-backed module grew by ~80 MB over a 10x longer
epoch, the whole training's peak memory by 11-13 % instead of 0-6 %).

Left alone where the user chose an allocator (MALLOC_* variables, jemalloc or tcmalloc preloaded) and where there is
no glibc (macOS; musl's mallopt does nothing).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: where its dynamic threshold stops
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc sets with a dynamic threshold that high
GLIBC_MMAP_THRESHOLD = GLIBC_TRIM_THRESHOLD = 128 * 2**10  # DEFAULT_MMAP_THRESHOLD_MIN, DEFAULT_TRIM_THRESHOLD
CHOSEN_BY_USER = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")


def keep_freed_memory() -> bool:
    """Set the thresholds in this process (a child it forks goes back to glibc's starting ones); True if set."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in CHOSEN_BY_USER):
        return False
    if "malloc" in os.environ.get("GLIBC_TUNABLES", "") or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False  # glibc.malloc.* tunables; jemalloc, tcmalloc, mimalloc preloaded
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1):
        return False
    global _children_get_defaults
    if not _children_get_defaults:
        os.register_at_fork(after_in_child=lambda: glibc_defaults(mallopt))
        _children_get_defaults = True
    return True


_children_get_defaults = False  # (a fork handler cannot be removed: registered once per process)


def glibc_defaults(mallopt: Any) -> None:
    """glibc's starting thresholds (fixed there: its dynamic rise stays off)."""
    mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)
