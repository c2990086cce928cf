"""Count, on a CPU, the calls that would make the host wait for the GPU on CUDA, and say where the template makes them.

On a CPU nothing synchronises, so this counts by kind of call: reading a tensor's value on the host (`.item()`,
`float(t)`, `bool(t)`, `.tolist()`, `.cpu()`, `.numpy()`) and blocking device transfers (`.to(device)` or
`.cuda()` without `non_blocking=True`: from ordinary host memory that waits for the device's queue). A call counts as
the template's when a frame of its stack lies in `src/` (Lightning's own calls made outside the template's code do
not count).

    with HostSyncs() as syncs:
        ... train ...
    syncs.sites()   # Counter of "src/file.py:line" -> calls
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

SRC = str(Path(__file__).resolve().parents[1] / "src") + "/"
READS = {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"}
TRANSFERS = {"to", "cuda", "copy_"}


def name_of(func) -> str:
    return getattr(func, "__name__", "")


def is_blocking_transfer(name: str, args, kwargs) -> bool:
    if name not in TRANSFERS or kwargs.get("non_blocking"):
        return False
    if name == "cuda":
        return True
    if name == "copy_":  # dst.copy_(src) across devices
        return len(args) > 1 and isinstance(args[1], torch.Tensor) and args[0].device != args[1].device
    positional = list(args[1:])
    if len(positional) >= 2 and isinstance(positional[1], bool) and positional[1]:  # .to(device, dtype, non_blocking)
        return False
    return kwargs.get("device") is not None or any(isinstance(a, (torch.device, str)) for a in positional)


class HostSyncs(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []  # (kind, innermost src/ frame)
        self.active = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = name_of(func)
        if self.active and (name in READS or is_blocking_transfer(name, args, kwargs)):
            self.calls.append((name, caller_frame()))
        return func(*args, **kwargs)

    def sites(self, template_only: bool = True) -> collections.Counter:
        """Counter of 'site (kind)' -> calls: the template's own (a call made by code in src/), or all."""
        return collections.Counter(
            f"{site} ({kind})" for kind, site in self.calls if not template_only or site.startswith("src/")
        )


TORCH = str(Path(torch.__file__).parent) + "/"


def caller_frame() -> str:
    """Where the call was made: the innermost frame outside torch and this file, as 'path:line' ('src/...' for the
    template's own code)."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith(TORCH) or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    if frame is None:
        return "?"
    path = frame.f_code.co_filename
    return f"src/{path[len(SRC) :]}:{frame.f_lineno}" if path.startswith(SRC) else f"{path}:{frame.f_lineno}"
