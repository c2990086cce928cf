"""What a run's result depends on besides its code and config: the installed packages (every distribution,
`packages.txt` in the run folder) and the device kind (`device` in meta.json). Recorded at the start of a run
(src/training/callbacks/meta_saver.py), compared by bin/reproduce.py and bin/diff_runs.py.

No training code and no torch at import: results analysis uses this module too.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from src.run import layout
from src.run.reading import read_text

MISSING = "<none>"
INFO_DIR = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+?)(-py\d[^-]*)?\.(dist|egg)-info$")


def canonical(name: str) -> str:
    """PEP 503 form: 'PyTorch_Lightning' -> 'pytorch-lightning'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages() -> dict[str, str]:
    """{name: version} of every distribution importable from sys.path, the first one found winning (as imports do),
    vendored copies inside other packages left out.
    Read from the *.dist-info folder names, which hold both: parsing every METADATA file through
    importlib.metadata takes ~0.15 s at each run's start; only folders without a version in their name go that way."""
    found: dict[str, str] = {}
    for entry in sys.path:
        folder = Path(entry or ".")
        if any(part in ("_vendor", "_vendored") for part in folder.parts):  # a package's own copies (setuptools'
            continue  # pkg_resources puts them on sys.path when imported): not installed distributions
        try:
            names = sorted(p.name for p in folder.iterdir() if p.name.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
        for info in names:
            match = INFO_DIR.match(info)
            if match:
                found.setdefault(canonical(match["name"]), match["version"])
                continue
            try:
                dist = metadata.PathDistribution(folder / info)
                found.setdefault(canonical(dist.metadata["Name"]), dist.version)
            except Exception:  # a broken or foreign folder: it says nothing about what is installed
                continue
    return dict(sorted(found.items()))


def packages_text(packages: dict[str, str]) -> str:
    """requirements-style lines: name==version."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(packages.items()))


def parse_packages(text: str) -> dict[str, str]:
    pairs = (line.split("==", 1) for line in text.splitlines() if "==" in line and not line.startswith("#"))
    return {canonical(name.strip()): version.strip() for name, version in pairs}


def recorded_packages(run: str | Path) -> tuple[dict[str, str], bool]:
    """(packages, complete): packages.txt, else the few versions in meta.json (older runs; complete=False)."""
    path = Path(run) / layout.PACKAGES
    if path.is_file():
        return parse_packages(read_text(path)), True
    versions = layout.read_meta(run).get("versions", {})
    return {canonical(k): v for k, v in versions.items() if k != "python"}, False


def package_differences(
    a: dict[str, str], b: dict[str, str], names: set[str] | None = None
) -> list[tuple[str, str, str]]:
    """(name, version in a, version in b) where they differ, MISSING where one lacks it; only `names` if given."""
    keys = sorted(names if names is not None else set(a) | set(b))
    return [(k, a.get(k, MISSING), b.get(k, MISSING)) for k in keys if a.get(k, MISSING) != b.get(k, MISSING)]


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def threads() -> dict[str, Any]:
    """How many threads torch computes with, and the variables that set it: a reduction over another number of
    threads can round differently, so a run keeps its count across attempts (src/training_loop.py)."""
    import os

    import torch

    variables = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
    return {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(), "variables": variables}


def determinism() -> dict[str, bool]:
    """torch's switches that decide whether kernels are deterministic (training_loop.deterministic sets them)."""
    import torch

    return {
        "algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


def recorded_threads(run: str | Path) -> int | None:
    """The torch thread count of the run's first attempt (meta.json), None if it recorded none."""
    attempts = layout.read_meta(run).get("attempts", [])
    count = (attempts[0].get("threads") or {}).get("torch") if attempts else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None


def device_kind(device: Any) -> str:
    """A torch.device in words: 'cpu', 'cuda (NVIDIA H200)', 'mps'."""
    if device.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    return str(device.type)


def expected_device(accelerator: str) -> str:
    """The device kind a run with `training_loop.accelerator = accelerator` gets on this machine (Lightning's 'auto'
    prefers CUDA, then MPS, then the CPU)."""
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return device_kind(torch.device("cuda", 0))
    if accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return "mps"
    return "cpu" if accelerator in ("auto", "cpu") else str(accelerator)
