#!/usr/bin/env python
"""Memory: peak RSS (the process's own ru_maxrss, from os.wait4) of a digits training (bin/train.py
configs/cnn.gin, 10 epochs) vs the floor `python -c "import torch, pytorch_lightning"`, alternating; and, for
scale, a CIFAR-10-sized training (fake 50,000 + 10,000 images, 2 x 25 batches) which holds 184 MB of uint8 images.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CIFAR_BINDINGS,
    PY,
    ROOT,
    alternate,
    env,
    fake_cifar,
    fmt,
    header,
    repeats,
    row,
    smoke_sized,
)

FLOOR = [PY, "-c", "import torch, pytorch_lightning"]
CIFAR = "#".join(smoke_sized(CIFAR_BINDINGS))
DIGITS = "#".join(smoke_sized(("training_loop.n_epochs=10",)))


def peak_mb(cmd: list[str], run_env: dict | None = None) -> float:
    """Peak resident memory (MB) of the command's process."""
    process = subprocess.Popen(cmd, cwd=ROOT, env=run_env or env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


def train(bindings: str = DIGITS, run_env: dict | None = None) -> float:
    tmp = tempfile.mkdtemp(prefix="bench_memory_")
    try:
        return peak_mb([PY, "bin/train.py", f"{tmp}/run", "configs/cnn.gin", "-b", bindings], run_env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    n = repeats()
    a, b = alternate(train, lambda: peak_mb(FLOOR), n, warmup=False)
    data_dir = tempfile.mkdtemp(prefix="bench_cifar_")
    try:
        fake_cifar(data_dir)
        c = [train(CIFAR, env(DATA_DIR=data_dir)) for _ in range(max(1, n // 2))]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    header("process", "peak RSS", "above the floor", "target")
    row(
        "digits training, 10 epochs (`bin/train.py configs/cnn.gin`)",
        fmt(a, "MB", 0),
        fmt([x - y for x, y in zip(a, b, strict=True)], "MB", 0),
        "<= 300 MB",
    )
    row('floor: `python -c "import torch, pytorch_lightning"`', fmt(b, "MB", 0), "", "")
    row("CIFAR-10-sized training, 2 x 25 batches (for scale)", fmt(c, "MB", 0), "", "")


if __name__ == "__main__":
    main()
