"""Warm starts (src/runners/warm.py): a job forked from the warm server is the process bin/train.py would be, and
trains the same run, bit for bit."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from src.runners.batch import read_batch
from src.runners.local import interrupt, run_local
from src.runners.warm import WarmProcess, cold_reason
from src.searches.experiment import grid, prepare
from tests.helpers import FAST, ROOT, history

pytestmark = pytest.mark.skipif(cold_reason() is not None, reason=f"no warm starts here: {cold_reason()}")

PROBE = "tests.warm_probe:main"
TEMPLATE = "include 'configs/cnn.gin'\n" + "\n".join(FAST) + "\ntraining_loop.n_epochs = 2\n"


def job_env(tmp_path, **extra):
    """An environment as bin/run_local.py gives a job (one thread, no GPU), plus a variable the runner lacks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}
    env.pop("PYTEST_CURRENT_TEST", None)  # pytest changes it in this process between tests
    return env


def probe_warm(tmp_path, name, *args, **env):
    log = tmp_path / f"{name}.log"
    process = WarmProcess(list(args), job_env(tmp_path, **env), tmp_path, log, entry=PROBE)
    return process, log


def first_json(log):
    return json.loads(next(line for line in log.read_text().splitlines() if line.startswith("{")))


def test_a_warm_child_starts_as_a_fresh_process_would(tmp_path):
    env = job_env(tmp_path, JOB_ONLY="yes", CUDA_VISIBLE_DEVICES="")
    (tmp_path / "fresh.log").touch()
    with open(tmp_path / "fresh.log", "a") as log:
        fresh = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "warm_probe.py"), "3", "x y"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    runs = [probe_warm(tmp_path, f"warm{i}", "3", "x y", JOB_ONLY="yes", CUDA_VISIBLE_DEVICES="") for i in (1, 2)]
    assert [process.wait(timeout=120) for process, _ in runs] == [3, 3] == [fresh.returncode] * 2
    expected = first_json(tmp_path / "fresh.log")
    warm = [first_json(log) for _, log in runs]
    for got in warm:
        assert got["env"] == expected["env"]  # exactly the job's environment: nothing of the runner's or server's
        assert got["argv0"] == "train.py" and got["argv"] == ["3", "x y"]  # meta.json records bin/train.py ARGS
        assert not got["src_loaded_before"]  # the template's own code comes from disk, per job
        for key in ("cwd", "stdin", "own_session", "threads", "interop_threads", "signals", "cuda_initialized"):
            assert got[key] == expected[key], key
    assert expected["threads"] == 1 and expected["own_session"] and expected["stdin"] == ""
    # a fork copies the server's random state: each job draws its own, as fresh processes do (training seeds)
    for key in ("python_random", "numpy_random", "torch_random"):
        assert warm[0][key] != warm[1][key], key
    for _, log in runs:  # Python's streams and C's file descriptors all end in the job's log
        lines = log.read_text().splitlines()
        assert "a line to stderr" in lines and "a line written to file descriptor 1" in lines


def test_a_warm_child_exits_with_its_code_and_stops_on_ctrl_c(tmp_path):
    codes = [probe_warm(tmp_path, f"code{code}", str(code)) for code in (0, 75, 1)]
    assert [process.wait(timeout=120) for process, _ in codes] == [0, 75, 1]
    process, log = probe_warm(tmp_path, "sleeper", "sleep")
    deadline = time.time() + 120
    while "sleeping" not in (log.read_text() if log.exists() else ""):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.1)
    assert os.getpgid(process.pid) == process.pid  # its own process group, which the runner interrupts
    interrupt(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 130  # KeyboardInterrupt, as in bin/train.py


def test_a_warm_run_trains_exactly_as_bin_train_does(tmp_path, monkeypatch, capsys):
    """The same job run warm and with --cold (a fresh bin/train.py process, as `bash batch.sh` runs it)."""
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "template_config.gin").write_text(TEMPLATE)
    runs, logs, args = {}, {}, {}
    for how in ("warm", "cold"):
        monkeypatch.setenv("RESULTS_DIR", str(tmp_path / how))
        batch = prepare(folder, how, grid({"supervised.lr": [0.01]})).batch
        job = read_batch(batch)[0]
        assert run_local(batch, jobs=1, threads=1, quiet=True, cold=how == "cold") == 0
        assert f"{how} starts" in capsys.readouterr().out
        runs[how], args[how] = job.run_dir, job.args
        logs[how] = (folder / how / "logs" / f"{job.run_dir.name}.log").read_text()
        assert f") {how}\n" in logs[how] and "epoch 2/2" in logs[how]  # its output reached the job's log
    warm, cold = runs["warm"], runs["cold"]
    assert len(history(warm)) == 2 and history(warm).equals(history(cold))
    assert json.loads((warm / "eval_results.json").read_text()) == json.loads((cold / "eval_results.json").read_text())
    checkpoints = sorted(p.name for p in cold.glob("*.ckpt"))
    assert checkpoints and checkpoints == sorted(p.name for p in warm.glob("*.ckpt"))
    for name in checkpoints:
        a, b = (torch.load(run / name, map_location="cpu", weights_only=False)["state_dict"] for run in (warm, cold))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    for how, run in runs.items():  # reproducible from the run folder as before: bin/train.py and its arguments
        meta = json.loads((run / "meta.json").read_text())
        assert (meta["argv"], meta["cwd"]) == ([str(ROOT / "bin" / "train.py"), *args[how]], str(ROOT)), how
        assert meta["command"] == shlex.join([sys.executable, *meta["argv"]]), how


