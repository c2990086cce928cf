"""MetaSaver: `meta.json` (command, host, device, world size and nodes, git commit and dirty flag, versions, every
attempt's start/end, processes and SLURM ids), `git_diff.patch` and `packages.txt`; `finish()` touches `FINISHED`,
which the training loop calls only after a successful end. Under `training_loop.compile`, each attempt records
`compile` (the mode; set by the training loop) and `compile_s` (seconds spent compiling, part of its `duration_s`);
`compile_time_s` sums them (part of `execution_time_s`)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from src.run import code, environment, layout, status
from src.run.reading import read_json
from src.training.callbacks.registry import CALLBACKS
from src.training.speed import compile_seconds

PACKAGES = ("torch", "pytorch-lightning", "gin-config", "numpy", "pandas", "scikit-learn")


def now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def gpu_names() -> list[str]:
    """The GPUs this process sees (after CUDA_VISIBLE_DEVICES), by name."""
    return (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )


def slurm_ids() -> dict[str, str] | None:
    """The SLURM job (and array task) this attempt runs in, None outside SLURM: a requeued task keeps its ids and
    counts its restarts."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    names = {
        "job_id": "SLURM_JOB_ID",
        "array_job_id": "SLURM_ARRAY_JOB_ID",
        "array_task_id": "SLURM_ARRAY_TASK_ID",
        "restart_count": "SLURM_RESTART_COUNT",
        "nodelist": "SLURM_JOB_NODELIST",
    }
    return {key: os.environ[var] for key, var in names.items() if var in os.environ}


class MetaSaver(pl.Callback):
    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / layout.META
        self.meta: dict = {}
        self.started, self.compile_start = time.time(), 0.0
        self.attempt_notes: dict = {}  # extra fields for this attempt's record (e.g. config changes)
        self.interrupted = False

    def _save(self) -> None:
        layout.write_atomic(self.path, json.dumps(self.meta, indent=2, default=str) + "\n")

    def _read(self) -> dict:
        """The stored meta.json; a damaged one (truncated, garbage) is set aside as meta.json.damaged and a new one
        started, with a warning: the run itself lives in its checkpoints."""
        if not self.path.is_file():
            return {}
        try:
            meta = read_json(self.path)
            if isinstance(meta, dict) and isinstance(meta.get("attempts", []), list):
                return meta
            problem = "not a JSON object with a list of attempts"
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            problem = str(e).splitlines()[0]
        aside = self.path.with_name(self.path.name + ".damaged")
        self.path.replace(aside)
        print(f"warning: {self.path} is damaged ({problem}); kept as {aside.name}, starting a new one", file=sys.stderr)
        return {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        status.clear(self.run_dir)
        self.meta = self._read()
        self.meta.pop("stopped_early", None)  # a run continued deliberately; a new stop records itself again
        total = sum(p.numel() for p in pl_module.parameters())
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        self.meta["parameters"] = {"total": total, "trainable": trainable}
        print(f"parameters: {total:,} ({trainable:,} trainable)")
        self.meta.update(
            command=shlex.join([sys.executable, *sys.argv]),
            argv=sys.argv,
            cwd=os.getcwd(),
            hostname=socket.gethostname(),
            save_dir=str(self.run_dir.resolve()),
            **code.record(self.run_dir),  # git_commit, git_dirty, untracked; writes git_diff.patch
            versions=versions(),
            threads=environment.threads(),
            device=environment.device_kind(trainer.strategy.root_device),
            world_size=trainer.world_size,  # processes training together (DDP); each attempt records its own
            nodes=trainer.num_nodes,
        )
        self.started, self.compile_start = time.time(), compile_seconds()
        self.meta.setdefault("attempts", []).append(
            {
                "start": now_iso(),
                "start_unix": self.started,
                "hostname": self.meta["hostname"],
                "pid": os.getpid(),
                "resumed_from": str(trainer.ckpt_path) if trainer.ckpt_path else None,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # set by bin/run_local.py, SLURM
                "gpus": gpu_names(),
                "world_size": trainer.world_size,
                "nodes": trainer.num_nodes,
                "slurm": slurm_ids(),
                "threads": environment.threads(),
                "deterministic": environment.determinism(),
                **self.attempt_notes,
            }
        )
        self.meta.setdefault("start_time", self.meta["attempts"][0]["start"])
        self._save()
        layout.write_atomic(self.run_dir / layout.PACKAGES, environment.packages_text(environment.installed_packages()))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning restores the loop counters after on_fit_start: the start epoch is known only now.
        if trainer.is_global_zero and self.meta.get("attempts"):
            self.meta["attempts"][-1]["start_epoch"] = trainer.current_epoch
            self._save()

    def _end_attempt(self, **extra: Any) -> None:
        if not self.meta.get("attempts"):
            return
        duration = time.time() - self.started
        compiling = compile_seconds() - self.compile_start
        if compiling:
            extra["compile_s"] = round(compiling, 3)
        self.meta["attempts"][-1].update(end=now_iso(), end_unix=time.time(), duration_s=round(duration, 3), **extra)
        self.meta["execution_time_s"] = round(sum(a.get("duration_s", 0) for a in self.meta["attempts"]), 3)
        if any("compile_s" in a for a in self.meta["attempts"]):
            self.meta["compile_time_s"] = round(sum(a.get("compile_s", 0) for a in self.meta["attempts"]), 3)
        self._save()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning turns Ctrl-C into sys.exit(1); remember it was an interruption, not a failure.
        self.interrupted = isinstance(exception, KeyboardInterrupt)
        if trainer.is_global_zero:
            self._end_attempt(error=f"{type(exception).__name__}: {exception}")

    def record_stop(self, stop: dict[str, Any]) -> None:
        """A stop before n_epochs that finishes the run (early stopping): why and at which epoch, in meta.json."""
        self.meta["stopped_early"] = stop
        self._save()

    def finish(self) -> None:
        """Record the end of a successful run, then mark it: PRUNED if its study pruned it, and FINISHED (last, so
        runners see a complete folder)."""
        self._end_attempt()
        self.meta["end_time"] = self.meta.get("attempts", [{}])[-1].get("end", now_iso())
        self._save()
        stop = self.meta.get("stopped_early") or {}
        if stop.get("reason") == "pruned":
            status.prune(self.run_dir, str(stop.get("message", "pruned")))
        status.finish(self.run_dir, self.meta["end_time"])


@CALLBACKS.register("meta_saver")
def meta_saver(run_dir: str) -> MetaSaver:
    return MetaSaver(run_dir)
