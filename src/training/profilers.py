"""Lightning's profilers chosen by name (`training_loop.profiler = 'simple'`), their reports written into the run
folder (`profile/`, see src/run/layout.py); with none chosen, Lightning's default (profiles nothing).

    simple    time per Lightning hook and loop section   (`simple.extended = False` for the short table)
    advanced  cProfile of every hook
    pytorch   torch.profiler: operator table, plus a Chrome trace for `pytorch.export_to_chrome = True`

Imports pytorch_lightning: imported by src.config (registration) and training_loop, never by analysis code.
"""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning import profilers

from src.registry import RUN_OFFERS, Registry
from src.run import layout

PROFILERS = Registry("profiler", offers={"run_dir": RUN_OFFERS["run_dir"]})


def report_dir(run_dir: str) -> str:
    return str(Path(run_dir) / layout.PROFILE_DIR)


@PROFILERS.register("simple", denylist=("run_dir",))
def simple(run_dir: str, extended: bool = True) -> profilers.Profiler:
    return profilers.SimpleProfiler(dirpath=report_dir(run_dir), filename="profile", extended=extended)


@PROFILERS.register("advanced", denylist=("run_dir",))
def advanced(run_dir: str) -> profilers.Profiler:
    return profilers.AdvancedProfiler(dirpath=report_dir(run_dir), filename="profile")


@PROFILERS.register("pytorch", denylist=("run_dir",))
def pytorch(run_dir: str, export_to_chrome: bool = False, row_limit: int = 30) -> profilers.Profiler:
    return profilers.PyTorchProfiler(
        dirpath=report_dir(run_dir), filename="profile", export_to_chrome=export_to_chrome, row_limit=row_limit
    )