def test_when_the_warm_server_fails_the_jobs_start_cold(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ConnectionRefusedError("the server died")

    monkeypatch.setattr("src.runners.local.WarmProcess", broken)
    batch = tmp_path / "batch.sh"
    batch.write_text(f"job {tmp_path / 'run'} {tmp_path / 'missing.gin'}\n")
    assert run_local(batch, jobs=1, quiet=True) == 1  # the job ran (cold), and failed on its missing config
    out = capsys.readouterr().out
    assert "warm starts failed (ConnectionRefusedError: the server died): starting the jobs cold from now on" in out
    log = (tmp_path / "logs" / "run.log").read_text()
    assert log.count("==> started") == 2 and ") cold\n" in log and "missing.gin' does not exist" in log


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is `pid`."""
    found = []
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                stat = open(f"/proc/{proc}/stat").read()
                cmdline = open(f"/proc/{proc}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append((int(proc), cmdline))
    return found


def test_a_killed_warm_server_neither_fails_nor_loses_its_running_job(experiment, tmp_path, env):
    """The warm server dies while a job trains: that job is waited for and reported with its own exit code (not
    a failure), never a second job beside it on one slot; the jobs after it start cold; the runner leaves no server
    behind. (Killing the server used to fail the running job with exit 255 and start the next one beside it.)"""
    (experiment / "template_config.gin").write_text(TEMPLATE.replace("n_epochs = 2", "n_epochs = 5"))
    done = prepare(experiment, "slow", grid({"training_loop.seed": [0, 1]}))
    runner = subprocess.Popen(
        [sys.executable, "bin/run_local.py", str(done.batch), "--jobs", "1"],
        cwd=ROOT,
        env={**env, "RESULTS_DIR": str(tmp_path / "results")},
        stdout=subprocess.PIPE,
        text=True,
    )
    first = read_batch(done.batch)[0].run_dir
    deadline = time.time() + 120
    while not (first / "history.csv").exists():  # the first job is training
        assert time.time() < deadline and runner.poll() is None, "the first job never started training"
        time.sleep(0.2)
    servers = [pid for pid, cmd in children(runner.pid) if "forkserver" in cmd]
    assert len(servers) == 1
    os.kill(servers[0], signal.SIGKILL)
    out, _ = runner.communicate(timeout=300)
    assert runner.returncode == 0, out
    assert "the warm-start server is gone: starting the remaining jobs cold" in out
    assert "2 succeeded, 0 failed" in out and "FAILED" not in out
    assert all(not (job.run_dir / "FAILED").exists() for job in read_batch(done.batch))
    logs = [(done.batch.parent / "logs" / f"{job.run_dir.name}.log").read_text() for job in read_batch(done.batch)]
    assert ") warm\n" in logs[0] and ") cold\n" in logs[1]
    starts = sorted(float(log.split("==> started ", 1)[1].split("(", 1)[1].split(")")[0]) for log in logs)
    ends = sorted(json.loads((job.run_dir / "meta.json").read_text())["attempts"][-1]["end_unix"]
                  for job in read_batch(done.batch))  # fmt: skip
    assert starts[1] >= ends[0]  # one slot: the second started after the first ended


def test_the_runner_ends_its_warm_server_on_the_way_out(experiment, tmp_path):
    from src.runners.warm import warm_server_alive

    done = prepare(experiment, "one", grid({"training_loop.seed": [0]}))
    assert run_local(done.batch, jobs=1, quiet=True) == 0
    assert not warm_server_alive()
    from multiprocessing import forkserver

    assert forkserver._forkserver._forkserver_pid is None  # stopped and reaped, not left to exit on its own


def test_an_unwritable_job_log_is_one_line_and_touches_no_run(experiment, tmp_path, capsys):
    """The batch folder's logs/ cannot be written (here: a file in its place; a full or read-only disk alike): the
    runner says so in one line and stops; no run is started or marked failed (it used to call this a failure of
    warm starts, then fail jobs whose run folders had space)."""
    from src.cli.runners import run_local_main

    done = prepare(experiment, "two", grid({"training_loop.seed": [0, 1]}))
    (done.batch.parent / "logs").write_text("not a folder")
    assert run_local_main([str(done.batch), "--jobs", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: Cannot write the job log {done.batch.parent / 'logs'}") and "free space" in error
    assert not any(job.run_dir.exists() for job in read_batch(done.batch))
