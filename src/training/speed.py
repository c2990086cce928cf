"""Speed switches of the training loop: torch.compile, channels_last, float32 matmul precision (TF32) and
cudnn.benchmark, each one line of config and none of them a change of what is trained.

    training_loop.compile = True             # or a torch.compile mode: 'max-autotune', 'reduce-overhead', ...
    training_loop.channels_last = True       # convolutional models on GPUs with tensor cores (and CPUs with oneDNN)
    training_loop.matmul_precision = 'high'  # TF32 matmuls on Ampere+ GPUs; 'medium' allows bf16
    training_loop.cudnn_benchmark = True     # fixed input shapes on a GPU: cuDNN times its algorithms once

Compilation replaces the model's `forward` with its compiled version (an attribute, not a submodule): parameters keep
their names, so checkpoints of a compiled run load into an eager model and a run may resume with compilation switched
on or off. Evaluation (`load_model`, bin/evaluate.py) runs eagerly.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from typing import Any

from src.errors import UserError

MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's names


def compile_modes() -> list[str]:
    import torch._inductor

    return ["default", *(m for m in torch._inductor.list_mode_options() if m != "default")]


def compile_mode(compile: bool | str | None) -> str | None:
    """The torch.compile mode `training_loop.compile` asks for (True: 'default'), None for eager; a bad value or a
    platform without a working compiler is a one-line error, raised before any data is loaded."""
    if compile is None or compile is False:
        return None
    if compile is True:
        mode = "default"
    elif isinstance(compile, str):
        mode = compile
    else:
        raise UserError(f"training_loop.compile must be True, False or a torch.compile mode, got {compile!r}.")
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise UserError(
            f"training_loop.compile: torch.compile does not support Python {sys.version.split()[0]} "
            "with this torch; set training_loop.compile = False."
        )
    if mode not in (modes := compile_modes()):
        raise UserError(
            f"Unknown torch.compile mode {mode!r} (training_loop.compile). Valid: True, False, "
            f"{', '.join(map(repr, modes))}."
        )
    missing = missing_compiler()
    if missing:
        raise UserError(
            f"training_loop.compile = {compile!r} needs {missing}, which this machine lacks; "
            "install it or set training_loop.compile = False."
        )
    import torch._inductor

    if torch._inductor.list_mode_options(mode).get("triton.cudagraphs") and not torch.cuda.is_available():
        print(f"note: training_loop.compile = {mode!r}: CUDA graphs need a GPU; here it compiles without them")
    return mode


def missing_compiler() -> str | None:
    """What inductor needs and does not find: Triton on a CUDA machine, a C++ compiler on a CPU-only one."""
    import torch

    if torch.cuda.is_available():
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton (pip install triton)"
    from torch._inductor import config

    cxx = config.cpp.cxx[-1] if isinstance(config.cpp.cxx, tuple) else config.cpp.cxx
    return None if cxx and shutil.which(cxx) else f"a C++ compiler ({cxx or 'g++'} on the PATH)"


def check_matmul_precision(precision: str | None) -> None:
    if precision is not None and precision not in MATMUL_PRECISIONS:
        raise UserError(
            f"Unknown training_loop.matmul_precision {precision!r}. Valid: None (torch's setting), "
            f"{', '.join(map(repr, MATMUL_PRECISIONS))}."
        )


def benchmark_flag(cudnn_benchmark: bool | None, trainer_flags: dict[str, Any]) -> dict[str, Any]:
    """The Trainer flags with `benchmark` (Lightning's name for cudnn.benchmark) set from `cudnn_benchmark`."""
    if cudnn_benchmark is None:
        return trainer_flags
    if not isinstance(cudnn_benchmark, bool):
        raise UserError(f"training_loop.cudnn_benchmark must be True, False or None, got {cudnn_benchmark!r}.")
    if trainer_flags.get("benchmark") not in (None, cudnn_benchmark):
        raise UserError("training_loop.cudnn_benchmark and training_loop.benchmark disagree: set only one.")
    return {**trainer_flags, "benchmark": cudnn_benchmark}


def apply(model: Any, mode: str | None, channels_last: bool) -> None:
    """Convert the model's 4-D weights to channels_last (convolutions then run and return channels_last), and
    compile its forward in place (parameter names unchanged)."""
    import torch

    if channels_last:
        model.to(memory_format=torch.channels_last)
    if mode is not None:
        # nn.Module.compile() would keep the names too, but with this torch it does not trace a top-level module's
        # call; a compiled bound forward does (module hooks still run, eagerly).
        model.forward = torch.compile(model.forward, mode=None if mode == "default" else mode)


@contextlib.contextmanager
def matmul_precision(precision: str | None) -> Iterator[None]:
    """torch's float32 matmul precision for the duration of the training (restored after: it is process-global)."""
    if precision is None:
        yield
        return
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def compile_seconds() -> float:
    """Seconds this process has spent compiling with torch.compile (forward and backward graphs), 0 if it never
    compiled. Read from dynamo's own timers (private: an unknown layout reads as 0)."""
    if "torch._dynamo.utils" not in sys.modules:
        return 0.0
    try:
        timings = sys.modules["torch._dynamo.utils"].compilation_time_metrics
        return float(sum(sum(timings.get(name, ())) for name in COMPILE_TIMERS))
    except Exception:
        return 0.0


# Not nested in one another: the frame compile (forward graph) and the backward graph, compiled at the first backward.
COMPILE_TIMERS = ("_compile.compile_inner", "compile_fx.<locals>.bw_compiler")
