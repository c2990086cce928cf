"""A stand-in for bin/train.py's entry point in tests/end_to_end/test_warm_start.py: prints, as one JSON line, the state a
process starts with, then exits with the code given as its first argument ("sleep": waits for Ctrl-C)."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path


def handler(number: int) -> str:
    found = signal.getsignal(number)
    return getattr(found, "__name__", str(found))


def state(argv: list[str]) -> dict:
    import numpy as np
    import torch

    return {
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "argv0": Path(sys.argv[0]).name,
        "argv": sys.argv[1:] == argv and argv,
        "stdin": sys.stdin.read(),
        "own_session": os.getsid(0) == os.getpid(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "signals": {name: handler(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGPIPE")},
        "cuda_initialized": torch.cuda.is_initialized(),
        "torch_random": torch.rand(3).tolist(),
        "python_random": random.random(),
        "numpy_random": float(np.random.random()),
        "src_loaded_before": "src.training_loop" in sys.modules,
    }


def main(argv: list[str]) -> int:
    print(json.dumps(state(argv)), flush=True)
    print("a line to stderr", file=sys.stderr, flush=True)
    os.write(1, b"a line written to file descriptor 1\n")
    if argv[0] == "sleep":
        print("sleeping", flush=True)
        time.sleep(120)
    return int(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
