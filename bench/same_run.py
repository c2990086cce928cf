"""What a template run does, read from its gin configs, for the two comparisons that must do the same:
bench/handwritten.py (the floor: a plain PyTorch loop) and bench/lightning_alone.py (a bare `pl.Trainer`).

Both build the run's data module, model and module by name as the template does (src/training/parts.py) and share its
device, data placement (`device_resident`, src/data/in_memory.py), precision, memory format, compilation and
batch limits; they differ from the template only in what drives the steps.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gin  # noqa: E402


def param(name: str, default: Any = None) -> Any:
    try:
        return gin.query_parameter(name)
    except ValueError:
        return default


@dataclass
class Setting:
    seed: int
    n_epochs: int
    limits: dict[str, int | float | None]  # train / val / test batches
    precision: str
    channels_last: bool
    compile: str | None
    cudnn_benchmark: bool | None
    accelerator: str


def setting() -> Setting:
    """The run's settings (gin must hold its configs)."""
    from src.training import speed

    return Setting(
        seed=param("training_loop.seed", 0),
        n_epochs=param("training_loop.n_epochs", 10),
        limits={s: param(f"training_loop.limit_{s}_batches") for s in ("train", "val", "test")},
        precision=str(param("training_loop.precision", "32-true")),
        channels_last=bool(param("training_loop.channels_last", False)),
        compile=speed.compile_mode(param("training_loop.compile", False)),
        cudnn_benchmark=param("training_loop.cudnn_benchmark", param("training_loop.benchmark")),
        accelerator=param("training_loop.accelerator", "auto"),
    )


def device_of(run: Setting) -> Any:
    import torch

    wanted = run.accelerator
    if wanted in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def build(run: Setting) -> tuple[Any, Any]:
    """(parts, device): the run's data (loaded, on the device the template would put it), model and module."""
    import pytorch_lightning as pl
    import torch

    from src import config
    from src.data.in_memory import Split, resident
    from src.training import speed
    from src.training.parts import build_parts

    config.register_everything()
    pl.seed_everything(run.seed, verbose=False)
    data, model = param("training_loop.data", "digits"), param("training_loop.model", "cnn")
    parts = build_parts(data, model, "supervised", run.seed)
    device = device_of(run)
    parts.data.prepare_data()
    splits = parts.data.splits
    if resident(parts.data.device_resident, device, sum(s.x.nbytes + s.y.nbytes for s in splits.values())):
        parts.data.splits = {name: Split(s.x.to(device), s.y.to(device)) for name, s in splits.items()}
    if run.cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = run.cudnn_benchmark
    speed.apply(parts.model, run.compile, run.channels_last)
    return parts, device


def now(device: Any) -> float:
    """The time once the device has done what was queued (one sync, at an epoch's end only)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
