"""One run on 2 processes under the real single-node SLURM of tests/slurm/test_slurm.py (`--tasks-per-node 2`, srun,
DDP on CPU): it ends exactly as the same 2-process run started with bin/train.py, also when preempted mid-epoch
and requeued, or cancelled and resubmitted; a config that asks for other processes than the allocation fails with
one line. Each run here takes about a minute on 2 shared cores."""

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from src.errors import UserError
from src.run import layout
from src.run.status import status_of
from src.runners.batch import read_batch
from src.runners.slurm import SlurmOptions, submit
from tests.helpers import FAST, ROOT, wait_for

# Full digits in batches of 8: 75 steps per epoch in each of the 2 processes, long enough to preempt mid-epoch.
CONFIG = [
    *[b for b in FAST if not b.startswith(("digits.", "training_loop.n_epochs"))],
    "digits.batch_size = 8",
    "training_loop.n_epochs = 2",
    "training_loop.accelerator = 'cpu'",
    "training_loop.strategy = 'ddp'",
    "progress_log.every_n_steps = 10",
    "preemption.ddp_every_n_steps = 5",
    "heartbeat.interval = 1",
]
METRICS = ["epoch", "step", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr"]
STEPS = 150  # 2 epochs of 75 steps


@pytest.fixture(scope="module")
def local_ddp(tmp_path_factory):
    """(history, test metrics) of the same run on 2 processes started locally (Lightning's own DDP launcher)."""
    run = tmp_path_factory.mktemp("local") / "run"
    out = subprocess.run(
        [
            sys.executable,
            "bin/train.py",
            str(run),
            "configs/cnn.gin",
            "-b",
            "#".join([*CONFIG, "training_loop.devices=2"]),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return results(run)


def results(run) -> tuple[pd.DataFrame, dict]:
    test = json.loads((run / layout.EVAL_RESULTS).read_text())
    return pd.read_csv(run / layout.HISTORY)[METRICS], {k: v for k, v in test.items() if k.startswith("test_")}


def assert_same_as(run, reference) -> None:
    history, test = results(run)
    pd.testing.assert_frame_equal(history, reference[0], check_exact=True)
    assert test == reference[1]


def submit_ddp_run(tmp_path, monkeypatch, *extra: str, tasks_per_node: int = 2) -> tuple:
    """(batch file, run folder, job id) of the run, prepared as a one-run experiment and submitted as one array task
    of `tasks_per_node` processes."""
    from src.searches.experiment import grid, prepare

    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    experiment = tmp_path / "ddp"
    experiment.mkdir()
    (experiment / "template_config.gin").write_text("include 'configs/cnn.gin'\n" + "\n".join([*CONFIG, *extra]))
    done = prepare(experiment, "one", grid({"supervised.lr": [0.003]}))
    job_id = submit(done.batch, SlurmOptions(max_jobs=1, tasks_per_node=tasks_per_node))
    assert "#SBATCH --ntasks-per-node=2\n" in (done.batch.parent / "slurm" / "array.sh").read_text()
    return done.batch, read_batch(done.batch)[0].run_dir, job_id


def wait_for_step(run, step: int, timeout: float = 300) -> None:
    """Until rank 0's progress log shows `step` (progress_log.every_n_steps = 10)."""
    deadline = time.time() + timeout
    while f"step {step}/{STEPS} " not in ((run / layout.STDOUT).read_text() if (run / layout.STDOUT).exists() else ""):
        assert time.time() < deadline, f"the run never got to step {step}"
        time.sleep(0.05)


def attempts(run) -> list[dict]:
    return json.loads((run / layout.META).read_text())["attempts"]


def slurm_log(run, job_id: str) -> str:
    return "".join(p.read_text() for p in run.glob(f"slurm-{job_id}_*.out"))


def test_two_processes_under_srun_equal_the_local_ddp_run(slurm, local_ddp, tmp_path, monkeypatch):  # noqa: F811
    from src.analysis.runs_table import runs_table

    _, run, job_id = submit_ddp_run(tmp_path, monkeypatch)
    wait_for(job_id)
    assert status_of(run) == "finished", slurm_log(run, job_id)[-3000:]
    assert_same_as(run, local_ddp)
    meta = json.loads((run / layout.META).read_text())
    assert (meta["world_size"], meta["nodes"]) == (2, 1)
    [attempt] = meta["attempts"]
    assert (attempt["world_size"], attempt["nodes"]) == (2, 1)
    assert attempt["slurm"]["array_job_id"] == job_id and attempt["slurm"]["array_task_id"] == "0"
    log = slurm_log(run, job_id)
    assert "2 process(es) on 1 node(s)" in log and "Starting with 2 processes" in log
    ranks = sorted(p.name for p in run.glob(f"slurm-{job_id}_0-rank*.out"))  # one log per process
    assert ranks == [f"slurm-{job_id}_0-rank0.out", f"slurm-{job_id}_0-rank1.out"]
    assert log.count("test (best checkpoint)") == 1  # rank 0 reports; both processes tested
    table = runs_table(tmp_path / "results")
    assert list(table["status"]) == ["finished"]  # one run, not one per process


def test_preempted_mid_epoch_requeued_once_ends_as_the_uninterrupted_run(slurm, local_ddp, tmp_path, monkeypatch):  # noqa: F811
    """USR1 to the batch script (as `--signal=B:USR1@90` sends it) in epoch 2: the script passes it to both
    processes through srun, they stop after the same batch with one preempted.ckpt, the script requeues the task
    once, and the requeued task resumes from that batch."""
    _, run, job_id = submit_ddp_run(tmp_path, monkeypatch)
    wait_for_step(run, 90)  # epoch 2 is 15 steps in
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{job_id}_0"], check=True)
    deadline = time.time() + 400
    while status_of(run) != "finished":  # squeue may list nothing for a moment while the task is requeued
        assert time.time() < deadline, f"the requeued task did not finish: {slurm_log(run, job_id)[-3000:]}"
        time.sleep(0.5)
    wait_for(job_id)

    stderr, log = (run / layout.STDERR).read_text(), slurm_log(run, job_id)
    assert f"preempted: saved {run / layout.PREEMPTED_CKPT} after step" in stderr  # mid-epoch
    saved_at = int(stderr.split("after step ")[1].split(";")[0])
    assert 90 < saved_at < STEPS and saved_at % 5 == 0  # both processes agree every 5 steps
    assert log.count(f"preempted: requeueing SLURM job {job_id}_0") == 1
    assert f"Resuming from {run / layout.PREEMPTED_CKPT}" in (run / layout.STDOUT).read_text()
    assert not (run / layout.PREEMPTED_CKPT).exists()
    first, second = attempts(run)
    assert second["start_epoch"] == 1 and second["slurm"]["restart_count"] == "1"
    assert first["world_size"] == second["world_size"] == 2
    assert_same_as(run, local_ddp)


def test_cancelled_two_process_task_resumes_when_resubmitted(slurm, local_ddp, tmp_path, monkeypatch):  # noqa: F811
    batch, run, job_id = submit_ddp_run(tmp_path, monkeypatch)
    wait_for_step(run, 90)  # epoch 1's last.ckpt is saved
    subprocess.run(["scancel", job_id], check=True)
    wait_for(job_id)
    failed = run / layout.FAILED
    assert status_of(run) not in ("finished", "failed"), failed.read_text() if failed.exists() else ""  # cancelled

    job_id = submit(batch, SlurmOptions(max_jobs=1, tasks_per_node=2))
    wait_for(job_id)
    assert status_of(run) == "finished", slurm_log(run, job_id)[-3000:]
    assert [a["start_epoch"] for a in attempts(run)] == [0, 1]  # resumed, not restarted
    assert_same_as(run, local_ddp)


def test_config_that_disagrees_with_the_allocation_fails_with_one_line(slurm, tmp_path, monkeypatch):  # noqa: F811
    _, run, job_id = submit_ddp_run(tmp_path, monkeypatch, "training_loop.devices = 3")
    wait_for(job_id)
    reason = (
        "training_loop.devices=3 asks for 3 processes per node, but the SLURM allocation runs 2 "
        "(--ntasks-per-node=2): set training_loop.devices='auto' or submit with --tasks-per-node 3."
    )
    assert status_of(run) == "failed"
    assert (run / layout.FAILED).read_text() == f"UserError: {reason}\n"
    assert f"error: {reason}\n" in slurm_log(run, job_id)
    assert "Traceback" not in slurm_log(run, job_id)


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({}, {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2"}, {"devices": 4, "num_nodes": 2}),
        ({"devices": "auto"}, {"SLURM_NTASKS": "1"}, {"devices": 1, "num_nodes": 1}),
        ({"devices": [0, 1]}, {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2"}, {"devices": [0, 1], "num_nodes": 1}),
        ({"num_nodes": 1}, {"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "2"}, "num_nodes=1"),
        ({"devices": 4}, {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2"}, "devices=4 asks for 4 processes"),
        ({"devices": 4}, {}, {"devices": 4}),  # not under SLURM: the flags as they are
    ],
)
@pytest.mark.filterwarnings("ignore:The `srun` command")
def test_devices_and_num_nodes_follow_the_allocation(monkeypatch, flags, env, expected):
    from src.training.lightning_trainer import follow_allocation

    for var in [v for v in os.environ if v.startswith("SLURM_")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if isinstance(expected, str):
        with pytest.raises(UserError, match=expected):
            follow_allocation(flags)
    else:
        assert follow_allocation(flags) == expected
