"""The local runner on a GPU box: each job gets free GPUs through CUDA_VISIBLE_DEVICES; GPUs that others use are
skipped. nvidia-smi is a fake on PATH (tests/fake_nvidia_smi.py); the jobs train on the CPU."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.errors import UserError
from src.run import layout
from src.run.status import status_of
from src.runners import gpus as G
from src.runners.batch import read_batch
from src.searches.experiment import grid, prepare
from tests.helpers import FAST, ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process trees come from /proc")

# accelerator='cpu': CUDA_VISIBLE_DEVICES=0 would otherwise train on a real GPU where there is one
TEMPLATE = "include 'configs/cnn.gin'\n" + "\n".join(FAST) + "\ntraining_loop.n_epochs = 1\n"
TEMPLATE += "training_loop.accelerator = 'cpu'\n"


@pytest.fixture
def fake_gpus(tmp_path, monkeypatch):
    """fake_gpus(n, foreign=[...]) puts a fake nvidia-smi with n GPUs on PATH (here and in the returned env)."""
    bin_dir, state = tmp_path / "fake-bin", tmp_path / "gpus.json"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\nexec {sys.executable} {ROOT / "tests" / "fake_nvidia_smi.py"} "$@"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GPUS", str(state))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def make(n: int, foreign: list[dict] = ()) -> dict:
        write_json(state, {"gpus": [{"name": "Fake GPU", "memory_total": 16000}] * n, "foreign": list(foreign)})
        return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    make.state = state
    return make


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # the fake never reads half a file


def run_local(batch, *args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bin/run_local.py", str(batch), *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def placements(batch) -> dict[str, tuple[str, float, float]]:
    """run name -> (its CUDA_VISIBLE_DEVICES, when its process started, when its training ended)."""
    found = {}
    for job in read_batch(batch):
        attempts = json.loads((job.run_dir / layout.META).read_text())["attempts"]
        assert len(attempts) == 1 and isinstance(attempts[0]["gpus"], list)  # trained once; GPU names recorded
        log = (batch.parent / "logs" / f"{job.run_dir.name}.log").read_text()
        started = float(re.findall(r"==> started \S+ \(([\d.]+)\)", log)[-1])
        found[job.run_dir.name] = (attempts[0]["cuda_visible_devices"], started, attempts[0]["end_unix"])
    return found


def overlap(a, b) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_jobs_run_on_the_free_gpus_only_one_per_gpu(experiment, fake_gpus):
    env = fake_gpus(3, foreign=[{"gpu": 1, "pid": 1, "memory": 3000}])
    done = prepare(experiment, "tiny", grid({"training_loop.seed": [0, 1, 2, 3]}))
    out = run_local(done.batch, "--jobs", "2", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 to run, at most 2 at a time on GPUs 0,1,2 (1 GPU per job, 1 job per GPU)" in out.stdout
    assert out.stdout.count("is busy") == 1  # said once; our own jobs on GPUs 0 and 2 are not "others"
    assert "GPU 1 (Fake GPU) is busy, in use by pid 1" in out.stdout
    placed = placements(done.batch)
    assert {p[0] for p in placed.values()} == {"0", "2"}
    for a in placed.values():
        for b in placed.values():
            assert a is b or a[0] != b[0] or not overlap(a, b)  # never two jobs on one GPU at once
    assert all(status_of(job.run_dir) == "finished" for job in read_batch(done.batch))


def test_two_jobs_share_a_gpu_with_jobs_per_gpu_2(experiment, fake_gpus):
    env = fake_gpus(3, foreign=[{"gpu": 1, "pid": 1}])
    done = prepare(experiment, "tiny", grid({"training_loop.seed": [0, 1, 2, 3]}))
    # --jobs: as many as the GPUs take; --cold: jobs long enough (the imports) to overlap whatever the machine's load
    out = run_local(done.batch, "--jobs-per-gpu", "2", "--cold", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 to run, at most 6 at a time" in out.stdout
    placed = list(placements(done.batch).values())
    assert sorted(p[0] for p in placed) == ["0", "0", "2", "2"]
    for gpu in ("0", "2"):
        a, b = [p for p in placed if p[0] == gpu]
        assert overlap(a, b)


def test_a_gpu_that_becomes_busy_is_not_given_the_next_job(experiment, fake_gpus):
    done = prepare(experiment, "tiny", grid({"training_loop.seed": [0, 1]}))
    first = read_batch(done.batch)[0].run_dir
    # someone starts on GPU 0 while the first job runs there (seen once that job is done)
    env = fake_gpus(2, foreign=[{"gpu": 0, "pid": 1, "when_exists": str(first / layout.FINISHED)}])
    out = run_local(done.batch, "--jobs", "1", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert [p[0] for p in placements(done.batch).values()] == ["0", "1"]  # the least loaded, lowest index: 0
    assert "GPU 0 (Fake GPU) is busy, in use by pid 1" in out.stdout


def test_no_free_gpu_waits_and_says_why(experiment, fake_gpus):
    env = fake_gpus(1, foreign=[{"gpu": 0, "pid": 1}])
    done = prepare(experiment, "tiny", grid({"training_loop.seed": [0]}))
    runner = subprocess.Popen(
        [sys.executable, "bin/run_local.py", str(done.batch)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = [runner.stdout.readline() for _ in range(3)]
        assert "waiting for a free GPU (GPU 0: in use by pid 1" in lines[2], lines
        time.sleep(6)  # a look or two later: still waiting, not oversubscribing, and not said again
        assert runner.poll() is None and not (read_batch(done.batch)[0].run_dir / layout.META).exists()
        fake_gpus(1)  # the colleague's process ends
        out, _ = runner.communicate(timeout=120)
    finally:
        runner.kill()
    assert runner.returncode == 0, out
    assert "GPU 0 (Fake GPU) is free again" in out and "waiting" not in out
    assert [p[0] for p in placements(done.batch).values()] == ["0"]


def test_two_runners_on_one_batch_with_different_gpus_train_each_run_once(experiment, fake_gpus):
    """Two boxes sharing a file system, or a second runner on the same box: the run lock shares out the runs."""
    env = fake_gpus(2)
    done = prepare(experiment, "tiny", grid({"training_loop.seed": [0, 1, 2, 3]}))
    runners = [
        subprocess.Popen(
            [sys.executable, "bin/run_local.py", str(done.batch), "--gpus", gpu],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for gpu in ("0", "1")
    ]
    outs = [r.communicate(timeout=300)[0] for r in runners]
    assert [r.returncode for r in runners] == [0, 0], outs
    placed = placements(done.batch)  # each run trained exactly once
    for gpu, out in zip(("0", "1"), outs, strict=True):
        trained = re.findall(r"\] (\S+): ok in", out)
        assert all(placed[name][0] == gpu for name in trained)
    assert sum(len(re.findall(r": ok in", out)) for out in outs) == 4
    for job in read_batch(done.batch):
        assert status_of(job.run_dir) == "finished" and not (job.run_dir / layout.FAILED).exists()


# the parts, without processes


def gpu(index: int, used: float = 0.0, total: float = 16000.0) -> G.Gpu:
    return G.Gpu(index, f"GPU-{index}", "Fake GPU", used, total)


def test_busy_reason_tells_foreign_processes_and_memory_from_our_own():
    own = {100, 101}
    assert G.busy_reason(gpu(0), [G.App("GPU-0", 100, 5000)], own, 0.2) is None
    assert G.busy_reason(gpu(0), [G.App("GPU-1", 7, 5000)], own, 0.2) is None  # another GPU's process
    assert "in use by pid 7" in G.busy_reason(gpu(0), [G.App("GPU-0", 7, 10)], own, 0.2)
    # 5000 MiB used, 4000 of them by our job: 1000 by others, under 20 % of 16000
    assert G.busy_reason(gpu(0, used=5000), [G.App("GPU-0", 100, 4000)], own, 0.2) is None
    assert G.busy_reason(gpu(0, used=5000), [G.App("GPU-0", 100, 1000)], own, 0.2) == (
        "4000 of 16000 MiB used by others"
    )
    assert G.busy_reason(gpu(0, used=5000), [], own, 0.5) is None
    # our job's share unknown ([N/A]): only a foreign process makes the GPU busy
    assert G.busy_reason(gpu(0, used=15000), [G.App("GPU-0", 100, None)], own, 0.2) is None
    assert G.number("[N/A]") is None and G.number("1024") == 1024.0


def test_choose_spreads_jobs_over_the_least_loaded_gpus():
    free = [gpu(0), gpu(2), gpu(3)]
    assert G.choose(free, {0: 0, 2: 0, 3: 0}, per_job=1, per_gpu=2) == [gpu(0)]
    assert G.choose(free, {0: 1, 2: 0, 3: 0}, per_job=1, per_gpu=2) == [gpu(2)]
    assert G.choose(free, {0: 1, 2: 0, 3: 1}, per_job=2, per_gpu=2) == [gpu(0), gpu(2)]
    assert G.choose(free, {0: 1, 2: 1, 3: 0}, per_job=2, per_gpu=1) is None
    assert G.choose([], {}, per_job=1, per_gpu=1) is None


def test_descendants_follow_the_process_tree():
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen(['sleep', '30']); print(p.pid); sys.stdout.flush(); p.wait()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        grandchild = int(child.stdout.readline())
        assert {child.pid, grandchild} <= G.descendants([child.pid]) <= G.descendants([os.getpid()])
        assert os.getpid() not in G.descendants([child.pid])
    finally:
        child.kill()
        child.wait()
        os.kill(grandchild, 9)


def test_setup_reads_nvidia_smi_and_checks_the_options(fake_gpus, monkeypatch):
    fake_gpus(3)
    assert [g.index for g in G.query_gpus()] == [0, 1, 2] and G.query_gpus()[2].name == "Fake GPU"
    pool, _ = G.setup(None, None, 1, 0.2)
    assert [g.index for g in pool.gpus] == [0, 1, 2] and pool.per_job == 1 and pool.slots == 3
    pool, _ = G.setup("2,0", 2, 3, 0.2)
    assert [g.index for g in pool.gpus] == [2, 0] and pool.slots == 3
    assert G.setup(None, 0, 1, 0.2) == (None, "")  # CPU jobs: the GPUs are hidden from them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-fake-1")
    assert [g.index for g in G.setup(None, None, 1, 0.2)[0].gpus] == [1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert G.setup(None, None, 1, 0.2) == (None, "")
    with pytest.raises(UserError, match=r"--gpus '0,5': no GPU '5' on this machine. GPUs here: 0, 1, 2."):
        G.setup("0,5", None, 1, 0.2)
    with pytest.raises(UserError, match=r"--gpus-per-job 2: not enough GPUs \(GPUs allowed: 1\)"):
        G.setup("1", 2, 1, 0.2)
    with pytest.raises(UserError, match="--jobs-per-gpu must be at least 1, got 0"):
        G.setup(None, None, 0, 0.2)
    with pytest.raises(UserError, match="--max-gpu-memory must be a percentage from 0 to 100, got 150"):
        G.setup(None, None, 1, 1.5)
    monkeypatch.setenv("PATH", "/nonexistent")  # a machine without GPUs
    assert G.setup(None, None, 1, 0.2) == (None, None)
    with pytest.raises(UserError, match=r"--gpus-per-job 1: not enough GPUs \(nvidia-smi is not on PATH\)"):
        G.setup(None, 1, 1, 0.2)


def test_the_pool_rechecks_before_every_job_and_says_each_change_once(monkeypatch):
    state = {"gpus": [gpu(0), gpu(1, used=10000)], "apps": []}
    monkeypatch.setattr(G, "query_gpus", lambda: state["gpus"])
    monkeypatch.setattr(G, "query_apps", lambda: state["apps"])
    pool, said = G.GpuPool([gpu(0), gpu(1)], per_job=1, per_gpu=1, max_memory_used=0.2), []
    assert pool.take([], said.append) == [gpu(0)]
    assert said == ["GPU 1 (Fake GPU) is busy, 10000 of 16000 MiB used by others: not given jobs while it is"]
    child = os.getpid()  # stands for our job on GPU 0: its process is ours, not a colleague's
    state["apps"] = [G.App("GPU-0", child, 3000)]
    assert pool.take([child], said.append) is None  # GPU 0 runs our job, GPU 1 is busy: wait
    assert said[1:] == ["waiting for a free GPU (GPU 1: 10000 of 16000 MiB used by others)"]
    state["gpus"] = [gpu(0, used=3000), gpu(1, used=10500)]  # the colleague's memory grows: nothing new to say
    assert pool.take([child], said.append) is None and len(said) == 2
    state["gpus"] = [gpu(0, used=3000), gpu(1)]
    assert pool.take([child], said.append) == [gpu(1)]
    assert said[2:] == ["GPU 1 (Fake GPU) is free again"]
    pool.release([gpu(0)])
    state["apps"] += [G.App("GPU-0", 1, 100)]  # someone starts on GPU 0 after our job there ended
    assert pool.take([child], said.append) is None
    colleague = G.owner(1)  # "pid 1 (root)"
    assert said[3:] == [
        f"GPU 0 (Fake GPU) is busy, in use by {colleague}: not given jobs while it is",
        f"waiting for a free GPU (GPU 0: in use by {colleague})",
    ]
