"""Run a batch file's jobs N at a time on this machine, with a live progress display.

CPU threads are split fairly (each job gets cpus // N through OMP_NUM_THREADS, which torch uses for its thread
pool), finished runs are skipped, each job logs to <batch folder>/logs/<run>.log, a non-zero exit is recorded
in the run's FAILED file, and Ctrl-C stops the children cleanly (re-running resumes them).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from src import run_dir as layout
from src.batch import Job, read_batch
from src.errors import RunInUse, UserError


@dataclass
class Running:
    job: Job
    process: subprocess.Popen
    log: object
    started: float


def record_exit(job: Job, code: int) -> None:
    """A failed job leaves its exit code in FAILED (unless the run finished, was interrupted, or is trained by
    another process)."""
    not_a_failure = (0, 130, -signal.SIGINT, RunInUse.exit_code)
    if code not in not_a_failure and job.run_dir.is_dir() and not (job.run_dir / layout.FINISHED).exists():
        if not (job.run_dir / layout.FAILED).exists():
            layout.touch(job.run_dir / layout.FAILED, f"exit code {code}\n")


def start(job: Job, log_dir: Path, threads: int) -> Running:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{job.run_dir.name}.log", "a")
    started = time.time()
    log.write(f"==> {shlex.join(job.command())}\n==> started {time.strftime('%Y-%m-%dT%H:%M:%S')} ({started:.3f})\n")
    log.flush()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": str(layout.CODE_ROOT),
    }
    process = subprocess.Popen(
        job.command(),
        cwd=layout.CODE_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    return Running(job, process, log, started)


def stop_all(running: list[Running], grace: float = 30.0) -> None:
    """SIGINT to every child (Lightning saves nothing half-written), then SIGKILL after `grace` seconds."""
    for r in running:
        with_suppressed(os.killpg, r.process.pid, signal.SIGINT)
    deadline = time.time() + grace
    for r in running:
        try:
            r.process.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            with_suppressed(os.killpg, r.process.pid, signal.SIGKILL)
            r.process.wait()
        r.log.close()


def with_suppressed(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except ProcessLookupError:
        pass


def run_local(batch: str | Path, jobs: int = 2, threads: int | None = None, quiet: bool = False) -> int:
    """Run the batch; return 0 if every job succeeded, 1 if any failed, 130 if interrupted."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}.")
    batch = Path(batch)
    all_jobs = read_batch(batch)
    todo = [job for job in all_jobs if layout.status(job.run_dir) != "finished"]
    threads = threads or max(1, (os.cpu_count() or 1) // min(jobs, max(len(todo), 1)))
    print(
        f"{len(all_jobs)} jobs: {len(all_jobs) - len(todo)} finished (skipped), {len(todo)} to run, "
        f"{jobs} at a time, {threads} threads each; logs in {batch.parent / 'logs'}"
    )
    queue, running, failed, skipped, done = list(todo), [], [], [], 0
    columns = (
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "eta",
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=quiet or not sys.stdout.isatty()) as progress:
        task = progress.add_task("", total=len(todo))
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    running.append(start(queue.pop(0), batch.parent / "logs", threads))
                time.sleep(0.2)
                for r in [r for r in running if r.process.poll() is not None]:
                    running.remove(r)
                    r.log.close()
                    code = r.process.returncode
                    record_exit(r.job, code)
                    done += 1
                    if code == RunInUse.exit_code:
                        skipped.append(r.job)
                        verdict = "skipped: another process trains in it"
                    elif code != 0:
                        failed.append(r.job)
                        verdict = f"FAILED (exit {code}, log {r.log.name})"
                    else:
                        verdict = "ok"
                    progress.console.print(
                        f"[{done}/{len(todo)}] {r.job.run_dir.name}: {verdict} in {time.time() - r.started:.0f} s"
                    )
                    progress.advance(task)
                progress.update(
                    task,
                    description=f"done {done - len(failed) - len(skipped)} | running {len(running)} | "
                    f"failed {len(failed)}",
                )
        except KeyboardInterrupt:
            progress.console.print(f"interrupted: stopping {len(running)} jobs; run the same command to resume")
            stop_all(running)
            return 130
    print(
        f"{done - len(failed) - len(skipped)} succeeded, {len(failed)} failed"
        + (f", {len(skipped)} skipped (in use by another process)" if skipped else "")
        + "".join(f"\n  failed: {job.run_dir}" for job in failed)
    )
    return 1 if failed else 0
