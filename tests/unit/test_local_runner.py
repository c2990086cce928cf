"""The runners' edges: an up-to-date sweep is nothing to do (exit 0), and the local runner's ETA."""

import os
import subprocess
import sys

import pytest

from src.errors import UserError
from src.run import layout
from src.runners.batch import read_batch
from src.runners.local import clock, estimate_left
from src.searches.experiment import grid, prepare
from tests.helpers import ROOT


@pytest.fixture
def finished_sweep(tmp_path, monkeypatch):
    """An experiment whose two runs are finished, prepared again: its batch.sh has no job lines."""
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "template_config.gin").write_text("include 'configs/cnn.gin'\n")
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    points = grid({"supervised.lr": [0.01, 0.1]})
    for job in read_batch(prepare(folder, "tiny", points).batch):
        job.run_dir.mkdir(parents=True)
        (job.run_dir / layout.FINISHED).touch()
    done = prepare(folder, "tiny", points)
    assert done.todo == [] and read_batch(done.batch) == []
    return done.batch


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": os.path.dirname(sys.executable)}  # no sbatch, no GPUs
    return subprocess.run([sys.executable, f"bin/{name}", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_an_up_to_date_sweep_is_nothing_to_do(finished_sweep):
    assert subprocess.run(["bash", str(finished_sweep)], capture_output=True).returncode == 0
    local = script("run_local.py", str(finished_sweep))
    assert (local.returncode, local.stderr) == (0, "")
    assert local.stdout == f"nothing to do: {finished_sweep} lists no runs\n"
    for dry_run in ([], ["--dry-run"]):  # decided before sbatch is needed: there is none on PATH
        slurm = script("run_slurm.py", str(finished_sweep), *dry_run)
        assert (slurm.returncode, slurm.stderr) == (0, "")
        assert slurm.stdout == f"nothing to do: {finished_sweep} lists no runs\n"


def test_runs_finished_since_prepare_are_nothing_to_do(tmp_path, monkeypatch, capsys):
    from src.runners.local import run_local

    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "template_config.gin").write_text("include 'configs/cnn.gin'\n")
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    batch = prepare(folder, "tiny", grid({"supervised.lr": [0.01, 0.1]})).batch
    for job in read_batch(batch):
        job.run_dir.mkdir(parents=True)
        (job.run_dir / layout.FINISHED).touch()
    assert run_local(batch, quiet=True) == 0
    assert capsys.readouterr().out == f"nothing to do: all 2 runs of {batch} are finished\n"


def test_a_file_that_is_no_batch_file_is_still_an_error(tmp_path):
    (tmp_path / "notes.sh").write_text("#!/usr/bin/env bash\necho hello\n")
    with pytest.raises(UserError, match="is not a batch file: it has no job lines and no `job` function"):
        read_batch(tmp_path / "notes.sh")
    (tmp_path / "hand.sh").write_text('function job {\n    python bin/train.py "$@"\n}\n')
    assert read_batch(tmp_path / "hand.sh") == []


def test_eta_comes_from_finished_jobs_and_the_jobs_left_per_slot():
    assert estimate_left([], [5.0, 5.0], queued=10, slots=2) is None  # nothing finished: no basis yet
    # 2 of 12 done in ~60 s each, 2 running for 10 s, 8 queued, 2 slots: 50 s + 4 rounds of 60 s
    assert estimate_left([58.0, 62.0], [10.0, 10.0], queued=8, slots=2) == pytest.approx(290.0)
    # the slot that frees first takes the next job: 30 and 50 s left, 3 queued of 60 s
    assert estimate_left([60.0], [30.0, 10.0], queued=3, slots=2) == pytest.approx(150.0)
    # a job running past the mean is assumed to end now; the queued ones still count
    assert estimate_left([60.0], [100.0], queued=1, slots=1) == pytest.approx(60.0)
    assert estimate_left([60.0], [], queued=0, slots=2) == 0.0
    assert estimate_left([60.0], [], queued=5, slots=3) == pytest.approx(120.0)  # an idle slot starts at once
    assert [clock(None), clock(59.6), clock(3725.0)] == ["-:--:--", "0:01:00", "1:02:05"]


SECOND_CTRL_C = """
import os, signal, subprocess, sys, threading, time
from pathlib import Path
from src.runners.batch import Job
from src.runners.local import Running, stop_all

stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(120)"
jobs = []
for i in range(2):
    child = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE, start_new_session=True)
    child.stdout.readline()
    jobs.append(Running(Job((f"run{i}", "x.gin")), child, open(os.devnull, "w"), time.time(), []))
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # the user presses Ctrl-C again
start = time.time()
stop_all(jobs, grace=60)
print(round(time.time() - start), [r.process.returncode for r in jobs])
"""


def test_a_second_ctrl_c_kills_jobs_that_ignore_the_first():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SECOND_CTRL_C], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"1 {[-9, -9]}\n"  # at the second Ctrl-C, not after the 60 s grace
    assert done.stderr == "interrupted again: killing the jobs still running\n"


def test_the_job_log_header_masks_secrets(tmp_path, monkeypatch):
    from src.runners.batch import Job
    from src.runners.local import open_log, start

    monkeypatch.setenv("MY_PASSWORD", "pw789qqq")
    job = Job((str(tmp_path / "run"), "configs/cnn.gin", "-b", "mlflow.tracking_uri='http://u:pw789qqq@host'"))
    running = start(job, open_log(tmp_path / "logs", job), threads=1, gpus=[], devices=None, warm=False)
    running.process.kill()
    running.process.wait()
    running.log.close()
    header = (tmp_path / "logs" / "run.log").read_text()
    assert "mlflow.tracking_uri" in header and "pw789qqq" not in header


@pytest.mark.parametrize(
    "script, why",
    [
        ("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate'\n", "printed no list of GPUs"),
        (None, "nvidia-smi cannot be run"),  # there, but not executable
        ("#!/bin/sh\nsleep 30\n", "took more than 10 s"),
    ],
)
def test_a_broken_nvidia_smi_means_cpu_jobs_and_one_warning(tmp_path, monkeypatch, capsys, script, why):
    """Garbage, a file that cannot run, a hang: the jobs run on the CPU with one warning saying why (a hang is cut
    short), never a traceback; with nothing to do nvidia-smi is not asked at all."""
    from src.runners import gpus

    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(script or "not a program\n")
    smi.chmod(0o755 if script else 0o644)
    monkeypatch.setenv("PATH", f"{smi.parent}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if "sleep" in (script or ""):
        monkeypatch.setattr(gpus.subprocess, "run", timing_out)
    pool, devices = gpus.setup(None, None, 1, 0.2)
    assert pool is None and devices is None
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and why in warning[0] and warning[0].endswith("the jobs run on the CPU")


def timing_out(*args, timeout=None, **kwargs):
    raise subprocess.TimeoutExpired(args[0], timeout)


def test_an_up_to_date_sweep_does_not_ask_nvidia_smi(tmp_path, monkeypatch, capsys):
    from src.runners import local

    batch = tmp_path / "batch.sh"
    batch.write_text("job() { :; }\n")  # a batch file with no job lines: every run finished
    monkeypatch.setattr(local, "setup", lambda *a: pytest.fail("nvidia-smi was asked with nothing to do"))
    assert local.run_local(batch) == 0 and "nothing to do" in capsys.readouterr().out
    with pytest.raises(UserError, match="--threads must be at least 1, got -3."):
        local.run_local(batch, threads=-3)
