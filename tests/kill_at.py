"""Fault injection for the crash tests: run bin/train.py's main, SIGKILLing this process at a chosen point.

    python tests/kill_at.py POINT SAVE_DIR CONFIGS -b BINDINGS

POINT is one of
    save:N:mid      during the N-th checkpoint write (half the bytes written to the temporary file)
    save:N:after    right after the N-th checkpoint was renamed into place
    write:NAME:N    during the N-th write of the run file NAME (history.csv, meta.json, eval_results.json...)
    step:N          at the N-th optimizer step
    usr1:N          not a kill: SIGUSR1 (SLURM's preemption warning) to itself at the N-th optimizer step
    finish          just before FINISHED is touched
"""

import io
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def counter(limit: int):
    calls = {"n": 0}

    def hit() -> bool:
        calls["n"] += 1
        return calls["n"] == limit

    return hit


def install(point: str) -> None:
    kind, *rest = point.split(":")
    if kind == "save":
        import torch

        from src.training.callbacks.checkpoint import RunCheckpointIO

        hit, when = counter(int(rest[0])), rest[1]
        original = RunCheckpointIO.save_checkpoint

        def save(self, checkpoint, path, storage_options=None):
            if hit():
                if when == "mid":
                    buffer = io.BytesIO()
                    torch.save(checkpoint, buffer)
                    with open(Path(path).with_name(f".{Path(path).name}.crash.tmp"), "wb") as f:
                        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                    die()
                original(self, checkpoint, path, storage_options)
                die()
            original(self, checkpoint, path, storage_options)

        RunCheckpointIO.save_checkpoint = save
    elif kind == "write":
        from src.run import layout as run_dir

        name, hit = rest[0], counter(int(rest[1]))
        original = run_dir.write_atomic

        def write_atomic(path, text):
            if Path(path).name == name and hit():
                Path(path).with_name(f".{name}.crash.tmp").write_text(text[: len(text) // 2])
                die()
            original(path, text)

        run_dir.write_atomic = write_atomic
    elif kind == "step":
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        hit = counter(int(rest[0]))

        def hook(optimizer, args, kwargs):
            if hit():
                die()

        register_optimizer_step_pre_hook(hook)
    elif kind == "usr1":
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        hit = counter(int(rest[0]))

        def warn(optimizer, args, kwargs):
            if hit():
                os.kill(os.getpid(), signal.SIGUSR1)

        register_optimizer_step_pre_hook(warn)
    elif kind == "finish":
        from src.training.callbacks.meta_saver import MetaSaver

        MetaSaver.finish = lambda self: die()
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main(argv: list[str]) -> int:
    """POINT, then bin/train.py's arguments (also the entry of a warm process: src/runners/warm.py)."""
    install(argv[0])
    from src.cli.training import train_main

    return train_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
