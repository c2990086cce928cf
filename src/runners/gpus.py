"""The local runner's GPUs: which exist (nvidia-smi), which are free now, and which ones the next job gets.

A GPU is busy when a process that this runner did not start computes on it (a colleague's training, a notebook,
another runner), or when more than a threshold of its memory is used by others. Both come from nvidia-smi's CSV
queries, present wherever the NVIDIA driver is:

    nvidia-smi --query-gpu=index,uuid,name,memory.used,memory.total --format=csv,noheader,nounits
    nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits

Jobs see only their GPUs through CUDA_VISIBLE_DEVICES, with CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA numbers the
GPUs as nvidia-smi does.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from src.errors import UserError

GPU_FIELDS = "index,uuid,name,memory.used,memory.total"
APP_FIELDS = "gpu_uuid,pid,used_memory"


class GpuQueryError(Exception):
    """nvidia-smi exists but did not answer (driver reloading, GPU fallen off the bus)."""


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_used: float  # MiB
    memory_total: float  # MiB


@dataclass(frozen=True)
class App:
    """A process computing on a GPU."""

    gpu_uuid: str
    pid: int
    memory: float | None  # MiB; None where the driver does not say


def nvidia_smi(query: str) -> list[list[str]]:
    """Rows of an nvidia-smi CSV query; FileNotFoundError without nvidia-smi, GpuQueryError if it fails (cannot be
    run, exits with an error, or hangs: it answers in well under a second when the driver is fine)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired as e:
        raise GpuQueryError(f"nvidia-smi {query} took more than {e.timeout:.0f} s") from None
    except FileNotFoundError:
        raise
    except OSError as e:  # not executable, not a program
        raise GpuQueryError(f"nvidia-smi cannot be run ({e.strerror or e})") from None
    if out.returncode != 0:
        message = (out.stderr.strip() or out.stdout.strip() or f"exit code {out.returncode}").splitlines()[0]
        raise GpuQueryError(f"nvidia-smi {query} failed: {message}")
    return [[cell.strip() for cell in row] for row in csv.reader(out.stdout.splitlines()) if row]


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def query_gpus() -> list[Gpu]:
    gpus = []
    rows = nvidia_smi(f"--query-gpu={GPU_FIELDS}")
    for row in rows:
        if len(row) == 5 and row[0].isdigit():
            gpus.append(Gpu(int(row[0]), row[1], row[2], number(row[3]) or 0.0, number(row[4]) or 0.0))
    if rows and not gpus:
        raise GpuQueryError(f"nvidia-smi printed no list of GPUs (it printed {', '.join(rows[0])[:80]!r})")
    return gpus


def query_apps() -> list[App]:
    return [
        App(row[0], int(row[1]), number(row[2]))
        for row in nvidia_smi(f"--query-compute-apps={APP_FIELDS}")
        if len(row) == 3 and row[1].isdigit()
    ]


def discover() -> tuple[list[Gpu], str | None]:
    """This machine's GPUs, and why there are none when nvidia-smi is missing or fails."""
    try:
        return query_gpus(), None
    except FileNotFoundError:
        return [], "nvidia-smi is not on PATH"
    except GpuQueryError as e:
        return [], str(e)


def select(gpus: list[Gpu], spec: str, source: str) -> list[Gpu]:
    """The GPUs named in `spec` ("0,2,3", or UUIDs as in CUDA_VISIBLE_DEVICES); `source` names the option."""
    known = {str(g.index): g for g in gpus} | {g.uuid: g for g in gpus}
    chosen = []
    for token in (t.strip() for t in spec.split(",")):
        if token not in known:
            valid = ", ".join(str(g.index) for g in gpus) or "none: nvidia-smi lists no GPU"
            raise UserError(f"{source} {spec!r}: no GPU {token!r} on this machine. GPUs here: {valid}.")
        if known[token] not in chosen:
            chosen.append(known[token])
    return chosen


