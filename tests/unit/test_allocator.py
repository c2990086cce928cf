"""A training process keeps the memory its steps free (src/training/allocator.py): the buffers of one step are
reused by the next instead of coming back from the kernel as fresh pages."""

import subprocess
import sys

import pytest

from src.training import allocator
from tests.helpers import ROOT

STEPS = """
import os, resource, sys
import numpy as np
from src.training.allocator import keep_freed_memory
if sys.argv[1] in ("keep", "worker"):
    assert keep_freed_memory()
if sys.argv[1] == "worker" and os.fork() != 0:  # measured in a forked child (a DataLoader worker)
    sys.exit(os.waitstatus_to_exitcode(os.wait()[1]))
def step():  # activations of a few MB each, all freed at the step's end (as after backward)
    buffers = [np.ones(2**17 * (1 + i % 4)) for i in range(8)]
    del buffers
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_steps_reuse_freed_buffers_instead_of_faulting_them_back_in_but_workers_do_not_keep_them():
    def page_faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", STEPS, mode], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    default, kept = page_faults("default"), page_faults("keep")
    assert default > 20 * 2_000  # glibc's defaults: ~20 MB of fresh pages every step
    assert kept < 500
    # a worker forked from the training process goes back to glibc's defaults: it gives freed memory back
    assert page_faults("worker") > 20 * 2_000


def test_an_allocator_the_user_chose_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert allocator.keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert allocator.keep_freed_memory() is False
