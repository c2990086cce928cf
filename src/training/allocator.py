"""glibc's malloc settings for a training process: freed step buffers are kept for the next step.

glibc (Linux) gives blocks above its mmap threshold straight from the kernel and returns freed heap above its trim
threshold to it. Both start low (128 KiB, 256 KiB) and rise only when a large block is freed, so a process's speed
depended on its history: CIFAR-10 in memory (its 30 MB files read and freed) trained at full speed, the same data
read from files ~13 % slower on 2 CPU cores, every step faulting its activations back in from the kernel (2,000
more page faults a step; bench/README.md, "Data beyond memory"). Fixed at the top of glibc's own dynamic range
instead: blocks up to 32 MiB come from the heap, and up to 64 MiB of freed heap stays with the process.

Left alone where the user chose an allocator (MALLOC_* variables, jemalloc or tcmalloc preloaded) and where there is
no glibc (macOS; musl's mallopt does nothing).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: where its dynamic threshold stops
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc sets with a dynamic threshold that high
CHOSEN_BY_USER = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")


def keep_freed_memory() -> bool:
    """Set the thresholds in this process (forked DataLoader workers inherit them); True if they were set."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in CHOSEN_BY_USER):
        return False
    if "malloc" in os.environ.get("GLIBC_TUNABLES", "") or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False  # glibc.malloc.* tunables; jemalloc, tcmalloc, mimalloc preloaded
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