def descendants(roots: Iterable[int], proc: Path = Path("/proc")) -> set[int]:
    """The processes started by `roots` (themselves included), from the parent ids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process has just exited
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])  # after "pid (comm) state": the comm may hold spaces
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def owner(pid: int) -> str:
    """'pid 123 (alice)' where the process is visible, else 'pid 123'."""
    try:
        import pwd

        return f"pid {pid} ({pwd.getpwuid(os.stat(f'/proc/{pid}').st_uid).pw_name})"
    except (OSError, KeyError, ImportError):
        return f"pid {pid}"


def busy_reason(gpu: Gpu, apps: Sequence[App], own_pids: set[int], max_memory_used: float) -> str | None:
    """Why others use `gpu` (None if they do not): a foreign process, or more than `max_memory_used` (a fraction)
    of its memory used by others."""
    here = [a for a in apps if a.gpu_uuid == gpu.uuid]
    foreign = [a.pid for a in here if a.pid not in own_pids]
    if foreign:
        return "in use by " + ", ".join(owner(pid) for pid in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    own_memory = [a.memory for a in here]
    if None in own_memory:  # our own jobs' share is unknown: only a foreign process can tell the GPU is busy
        return None
    used_by_others = gpu.memory_used - sum(m for m in own_memory if m is not None)
    if gpu.memory_total and used_by_others > max_memory_used * gpu.memory_total:
        return f"{used_by_others:.0f} of {gpu.memory_total:.0f} MiB used by others"
    return None


def choose(free: Sequence[Gpu], load: dict[int, int], per_job: int, per_gpu: int) -> list[Gpu] | None:
    """`per_job` GPUs out of the free ones that have a slot left (fewer than `per_gpu` of our jobs), the least
    loaded first, then by index; None if there are not enough."""
    open_ = sorted((g for g in free if load.get(g.index, 0) < per_gpu), key=lambda g: (load.get(g.index, 0), g.index))
    return sorted(open_[:per_job], key=lambda g: g.index) if len(open_) >= per_job else None


def visible_devices(gpus: Sequence[Gpu]) -> str:
    return ",".join(str(g.index) for g in gpus)


def describe(gpus: Sequence[Gpu]) -> str:
    return ("GPU " if len(gpus) == 1 else "GPUs ") + visible_devices(gpus) if gpus else "CPU"


class GpuPool:
    """The GPUs this runner may use, how many of its jobs each one runs, and what it last said about each."""

    def __init__(self, gpus: Sequence[Gpu], per_job: int, per_gpu: int, max_memory_used: float) -> None:
        self.gpus, self.per_job, self.per_gpu, self.max_memory_used = list(gpus), per_job, per_gpu, max_memory_used
        self.load = {g.index: 0 for g in self.gpus}
        self.own: set[int] = set()  # our children and their descendants, ever seen (nvidia-smi may lag an exit)
        self.said: dict[int, str] = {}  # busy GPU index -> why (said when it became busy; memory figures move)
        self.waiting: object = None  # what the last "waiting" line was about

    @property
    def slots(self) -> int:
        """How many jobs can run at once on these GPUs."""
        return len(self.gpus) * self.per_gpu // self.per_job

    def take(self, children: Iterable[int], say: Callable[[str], None]) -> list[Gpu] | None:
        """A fresh look at the GPUs, then the next job's: `per_job` free GPUs with a slot left, or None (wait).
        `children`: the pids of this runner's running jobs. Changes (busy, free again, waiting) are said once."""
        self.own |= descendants(children)
        try:
            now, apps = {g.index: g for g in query_gpus()}, query_apps()
        except (GpuQueryError, FileNotFoundError) as e:
            self._wait(str(e), f"waiting: cannot check the GPUs ({e}); retrying", say)
            return None
        free = []
        for gpu in self.gpus:
            current = now.get(gpu.index)
            reason = busy_reason(current, apps, self.own, self.max_memory_used) if current else "gone from nvidia-smi"
            if reason and gpu.index not in self.said:
                say(f"GPU {gpu.index} ({gpu.name}) is busy, {reason}: not given jobs while it is")
            elif not reason and gpu.index in self.said:
                say(f"GPU {gpu.index} ({gpu.name}) is free again")
            if reason:
                self.said[gpu.index] = reason
            else:
                self.said.pop(gpu.index, None)
                assert current is not None  # a GPU gone from nvidia-smi has a reason
                free.append(current)
        chosen = choose(free, self.load, self.per_job, self.per_gpu)
        if chosen is None and self.said:  # (without busy GPUs, all slots run our own jobs: nothing to explain)
            busy = "; ".join(f"GPU {index}: {reason}" for index, reason in sorted(self.said.items()))
            self._wait(tuple(sorted(self.said)), f"waiting for a free GPU ({busy})", say)
        for gpu in chosen or ():
            self.load[gpu.index] += 1
        return chosen

    def release(self, gpus: Sequence[Gpu]) -> None:
        for gpu in gpus:
            self.load[gpu.index] -= 1

    def _wait(self, about: object, line: str, say: Callable[[str], None]) -> None:
        if about != self.waiting:
            say(line)
            self.waiting = about


def setup(
    spec: str | None, per_job: int | None, per_gpu: int, max_memory_used: float
) -> tuple[GpuPool | None, str | None]:
    """What `--gpus SPEC --gpus-per-job K --jobs-per-gpu M` mean here: the pool the jobs' GPUs come from (None where
    jobs get no GPU) and, for jobs without GPUs, the CUDA_VISIBLE_DEVICES they get ("" hides the machine's GPUs,
    None leaves the environment alone on a machine without any). A set CUDA_VISIBLE_DEVICES is the default SPEC."""
    if per_gpu < 1:
        raise UserError(f"--jobs-per-gpu must be at least 1, got {per_gpu}.")
    if per_job is not None and per_job < 0:
        raise UserError(f"--gpus-per-job must be 0 (CPU only) or more, got {per_job}.")
    if not 0 <= max_memory_used <= 1:
        raise UserError(f"--max-gpu-memory must be a percentage from 0 to 100, got {max_memory_used * 100:g}.")
    found, why = discover()
    if why is not None and not why.endswith("not on PATH"):  # a broken driver or tool: say so once, use the CPU
        print(f"warning: {why}: the jobs run on the CPU", file=sys.stderr)
    source = "--gpus"
    if spec is None and "CUDA_VISIBLE_DEVICES" in os.environ and found:
        spec, source = os.environ["CUDA_VISIBLE_DEVICES"], "CUDA_VISIBLE_DEVICES"
    if spec is None:
        allowed = found
    else:
        allowed = [] if spec.strip() in ("", "-1") else select(found, spec, source)
    per_job = (1 if allowed else 0) if per_job is None else per_job
    if per_job > len(allowed):
        where = f"GPUs allowed: {visible_devices(allowed)}" if allowed else (why or "no GPU is allowed")
        raise UserError(f"--gpus-per-job {per_job}: not enough GPUs ({where}).")
    if per_job == 0:
        return None, ("" if found else None)
    return GpuPool(allowed, per_job, per_gpu, max_memory_used), None
