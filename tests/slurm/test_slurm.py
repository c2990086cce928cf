"""A real single-node SLURM on this machine (tests/slurm/start_cluster.sh): job arrays end to end, and a task
cancelled mid-run that resumes when resubmitted. Skipped only where SLURM cannot be installed, never in CI."""

import json
import os
import shutil
import subprocess
import sys
import time

import pandas as pd

from src.run import layout
from src.run.status import status_of
from src.runners.batch import read_batch
from src.runners.slurm import SlurmOptions, submit
from tests.helpers import FAST, ROOT, wait_for


def prepared_tune_lr(tmp_path) -> tuple:
    """The tune_lr experiment copied to tmp_path, its small grid prepared with results under tmp_path."""
    experiment = tmp_path / "tune_lr"
    shutil.copytree(ROOT / "experiments" / "tune_lr", experiment, ignore=shutil.ignore_patterns("small", "large"))
    env = {**os.environ, "RESULTS_DIR": str(tmp_path / "results"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(experiment / "main.py"), "prepare", "--name", "small"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "4 to run" in out.stdout
    return experiment / "small" / "batch.sh", env


def test_tune_lr_small_grid_as_a_job_array(slurm, tmp_path, monkeypatch):
    batch, env = prepared_tune_lr(tmp_path)
    monkeypatch.setenv("RESULTS_DIR", env["RESULTS_DIR"])
    job_id = submit(batch, SlurmOptions(max_jobs=2, cpus=1))
    assert job_id and job_id.isdigit()
    script = (batch.parent / "slurm" / "array.sh").read_text()
    assert "#SBATCH --array=0-3%2" in script and "#SBATCH --requeue" in script
    assert "#SBATCH --signal=B:USR1@90" in script
    wait_for(job_id)
    for i, job in enumerate(read_batch(batch)):
        assert status_of(job.run_dir) == "finished", (job.run_dir / layout.STDERR).read_text()[-2000:]
        assert list(pd.read_csv(job.run_dir / layout.HISTORY)["epoch"]) == [1, 2, 3]
        # the task's log (the script's lines), and the training process's own (rank 0), unbuffered
        logs = sorted(p.name for p in job.run_dir.glob(f"slurm-{job_id}_*.out"))
        assert logs == [f"slurm-{job_id}_{i}-rank0.out", f"slurm-{job_id}_{i}.out"]
        assert "epoch 3/3" in (job.run_dir / logs[0]).read_text()
        assert f"task {job_id}_{i} on " in (job.run_dir / logs[1]).read_text()
    # everything is finished: nothing is submitted again
    assert submit(batch, SlurmOptions()) is None


def submit_one_run(tmp_path, n_epochs: int, until_epoch: int) -> tuple:
    """(batch file, run folder, job id) of one fast digits run submitted as an array task, once it has
    finished `until_epoch` epochs. RESULTS_DIR must point into tmp_path."""
    from src.searches.experiment import grid, prepare

    experiment = tmp_path / "long"
    experiment.mkdir()
    (experiment / "template_config.gin").write_text(
        "include 'configs/cnn.gin'\n" + "\n".join(FAST) + "\nheartbeat.interval = 1\n"
    )
    done = prepare(experiment, "one", grid({"training_loop.n_epochs": [n_epochs]}))
    run = read_batch(done.batch)[0].run_dir
    job_id = submit(done.batch, SlurmOptions(max_jobs=1))
    deadline = time.time() + 300
    while layout.last_epoch(run) < until_epoch:
        assert time.time() < deadline, f"the task never got to epoch {until_epoch}"
        time.sleep(0.1)
    return done.batch, run, job_id


def test_cancelled_task_resumes_when_resubmitted(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    batch, run, job_id = submit_one_run(tmp_path, n_epochs=150, until_epoch=3)
    subprocess.run(["scancel", job_id], check=True)
    wait_for(job_id)
    stopped_at = layout.last_epoch(run)
    assert 3 <= stopped_at < 150 and status_of(run) != "finished"
    assert not (run / layout.FAILED).exists()  # cancelled is not failed

    job_id = submit(batch, SlurmOptions(max_jobs=1))
    wait_for(job_id)
    assert status_of(run) == "finished"
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == list(range(1, 151))
    attempts = json.loads((run / layout.META).read_text())["attempts"]
    assert len(attempts) == 2 and attempts[1]["start_epoch"] >= 3  # resumed, not restarted


def test_preempted_task_checkpoints_requeues_itself_and_finishes(slurm, tmp_path, monkeypatch):
    """SLURM's preemption warning (USR1 to the batch script, as `--signal=B:USR1@90` sends it): the run saves
    preempted.ckpt at a batch end and stops, the task script requeues the task; the requeued task continues from
    there and finishes."""
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    _, run, job_id = submit_one_run(tmp_path, n_epochs=60, until_epoch=2)
    deadline = time.time() + 300
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{job_id}_0"], check=True)
    while status_of(run) != "finished":  # squeue may list nothing for a moment while the task is requeued
        assert time.time() < deadline, f"the requeued task did not finish: {status_of(run)}"
        time.sleep(0.2)
    wait_for(job_id)

    stderr = (run / layout.STDERR).read_text()
    assert "preempted: " in stderr and f"task script requeues SLURM job {job_id}_0 once every process" in stderr
    log = "".join(p.read_text() for p in run.glob(f"slurm-{job_id}_*.out"))
    assert log.count(f"preempted: requeueing SLURM job {job_id}_0") == 1  # once, by the task script
    resumed_from = run / (layout.PREEMPTED_CKPT if "preempted: saved" in stderr else layout.LAST_CKPT)
    assert f"Resuming from {resumed_from}" in (run / layout.STDOUT).read_text()
    assert status_of(run) == "finished" and not (run / layout.PREEMPTED_CKPT).exists()
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == list(range(1, 61))
    assert len(json.loads((run / layout.META).read_text())["attempts"]) == 2


def test_more_runs_than_the_cluster_s_max_array_size_are_several_arrays_sbatch_accepts(slurm, tmp_path, capsys):
    """1,100 runs, MaxArraySize 1001 (scontrol show config): two arrays, task ids from 0 each, that sbatch
    --test-only accepts (one array of 1,100 tasks it refuses: "Invalid job array specification")."""
    from src.runners.batch import Job, write_batch
    from src.runners.slurm import max_array_size

    assert max_array_size() == 1001
    jobs = [Job((str(tmp_path / "results" / f"run{i:04d}"), "configs/cnn.gin")) for i in range(1100)]
    (tmp_path / "exp" / "big").mkdir(parents=True)
    batch = write_batch(tmp_path / "exp" / "big" / "batch.sh", jobs, "1,100 runs")
    assert submit(batch, SlurmOptions(max_jobs=8, setup=("true",)), test_only=True) is None
    out = capsys.readouterr().out
    slurm = batch.parent / "slurm"
    assert out.count("sbatch would accept") == 2 and f"sbatch would accept {slurm / 'array-1.sh'}" in out
    assert "#SBATCH --array=0-1000%8\n" in (slurm / "array.sh").read_text()
    assert "#SBATCH --array=0-98%8\n" in (slurm / "array-1.sh").read_text()
    assert f"    0) set -- {tmp_path}/results/run1001 " in (slurm / "array-1.sh").read_text()
    one = subprocess.run(["sbatch", "--test-only", "--array=0-1099", "--wrap", "true"], capture_output=True, text=True)
    assert one.returncode != 0 and "Invalid job array specification" in one.stderr
