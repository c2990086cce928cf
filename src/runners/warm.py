"""Warm starts for bin/run_local.py: each job is a child forked from a server that has already imported torch and
Lightning (~5 s a process), instead of a fresh `bin/train.py` process that imports them again.

The mechanism is the standard library's multiprocessing forkserver with preloaded modules (src/runners/preload.py):
the server imports once, single-threaded and without initialising CUDA, then forks one child per job. The child
becomes what a fresh `bin/train.py` process would be, then calls the same entry point (src.cli.training.train_main):

- its own session (Ctrl-C of the runner reaches it through the process group, as before), stdin from /dev/null,
  stdout and stderr appended to the job's log file;
- the job's environment (OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES, ...), working directory and sys.argv (meta.json
  records `bin/train.py ...`; Lightning's DDP relaunches from it); torch's thread count set from OMP_NUM_THREADS,
  which torch read when the server imported it;
- Python's and numpy's random state drawn afresh (a fork would copy the server's to every job; training seeds its
  own), signal handlers at their defaults, atexit handlers run at the end, and the exit code of `bin/train.py`.

Only on Linux: macOS forks without exec unsafely once system frameworks are loaded (Python defaults to spawn there)
and Windows cannot fork; elsewhere `cold_reason` says why the jobs start as fresh processes (`--cold` everywhere).
As with any multiprocessing start method but fork, each child first re-imports the caller's main script (as
`__mp_main__`): a script that calls `run_local` must do so under `if __name__ == "__main__":` (bin/ scripts do).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PRELOAD = ["src.runners.preload"]
TRAIN_MAIN = "src.cli.training:train_main"  # bin/train.py's entry point


def cold_reason() -> str | None:
    """Why jobs cannot start warm on this machine, or None where they can."""
    if not sys.platform.startswith("linux"):
        return f"warm starts need Linux's fork (this is {sys.platform})"
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "multiprocessing's forkserver is not available"
    return None


class WarmProcess:
    """A job forked from the warm server, with the part of subprocess.Popen's interface the runner uses."""

    def __init__(
        self, args: list[str], env: dict[str, str], cwd: str | Path, log_path: str | Path, entry: str = TRAIN_MAIN
    ) -> None:
        """Fork `bin/train.py ARGS` (`entry`: another "module:function" taking the arguments and returning the exit
        code, for tests) with environment `env` in `cwd`, its output appended to `log_path`."""
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self._process = context.Process(
            target=child, args=(list(args), dict(env), str(cwd), str(log_path), entry), name=Path(args[0]).name
        )
        self._process.start()
        assert self._process.pid is not None  # started
        self.pid: int = self._process.pid
        self.returncode: int | None = None
        self._adopted = False  # its server died: waited for directly

    def poll(self) -> int | None:
        """The job's exit code once it has ended, else None. The server reports it; if the server is gone (killed),
        multiprocessing says 255 while the job may train on: the job, adopted by this process (`adopt_orphans`), is
        then waited for directly, and its own exit code reported."""
        if self.returncode is None:
            if not self._adopted:
                code = self._process.exitcode
                if code != SERVER_GONE or warm_server_alive():
                    self.returncode = code
                    return code
                self._adopted = True
            self.returncode = wait_adopted(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"job {self.pid}", timeout or 0.0)
            time.sleep(0.05)
        return code


SERVER_GONE = 255  # what multiprocessing reports for a job whose forkserver died (it cannot know the job's own code)


def wait_adopted(pid: int) -> int | None:
    """The exit code of a job whose server died, None while it runs. Adopted, it is this process's child; where it
    is not (no subreaper), it is alive while /proc lists it, and its exit code is unknown (130: it resumes when run
    again, never a false failure)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if Path(f"/proc/{pid}").exists() else 130
    return os.waitstatus_to_exitcode(status) if done else None


def adopt_orphans() -> bool:
    """Make this process adopt its orphaned descendants (Linux's PR_SET_CHILD_SUBREAPER): a job whose warm server
    dies is then this process's child, so that its end and exit code are still known. True if it worked."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def warm_server_alive() -> bool:
    """Whether the forkserver this process started is running (False before it started one)."""
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver  # type: ignore[attr-defined]  # no public record of its server's pid
    pid = server._forkserver_pid
    if pid is None:
        return False
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def stop_warm_server() -> None:
    """End the forkserver this process started, at once (its jobs are separate processes): left alone, it would
    live on for seconds after the runner, a few hundred MB and a busy core while the interpreter tears down."""
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver  # type: ignore[attr-defined]
    pid = server._forkserver_pid
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        server._stop()  # closes its descriptors and reaps it


def child(args: list[str], env: dict[str, str], cwd: str, log_path: str, entry: str = TRAIN_MAIN) -> None:
    """The job, in the forked child: become a fresh `bin/train.py ARGS` process, train, exit with its code."""
    code = 130
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGCHLD"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        redirect_output(log_path)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        from src.runners.batch import ROOT, TRAIN

        sys.argv = [str(ROOT / TRAIN), *args]
        fresh_state(env)
        module, function = entry.split(":")
        main = getattr(importlib.import_module(module), function)
        code = main(args, freeze_gc=True) if entry == TRAIN_MAIN else main(args)
    except KeyboardInterrupt:  # Ctrl-C before train_main took over
        pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    import atexit

    atexit._run_exitfuncs()  # as at a normal interpreter exit (the forkserver ends its children with os._exit)
    sys.exit(code)


def redirect_output(log_path: str) -> None:
    """stdin from /dev/null; stdout and stderr (the file descriptors, so C code's output too) to the log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def fresh_state(env: dict[str, str]) -> None:
    """What a fresh process would have that a fork copies from the server: random state, torch's thread count."""
    import random

    import numpy as np
    import torch

    random.seed()
    np.random.seed()
    torch.seed()
    threads = env.get("OMP_NUM_THREADS")
    if threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
