"""Run a batch file's jobs N at a time on this machine, with a live progress display.

On a machine with NVIDIA GPUs each job gets its own GPU(s) through CUDA_VISIBLE_DEVICES, from those free right now
(src/runners/gpus.py: GPUs that colleagues use are skipped); a job waits for a free slot. CPU threads are split
fairly (each job gets cpus // N through OMP_NUM_THREADS, which torch uses for its thread pool), finished runs are
skipped, each job logs to <batch folder>/logs/<run>.log, a non-zero exit is recorded in the run's FAILED file, and
Ctrl-C stops the children cleanly (re-running resumes them). Several runners may share one batch file: the run
lock lets one of them train each run, and the others skip it.

Jobs start warm where the platform allows (src/runners/warm.py: forked from a server that has imported torch and
Lightning once, ~5 s saved per job), else, or with `cold=True`, as fresh `bin/train.py` processes; both behave the
same to the runner (exit code, log, environment, Ctrl-C) and train the same.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from src.errors import RunInUse, UserError
from src.run import layout, lock
from src.run.secrets import redact
from src.run.status import DONE, record_exit, status_of
from src.runners.batch import Job, read_batch
from src.runners.gpus import Gpu, GpuPool, describe, setup, visible_devices
from src.runners.warm import WarmProcess, adopt_orphans, cold_reason, stop_warm_server, warm_server_alive


@dataclass
class Running:
    job: Job
    process: subprocess.Popen | WarmProcess
    log: IO[str]
    started: float
    gpus: list[Gpu]


def open_log(log_dir: Path, job: Job) -> IO[str]:
    """The job's log (appended to), or one line naming it when it cannot be written (a full or read-only disk): the
    runner stops then, and the runs it did not start are untouched."""
    path = log_dir / f"{job.run_dir.name}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        return open(path, "a")
    except OSError as e:
        raise UserError(f"Cannot write the job log {path} ({e.strerror or e}): free space or make {log_dir} writable, "
                        "then run the same command again.") from e  # fmt: skip


def start(job: Job, log: IO[str], threads: int, gpus: list[Gpu], devices: str | None, warm: bool = False) -> Running:
    """Start the job's process, forked from the warm server if `warm`, else a fresh `bin/train.py` process, its output
    appended to `log`; `devices` is its CUDA_VISIBLE_DEVICES (None: leave the environment's)."""
    started = time.time()
    when = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} ({started:.3f})"
    log.write(redact(f"==> {shlex.join(job.command())}\n==> started {when} {'warm' if warm else 'cold'}\n"))
    log.flush()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": str(layout.CODE_ROOT),
    }
    if devices is not None:
        env |= {"CUDA_VISIBLE_DEVICES": devices, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}  # nvidia-smi's numbering
    if warm:
        return Running(job, WarmProcess(list(job.args), env, layout.CODE_ROOT, log.name), log, started, gpus)
    process = subprocess.Popen(
        job.command(),
        cwd=layout.CODE_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    return Running(job, process, log, started, gpus)


def stop_all(running: list[Running], grace: float = 30.0) -> None:
    """SIGINT to every child (Lightning saves nothing half-written), then SIGKILL after `grace` seconds, or at once
    on a second Ctrl-C (a job that ignores the first must not hold the runner)."""
    for r in running:
        interrupt(r.process.pid, signal.SIGINT)
    deadline = time.time() + grace
    try:
        for r in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.process.wait(timeout=max(deadline - time.time(), 0.1))
    except KeyboardInterrupt:
        print("interrupted again: killing the jobs still running", file=sys.stderr)
    finally:
        for r in running:
            if r.process.poll() is None:
                interrupt(r.process.pid, signal.SIGKILL)
                r.process.wait()
            r.log.close()


def interrupt(pid: int, sig: int) -> None:
    """`sig` to the job's process group (its DataLoader workers too), or to the job alone if it has none yet (a
    warm child not yet in its own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with_suppressed(os.kill, pid, sig)


def with_suppressed(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except ProcessLookupError:
        pass


def estimate_left(durations: list[float], running_for: list[float], queued: int, slots: int) -> float | None:
    """Seconds until the batch is done, if every job takes the mean of the finished jobs' `durations`: each running
    job ends after the rest of that mean (at once if it is past it), each queued one starts on the first free of
    `slots`. None before any job has finished."""
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    free_at = [max(mean - t, 0.0) for t in running_for] + [0.0] * max(slots - len(running_for), 0)
    heapq.heapify(free_at)
    for _ in range(queued):
        heapq.heappush(free_at, heapq.heappop(free_at) + mean)
    return max(free_at, default=0.0)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


FINISHED_ELSEWHERE = "finished by another process"


def trained_elsewhere(job: Job, pid: int) -> bool:
    """Whether a job that exited 0 found its run finished by another process (its last attempt is not `pid`'s)."""
    try:
        attempts = layout.read_meta(job.run_dir).get("attempts") or [{}]
    except OSError:
        return False
    return (attempts[-1].get("pid"), attempts[-1].get("hostname")) not in ((pid, socket.gethostname()), (None, None))


def already_taken(job: Job) -> str | None:
    """Why another runner's work makes the job moot now (finished meanwhile, or trained right now), else None."""
    if (job.run_dir / layout.FINISHED).exists():
        return FINISHED_ELSEWHERE
    if lock.is_held(job.run_dir):
        return "another process trains in it"
    return None


def run_local(
    batch: str | Path,
    jobs: int | None = None,
    threads: int | None = None,
    quiet: bool = False,
    gpus: str | None = None,
    gpus_per_job: int | None = None,
    jobs_per_gpu: int = 1,
    max_gpu_memory: float = 0.2,
    poll: float = 5.0,
    cold: bool = False,
) -> int:
    """Run the batch; return 0 if every job succeeded (or there was nothing to do), 1 if any failed, 130 if
    interrupted. `gpus` ("0,2,3"), `gpus_per_job`, `jobs_per_gpu` and `max_gpu_memory` (the fraction of a GPU's
    memory others may use before it counts as busy) choose the GPUs (src/runners/gpus.py); `jobs` defaults to as
    many as the GPUs take, or 2 without GPUs; `poll`: seconds between looks at busy GPUs while waiting; `cold`:
    every job a fresh `bin/train.py` process (the default where warm starts are impossible: src/runners/warm.py)."""
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}.")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}.")
    batch = Path(batch)
    all_jobs = read_batch(batch)
    todo = [job for job in all_jobs if status_of(job.run_dir) not in DONE]
    if not todo:
        print(f"nothing to do: all {len(all_jobs)} runs of {batch} are finished" if all_jobs else
              f"nothing to do: {batch} lists no runs")  # fmt: skip
        return 0
    pool, cpu_devices = setup(gpus, gpus_per_job, jobs_per_gpu, max_gpu_memory)  # asks nvidia-smi: only with work
    jobs = jobs or (pool.slots if pool else 2)
    slots = min(jobs, pool.slots) if pool else jobs
    threads = threads or max(1, (os.cpu_count() or 1) // min(slots, len(todo)))
    why_cold = "--cold" if cold else cold_reason()
    where = ""
    if pool:
        each = f"{pool.per_job} GPU{'s' * (pool.per_job > 1)} per job, {pool.per_gpu} job{'s' * (pool.per_gpu > 1)}"
        where = f" on {describe(pool.gpus)} ({each} per GPU)"
    elif cpu_devices == "":
        where = " on CPU (GPUs hidden: --gpus-per-job 0)"
    print(
        f"{len(all_jobs)} jobs: {len(all_jobs) - len(todo)} finished (skipped), {len(todo)} to run, "
        f"at most {slots} at a time{where}, {threads} threads each, "
        + ("warm starts" if why_cold is None else f"cold starts ({why_cold})")
        + f"; logs in {batch.parent / 'logs'}"
    )
    scheduler = Scheduler(todo, batch.parent / "logs", slots, threads, pool, cpu_devices, why_cold is None, poll)
    return scheduler.run(quiet)


class Scheduler:
    """Runs jobs at most `slots` at a time: `fill` starts queued jobs while slots (and GPUs) are free, `reap`
    collects the ones that ended and their verdict, `summary` says what happened. It owns what it starts: on an
    interruption or an error of its own it stops the running jobs (they resume when run again), and on its way out
    it ends the warm-start server."""

    def __init__(
        self,
        todo: list[Job],
        log_dir: Path,
        slots: int,
        threads: int,
        pool: GpuPool | None,
        cpu_devices: str | None,
        warm: bool,
        poll: float,
    ) -> None:
        self.queue, self.total, self.log_dir = list(todo), len(todo), log_dir
        self.slots, self.threads, self.pool, self.cpu_devices, self.warm, self.poll = (
            slots, threads, pool, cpu_devices, warm, poll
        )  # fmt: skip
        self.running: list[Running] = []
        self.durations: list[float] = []
        self.failed: list[Job] = []
        self.skipped: list[Job] = []  # trained by another process right now
        self.elsewhere: list[Job] = []  # finished by another process
        self.done, self.next_look = 0, 0.0
        self.served = False  # a job was forked from the warm server (which may die later)
        self.say: Callable[[str], None] = print

    def run(self, quiet: bool) -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        columns = (
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            "eta {task.fields[eta]}",
        )
        if self.warm:
            adopt_orphans()  # a job whose warm server dies stays this process's to wait for
        with Progress(*columns, disable=quiet or not sys.stdout.isatty()) as progress:
            self.say = lambda line: progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
            self.progress, self.task = progress, progress.add_task("", total=self.total, eta=clock(None))
            try:
                while self.queue or self.running:
                    self.fill()
                    time.sleep(0.2)
                    self.reap()
                    self.show()
            except KeyboardInterrupt:
                self.say(f"interrupted: stopping {len(self.running)} jobs; run the same command to resume")
                stop_all(self.running)
                return 130
            except BaseException:
                stop_all(self.running, grace=5.0)  # nothing trains on unwatched after the runner is gone
                raise
            finally:
                stop_warm_server()
        print(self.summary())
        return 1 if self.failed else 0

    def fill(self) -> None:
        while self.queue and len(self.running) < self.slots:
            job = self.queue[0]
            if reason := already_taken(job):
                self.queue.pop(0)
                (self.elsewhere if reason == FINISHED_ELSEWHERE else self.skipped).append(job)
                self.finish(job, f"skipped: {reason}")
                continue
            gpus: list[Gpu] = []
            if self.pool:
                if time.time() < self.next_look:
                    return
                taken = self.pool.take([r.process.pid for r in self.running], self.say)
                if taken is None:
                    self.next_look = time.time() + self.poll
                    return
                gpus = taken
            self.running.append(self.start(job, gpus))
            self.queue.pop(0)
            if self.pool:
                self.say(f"started {job.run_dir.name} on {describe(gpus)}")

    def start(self, job: Job, gpus: list[Gpu]) -> Running:
        devices = visible_devices(gpus) if self.pool else self.cpu_devices
        log = open_log(self.log_dir, job)
        if self.warm and self.served and not warm_server_alive():
            self.warm = False
            self.say("the warm-start server is gone: starting the remaining jobs cold")
        try:
            running = start(job, log, self.threads, gpus, devices, self.warm)
            self.served = self.served or self.warm
            return running
        except (OSError, EOFError) as e:  # the warm server could not start or died: start the jobs cold
            if not self.warm:
                log.close()
                raise
            self.warm = False
            self.say(f"warm starts failed ({type(e).__name__}: {e}): starting the jobs cold from now on")
            return start(job, log, self.threads, gpus, devices)

    def reap(self) -> None:
        for r in [r for r in self.running if r.process.poll() is not None]:
            self.running.remove(r)
            r.log.close()
            if self.pool:
                self.pool.release(r.gpus)
                self.next_look = 0.0
            code, seconds = r.process.poll() or 0, time.time() - r.started
            record_exit(r.job.run_dir, code)
            if code == RunInUse.exit_code:
                self.skipped.append(r.job)
                verdict = "skipped: another process trains in it"
            elif code != 0:
                self.failed.append(r.job)
                verdict = f"FAILED (exit {code}, log {r.log.name})"
            elif trained_elsewhere(r.job, r.process.pid):
                self.elsewhere.append(r.job)
                verdict = f"skipped: {FINISHED_ELSEWHERE}"
            else:
                self.durations.append(seconds)
                verdict = "ok"
            on = f" on {describe(r.gpus)}" if self.pool else ""
            self.finish(r.job, f"{verdict} in {seconds:.0f} s{on}")

    def finish(self, job: Job, verdict: str) -> None:
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {job.run_dir.name}: {verdict}")
        self.progress.advance(self.task)

    def succeeded(self) -> int:
        return self.done - len(self.failed) - len(self.skipped) - len(self.elsewhere)

    def show(self) -> None:
        now = time.time()
        eta = estimate_left(self.durations, [now - r.started for r in self.running], len(self.queue), self.slots)
        placed = ", ".join(f"{r.job.run_dir.name} on {describe(r.gpus)}" for r in self.running) if self.pool else ""
        self.progress.update(
            self.task,
            eta=clock(eta),
            description=f"done {self.succeeded()} | running {len(self.running)}"
            + (f" ({placed})" if placed else "")
            + f" | failed {len(self.failed)}",
        )

    def summary(self) -> str:
        return (
            f"{self.succeeded()} succeeded, {len(self.failed)} failed"
            + (f", {len(self.skipped)} skipped (in use by another process)" if self.skipped else "")
            + (f", {len(self.elsewhere)} finished by another process" if self.elsewhere else "")
            + "".join(f"\n  failed: {job.run_dir}" for job in self.failed)
        )
