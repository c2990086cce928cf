"""Experiments: prepare, batch.sh, the local runner, status, report, runs.py / diff_runs.py."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from src.errors import RunInUse, UserError
from src.run import layout
from src.run import lock as run_lock
from src.run.status import status_of
from src.runners.batch import read_batch
from src.searches.experiment import grid, prepare, random_search
from tests.helpers import FAST, ROOT, fake_run, lock_holder

TEMPLATE = "include 'configs/cnn.gin'\n" + "\n".join(FAST) + "\ntraining_loop.n_epochs = 1\n"


def fake_finished(run_dir, config_text):
    """What a finished run leaves that prepare looks at: its input config copy and FINISHED."""
    (run_dir / layout.INPUT_CONFIGS).mkdir(parents=True)
    (run_dir / layout.INPUT_CONFIGS / f"{run_dir.name}.gin").write_text(config_text)
    (run_dir / layout.FINISHED).touch()


def test_search_spaces():
    assert grid({"a.x": [1, 2], "b.y": ["u", "v"]}, {"c.z": 0}) == [
        {"a.x": 1, "b.y": "u", "c.z": 0},
        {"a.x": 1, "b.y": "v", "c.z": 0},
        {"a.x": 2, "b.y": "u", "c.z": 0},
        {"a.x": 2, "b.y": "v", "c.z": 0},
    ]
    points = random_search({"a.lr": ("log", 1e-4, 1e-1), "a.w": [8, 16]}, n=20, seed=3)
    assert points == random_search({"a.lr": ("log", 1e-4, 1e-1), "a.w": [8, 16]}, n=20, seed=3)
    assert all(1e-4 <= p["a.lr"] <= 1e-1 and p["a.w"] in (8, 16) for p in points)
    assert len({p["a.lr"] for p in points}) > 10


def test_prepare_writes_configs_and_batch(experiment, tmp_path):
    done = prepare(experiment, "tiny", grid({"supervised.lr": [0.01, 0.1], "training_loop.seed": [0, 1]}))
    names = ["lr=0.01_seed=0", "lr=0.01_seed=1", "lr=0.1_seed=0", "lr=0.1_seed=1"]
    assert done.todo == names and done.finished == [] == done.changed
    config = (experiment / "tiny" / "configs" / "lr=0.1_seed=1.gin").read_text()
    assert config.startswith(TEMPLATE.rstrip()) and "supervised.lr = 0.1\ntraining_loop.seed = 1\n" in config
    jobs = read_batch(done.batch)
    assert [j.run_dir for j in jobs] == [tmp_path / "results" / "exp" / "tiny" / n for n in names]
    assert all(j.run_dir.is_absolute() and os.path.isabs(j.args[1]) for j in jobs)
    text = done.batch.read_text()
    assert "set -u" in text and os.access(done.batch, os.X_OK)


def test_prepare_again_lists_only_unfinished_and_reports_changed(experiment, tmp_path):
    points = grid({"supervised.lr": [0.01, 0.1, 1.0]})
    prepare(experiment, "tiny", points)
    runs = tmp_path / "results" / "exp" / "tiny"
    configs = experiment / "tiny" / "configs"
    fake_finished(runs / "lr=0.01", (configs / "lr=0.01.gin").read_text())
    fake_finished(runs / "lr=0.1", "supervised.lr = 0.1  # an older template\n")
    done = prepare(experiment, "tiny", points)
    assert done.todo == ["lr=1.0"] and done.finished == ["lr=0.01"] and done.changed == ["lr=0.1"]
    assert [j.run_dir.name for j in read_batch(done.batch)] == ["lr=1.0"]
    # the changed run's stored config is left alone
    assert "older template" in (runs / "lr=0.1" / layout.INPUT_CONFIGS / "lr=0.1.gin").read_text()


def test_bash_batch_runs_every_line_and_reports_failures(experiment, tmp_path):
    # lr = -1 fails at start (one clear error); the other line still runs; the script exits non-zero
    done = prepare(experiment, "tiny", grid({"supervised.lr": [-1.0, 0.01]}))
    out = subprocess.run(
        ["bash", str(done.batch)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1
    assert "lr must be a positive number, got -1.0" in out.stderr and "batch: 1 job(s) failed" in out.stderr
    runs = tmp_path / "results" / "exp" / "tiny"
    assert status_of(runs / "lr=0.01") == "finished"
    assert not (runs / "lr=-1.0").exists()  # never started: no folder
    # re-running the batch skips nothing by itself, but finished runs return at once
    again = prepare(experiment, "tiny", grid({"supervised.lr": [-1.0, 0.01]}))
    assert again.todo == ["lr=-1.0"]


def test_local_runner_parallel_skips_finished_and_counts_failures(experiment, tmp_path, capsys):
    from src.runners.local import run_local

    done = prepare(experiment, "tiny", grid({"supervised.lr": [0.01, 0.03, -1.0]}, {"training_loop.n_epochs": 6}))
    assert run_local(done.batch, jobs=2, quiet=True) == 1
    out = capsys.readouterr().out
    assert "2 succeeded, 1 failed" in out and "failed: " in out
    runs = tmp_path / "results" / "exp" / "tiny"
    assert (experiment / "tiny" / "logs" / "lr=-1.0.log").read_text().count("lr must be a positive number") == 1
    # the two jobs ran at the same time: each process started before the other's training ended
    logs = experiment / "tiny" / "logs"
    started = {
        n: float(re.search(r"==> started \S+ \(([\d.]+)\)", (logs / f"{n}.log").read_text())[1])
        for n in ("lr=0.01", "lr=0.03")
    }
    ended = {n: json.loads((runs / n / layout.META).read_text())["attempts"][0]["end_unix"] for n in started}
    assert started["lr=0.01"] < ended["lr=0.03"] and started["lr=0.03"] < ended["lr=0.01"]

    # second call: the finished runs are skipped, only the failing one runs again
    assert run_local(done.batch, jobs=2, quiet=True) == 1
    assert "2 finished (skipped), 1 to run" in capsys.readouterr().out


def test_local_runner_records_exit_code_of_a_killed_job(experiment, tmp_path):
    from src.run.status import record_exit

    run = tmp_path / "results" / "exp" / "tiny" / "r"
    run.mkdir(parents=True)
    assert record_exit(run, -9)
    assert status_of(run) == "failed" and "-9" in (run / layout.FAILED).read_text()
    assert not record_exit(tmp_path / "none", 1)  # never created: nothing to record
    assert not (tmp_path / "none").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    holder = lock_holder(taken)  # another runner started the run meanwhile: its failure is not this job's
    try:
        assert not record_exit(taken, 1)
    finally:
        holder.kill()
        holder.wait()
    assert not (taken / layout.FAILED).exists()


def test_runner_errors(tmp_path):
    from src.runners.local import run_local
    from src.runners.slurm import SlurmOptions, submit

    empty = tmp_path / "batch.sh"
    empty.write_text("#!/usr/bin/env bash\nset -u\n")
    with pytest.raises(UserError, match="is not a batch file: it has no job lines"):
        run_local(empty)
    with pytest.raises(UserError, match="does not exist"):
        submit(tmp_path / "missing.sh", SlurmOptions())
    with pytest.raises(UserError, match="--jobs must be at least 1"):
        run_local(empty, jobs=0)


def test_status_classification(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert status_of(run) == "pending"
    (run / layout.HEARTBEAT).write_text("30.0\n")
    assert status_of(run) == "running"
    old = time.time() - 3600
    os.utime(run / layout.HEARTBEAT, (old, old))
    assert status_of(run) == "dead"
    assert status_of(run, now=old + 10) == "running"
    from src.run import lock as run_lock

    run_lock.acquire(run)  # a live process holds the lock: fresh heartbeat means running
    assert status_of(run, now=old + 10) == "running"
    run_lock.release(run)  # the lock is free: the process is gone, whatever the heartbeat says
    assert status_of(run, now=old + 10) == "dead"
    (run / layout.FAILED).write_text("exit code 1\n")
    assert status_of(run) == "failed"
    (run / layout.FINISHED).touch()
    assert status_of(run) == "finished"


def test_a_run_another_process_trains_is_skipped_not_failed(experiment, tmp_path, env):
    """Two runners on the same batch (or a resubmitted SLURM array): the second leaves the busy run alone."""
    from src.run.status import record_exit

    done = prepare(experiment, "tiny", grid({"supervised.lr": [0.01]}))
    job = read_batch(done.batch)[0]
    job.run_dir.mkdir(parents=True)
    holder = lock_holder(job.run_dir)
    try:
        batch = subprocess.run(["bash", str(done.batch)], cwd=ROOT, env=env, capture_output=True, text=True)
        assert batch.returncode == 0 and f"batch: skipped, another process trains in {job.run_dir}" in batch.stderr
        alone = subprocess.run(job.command(), cwd=ROOT, env=env, capture_output=True, text=True)
        assert alone.returncode == RunInUse.exit_code and "is in use by pid" in alone.stderr
        record_exit(job.run_dir, alone.returncode)  # what bin/run_local.py does with a job's exit code
        local = subprocess.run(
            [sys.executable, "bin/run_local.py", str(done.batch)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert local.returncode == 0 and "0 succeeded, 0 failed, 1 skipped (in use by another process)" in local.stdout
        assert [p.name for p in job.run_dir.iterdir()] == [run_lock.LOCK]  # no FAILED, nothing written
    finally:
        holder.kill()
        holder.wait()


def test_report_on_partial_results(experiment, tmp_path, capsys, train):
    from src.searches.report import report

    points = grid({"supervised.lr": [0.01, 0.03, 0.1]})
    prepare(experiment, "tiny", points)
    runs = tmp_path / "results" / "exp" / "tiny"
    for lr in (0.01, 0.03):  # two real runs, one never started
        train(runs / f"lr={lr}", f"supervised.lr = {lr}", "training_loop.n_epochs = 2")
    (runs / "lr=0.03" / layout.FINISHED).unlink()  # looks like a run that died
    os.utime(runs / "lr=0.03" / layout.HEARTBEAT, (0, 0))

    table = report(experiment, "tiny", points, None, "valid_acc")
    out = capsys.readouterr().out
    for name in ("lr=0.01", "lr=0.03", "lr=0.1"):
        assert name in out
    assert "1 dead" in out and "1 finished" in out and "1 pending" in out
    assert "best (best_valid_acc" in out and "supervised.lr = 0.01" in out
    assert set(table["status"]) == {"finished", "dead", "pending"}
    for stem in ("learning_curves", "valid_acc_vs_lr"):
        for suffix in (".png", ".pdf"):
            assert (experiment / "tiny" / f"{stem}{suffix}").stat().st_size > 1000
    assert len(pd.read_csv(experiment / "tiny" / "results.csv")) == 3
    started = table.dropna(subset=["best_valid_acc"])
    assert len(started) == 2 and started["best_valid_acc"].is_monotonic_decreasing  # best first

    by_loss = report(experiment, "tiny", points, None, "valid_loss").dropna(subset=["best_valid_loss"])
    assert by_loss["best_valid_loss"].is_monotonic_increasing  # a loss: lowest first
    assert by_loss["best_valid_loss"].iloc[0] < by_loss["best_valid_loss"].iloc[1]


def test_runs_and_diff_runs(tmp_path, train, env):
    from src.analysis.runs_table import diff_bindings, runs_table

    train(tmp_path / "a", "supervised.lr = 0.01", "training_loop.n_epochs = 1")
    train(tmp_path / "sub" / "b", "supervised.lr = 0.02", "cnn.width = 4", "training_loop.n_epochs = 1")
    table = runs_table(tmp_path)
    assert sorted(table["run"]) == ["a", "sub/b"]
    assert {"status", "supervised.lr", "cnn.width", "best_valid_acc", "age"} <= set(table.columns)
    assert "training_loop.seed" not in table  # the same everywhere: not shown
    assert diff_bindings(tmp_path / "a", tmp_path / "sub" / "b") == [("cnn.width", 8, 4), ("supervised.lr", 0.01, 0.02)]

    out = subprocess.run(
        [sys.executable, "bin/runs.py", str(tmp_path), "--csv"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[0].startswith("run,status") and len(out.splitlines()) == 3
    out = subprocess.run(
        [sys.executable, "bin/diff_runs.py", str(tmp_path / "a"), str(tmp_path / "sub" / "b")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "2 bindings differ" in out and "width" in out
    bad = subprocess.run(
        [sys.executable, "bin/runs.py", str(tmp_path / "nope")], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: '{tmp_path / 'nope'}' is not a folder."


def test_slurm_dry_run_prints_a_valid_array_script(experiment, tmp_path, capsys):
    from src.runners.slurm import SlurmOptions, submit

    done = prepare(experiment, "tiny", grid({"supervised.lr": [0.01, 0.1, 1.0]}))
    (tmp_path / "results" / "exp" / "tiny" / "lr=0.1").mkdir(parents=True)
    (tmp_path / "results" / "exp" / "tiny" / "lr=0.1" / layout.FINISHED).touch()
    options = SlurmOptions(
        max_jobs=3, partition="gpu", time="4:00:00", mem="16G", gpus_per_node=1, cpus=4, extra=("--qos=high",)
    )
    assert submit(done.batch, options, dry_run=True) is None
    script = capsys.readouterr().out
    for directive in (
        "--array=0,2%3",
        "--partition=gpu",
        "--time=4:00:00",
        "--mem=16G",
        "--gpus-per-node=1",
        "--cpus-per-task=4",
        "--qos=high",
        "--signal=B:USR1@90",
        "--requeue",
        "--nodes=1",
        "--ntasks-per-node=1",
        "--output=" + str(experiment / "tiny" / "slurm" / "tasks" / "%a" / "slurm-%A_%a.out"),
    ):
        assert f"#SBATCH {directive}\n" in script
    assert "lr=0.1" not in script.split("esac")[0]  # the finished run is not a task
    path = tmp_path / "array.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0  # valid bash
    assert not (experiment / "tiny" / "slurm").exists()  # a dry run writes nothing


def test_local_runner_ctrl_c_stops_children_and_they_resume(experiment, tmp_path, train):
    done = prepare(experiment, "tiny", grid({"supervised.lr": [0.01, 0.02]}, {"training_loop.n_epochs": 400}))
    runs = [j.run_dir for j in read_batch(done.batch)]
    runner = subprocess.Popen(
        [sys.executable, "bin/run_local.py", str(done.batch), "--jobs", "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while not all(layout.last_epoch(run) >= 2 for run in runs):  # both are training
        assert time.time() < deadline and runner.poll() is None
        time.sleep(0.2)
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=90)
    assert runner.returncode == 130 and "run the same command to resume" in out
    for run in runs:
        assert status_of(run) == "dead" and not (run / layout.FAILED).exists()  # stopped, not failed
        assert run_lock_is_free(run)  # the child really exited
    stopped = {run: layout.last_epoch(run) for run in runs}
    assert all(2 <= epoch < 400 for epoch in stopped.values())
    # the next time, a run continues where it stopped (here with fewer epochs, to keep the test short)
    run = runs[0]
    config = experiment / "tiny" / "configs" / f"{run.name}.gin"
    train(run, f"training_loop.n_epochs = {stopped[run] + 1}", configs=(str(config),))
    attempts = json.loads((run / layout.META).read_text())["attempts"]
    assert len(attempts) == 2 and attempts[1]["start_epoch"] in (stopped[run] - 1, stopped[run])
    assert status_of(run) == "finished"


def run_lock_is_free(run) -> bool:
    from src.run import lock as run_lock

    return run_lock.is_held(run) is False


def test_report_averages_seeds_and_ranks_by_the_recorded_direction(experiment, tmp_path, capsys):
    """Seeds are replicates: runs are grouped by lr, mean ± std and n shown, the best lr picked on the mean of a
    metric recorded as lower-is-better, never a 'best seed'."""
    from src.searches.report import report

    points = grid({"supervised.lr": [0.01, 0.1], "training_loop.seed": [0, 1, 2]})
    runs = tmp_path / "results" / "exp" / "seeds"
    maes = {(0.01, 0): 0.30, (0.01, 1): 0.50, (0.01, 2): 0.40, (0.1, 0): 0.20, (0.1, 1): 0.90, (0.1, 2): 0.70}
    for (lr, seed), mae in maes.items():
        fake_run(
            runs / f"lr={lr}_seed={seed}",
            {"supervised.lr": lr, "training_loop.seed": seed},
            {"epoch": [1, 2], "valid_mae": [mae + 0.1, mae]},
            {"valid_mae": "min"},
        )
    report(experiment, "seeds", points)  # the metric: the runs' recorded main one
    out = capsys.readouterr().out
    assert "best configuration (best_valid_mae mean = 0.4 over 3 runs): supervised.lr = 0.01" in out
    assert "best (" not in out  # no single best run, i.e. no best seed
    by_config = pd.read_csv(experiment / "seeds" / "results_by_config.csv")
    assert list(by_config["supervised.lr"]) == [0.01, 0.1] and list(by_config["n"]) == [3, 3]
    assert by_config["mean"].tolist() == pytest.approx([0.4, 0.6])
    assert by_config["std"].tolist() == pytest.approx([0.1, pd.Series([0.2, 0.9, 0.7]).std()])
    for stem in ("learning_curves", "valid_mae_vs_lr"):
        assert (experiment / "seeds" / f"{stem}.png").stat().st_size > 1000
    results = pd.read_csv(experiment / "seeds" / "results.csv")
    assert results["best_valid_mae"].is_monotonic_increasing  # lowest first: the recorded direction is min
    assert set(results["run"]) == {str(runs / name) for name in results["name"]}  # `run` is the path, as in load_runs


def test_a_damaged_curve_is_left_out_of_the_report_with_a_warning(experiment, tmp_path, capsys):
    """A history pandas cannot parse, one without an epoch column, an early stop at an epoch the history lacks or
    that is no number: each run's curve is left out with a one-line warning naming the file; the report and the
    other curves are written."""
    from src.searches.report import report

    points = grid({"supervised.lr": [0.1, 0.2, 0.3, 0.4, 0.5]})
    names = ["ok", "ragged", "no_epoch", "stop_99", "stop_x"]
    runs = tmp_path / "results" / "exp" / "damaged"
    for point, name in zip(points, names, strict=True):
        fake_run(runs / name, dict(point), {"epoch": [1, 2], "valid_acc": [0.5, 0.6]}, {"valid_acc": "max"})
    (runs / "ragged" / layout.HISTORY).write_text("epoch,valid_acc\n1,0.5\n2,0.6,7\n")
    (runs / "no_epoch" / layout.HISTORY).write_text("valid_acc\n0.5\n0.6\n")
    for name, epoch in (("stop_99", 99), ("stop_x", "x")):
        meta = {"stopped_early": {"reason": "early_stopping", "epoch": epoch}}
        (runs / name / layout.META).write_text(json.dumps(meta))
    table = report(experiment, "damaged", points, names=names)
    out, err = capsys.readouterr()
    assert len(table) == 5 and "best (best_valid_acc = 0.6)" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    for name, file in (("ragged", "history.csv"), ("no_epoch", "history.csv"), ("stop_99", "meta.json")):
        assert sum(str(runs / name / file) in line for line in warnings) == 1, err
    assert sum(str(runs / "stop_x" / "meta.json") in line for line in warnings) == 1, err
    assert len(warnings) == 4 and all(line.endswith("its learning curve is left out") for line in warnings)
    assert (experiment / "damaged" / "learning_curves.png").stat().st_size > 1000


@pytest.mark.slow
def test_damaged_runs_are_listed_and_the_others_load(tmp_path, capsys):
    from src.results import load_runs

    good = {"epoch": [1], "valid_acc": [0.5]}
    fake_run(tmp_path / "ok", {"supervised.lr": 0.1}, good)
    fake_run(tmp_path / "bytes", {"supervised.lr": 0.2}, good)
    (tmp_path / "bytes" / layout.HISTORY).write_bytes(os.urandom(300) + b"\xff\xfe")
    fake_run(tmp_path / "text", {"supervised.lr": 0.3}, {"epoch": [1, 2], "valid_acc": [0.5, "oops"]})
    fake_run(tmp_path / "config", {"supervised.lr": 0.4}, good)
    (tmp_path / "config" / layout.CONFIG).write_bytes(b"supervised.lr = \x00\xff(((")
    fake_run(tmp_path / "eval", {"supervised.lr": 0.5}, good)
    (tmp_path / "eval" / layout.EVAL_RESULTS).write_text("[1, 2")
    runs = load_runs(tmp_path).set_index("run")
    assert runs.loc[str(tmp_path / "ok"), "status"] == "finished"
    assert runs.loc[str(tmp_path / "ok"), "best_valid_acc"] == 0.5
    for name, damaged_file in (
        ("bytes", layout.HISTORY),
        ("text", layout.HISTORY),
        ("config", layout.CONFIG),
        ("eval", layout.EVAL_RESULTS),
    ):
        row = runs.loc[str(tmp_path / name)]
        assert row["status"] == "damaged" and str(tmp_path / name / damaged_file) in row["damaged"], name
        assert "\n" not in row["damaged"]
    out = subprocess.run(
        [sys.executable, "bin/runs.py", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.count("damaged") >= 4, out.stderr


def test_report_plot_helpers():
    from src.searches.plots import log_spaced, natural_key

    labels = ["lr=0.03 (n=3)", "lr=0.0003 (n=3)", "lr=0.003 (n=3)", "lr=0.3 (n=3)"]
    assert sorted(labels, key=natural_key) == ["lr=0.0003 (n=3)", "lr=0.003 (n=3)", "lr=0.03 (n=3)", "lr=0.3 (n=3)"]
    assert sorted(["width=16, lr=0.1", "width=8, lr=0.1"], key=natural_key) == ["width=8, lr=0.1", "width=16, lr=0.1"]
    assert log_spaced([0.0003, 0.003, 0.03]) and log_spaced([8, 16, 32]) and not log_spaced([0, 0.1, 10])
    assert log_spaced([0.001, 0.003, 0.01]) and not log_spaced([10, 20, 30])  # a factor 10: log; constant steps: not


def test_report_refuses_a_metric_the_runs_do_not_record(experiment, tmp_path, capsys):
    """A misspelt metric, or a test metric, is one line naming what the runs record (a close match first), exit 2,
    and nothing of the previous report is rewritten."""
    from src.cli.experiment import experiment_main

    points = grid({"supervised.lr": [0.1, 0.2]})
    runs = tmp_path / "results" / "exp" / "typo"
    for point in points:
        history = {"epoch": [1, 2], "valid_acc": [0.5, 0.6], "valid_loss": [1.0, 0.9]}
        fake_run(runs / f"lr={point['supervised.lr']}", dict(point), history, {"valid_acc": "max", "valid_loss": "min"})
    old = experiment / "typo"
    old.mkdir()
    (old / "results.csv").write_text("an older report\n")
    for metric, message in (
        (
            "valid_accuracy",
            "error: metric 'valid_accuracy' is not recorded by these runs; they record: valid_acc, valid_loss. "
            "Did you mean 'valid_acc'?",
        ),
        ("test_acc", "error: metric 'test_acc' is measured on the test set: ranking runs by it would choose"),
    ):
        code = experiment_main(experiment, {"typo": points}, metric=metric, argv=["report", "--name", "typo"])
        out, err = capsys.readouterr()
        assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
        assert out == "" and [p.name for p in old.iterdir()] == ["results.csv"]
        assert (old / "results.csv").read_text() == "an older report\n"
    assert experiment_main(experiment, {"typo": points}, metric="valid_acc", argv=["report", "--name", "typo"]) == 0
    assert "best (best_valid_acc = 0.6)" in capsys.readouterr().out


def test_report_lists_a_job_that_failed_before_its_run_folder_existed_as_failed(experiment, tmp_path, capsys):
    """bin/run_local.py's log of a job that stopped with an error before creating its run folder makes the run
    `failed` (with that error), not `pending`; a job whose log does not end in an error stays pending."""
    from src.searches.report import report

    points = grid({"supervised.lr": [0.1, 0.2, 0.3]})
    runs = tmp_path / "results" / "exp" / "early"
    fake_run(runs / "lr=0.1", dict(points[0]), {"epoch": [1], "valid_acc": [0.5]}, {"valid_acc": "max"})
    logs = experiment / "early" / "logs"
    logs.mkdir(parents=True)
    (logs / "lr=0.2.log").write_text("==> bin/train.py ...\n==> started now cold\nerror: Bad gin config: oops\n\n")
    (logs / "lr=0.3.log").write_text("==> bin/train.py ...\n==> started now cold\n")
    table = report(experiment, "early", points).set_index("name")
    out, err = capsys.readouterr()
    assert table.loc["lr=0.2", "status"] == "failed" and table.loc["lr=0.3", "status"] == "pending"
    assert f"failed before its run folder existed: lr=0.2: Bad gin config: oops (log {logs / 'lr=0.2.log'})" in out
    assert "status: 1 failed, 1 finished, 1 pending" in out and "warning" not in err


@pytest.mark.parametrize(
    "axes, message",
    [
        (
            {"supervised.lrr": [0.0003, 0.003]},
            "Search 'small' binds supervised.lrr: supervised has no parameter 'lrr'. Did you mean 'lr'? "
            "Valid parameters of supervised: ",
        ),
        ({"supervisd.lr": [0.1, 0.2]}, "Search 'small' binds supervisd.lr: Nothing configurable is named 'supervisd'."),
        (
            {"training_loop.max_epoch": [1, 2]},
            "Search 'small' binds training_loop.max_epoch: Unknown parameter training_loop.max_epoch. Did you mean "
            "'max_epochs'?",
        ),
        (
            {"supervised.lr": [0.1, float("nan")]},
            "Search 'small' binds supervised.lr to nan (float), which a gin config",
        ),
        ({"digits.seed": [1, 2]}, "Search 'small' binds digits.seed: digits.seed is given by the run"),
        ({"cnn.n_outputs": [3]}, "Search 'small' binds cnn.n_outputs: cnn.n_outputs is given by the data"),
        ({"supervised.lr": ["a"]}, "Search 'small' binds supervised.lr: supervised.lr must be a number, got 'a'."),
        (
            {"training_loop.n_epochs": ["x"]},
            "Search 'small' binds training_loop.n_epochs: training_loop.n_epochs must be an integer, got 'x'.",
        ),
        (
            {"training_loop.precision": ["bf17"]},
            "Search 'small' binds training_loop.precision: training_loop.precision = 'bf17' is not valid: ",
        ),
    ],
)
def test_prepare_refuses_a_bad_binding_before_writing_anything(experiment, tmp_path, capsys, axes, message):
    from src.cli.experiment import experiment_main

    code = experiment_main(experiment, {"small": grid(axes)}, argv=["prepare", "--name", "small"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (experiment / "small").exists() and not (tmp_path / "results").exists()


def test_unknown_search_suggests_the_close_name(experiment, capsys):
    from src.cli.experiment import experiment_main

    searches = {"small": grid({"supervised.lr": [0.1, 0.2]}), "large": grid({"supervised.lr": [0.1, 0.3]})}
    assert experiment_main(experiment, searches, argv=["report", "--name", "smal"]) == 2
    assert (
        capsys.readouterr().err
        == "error: Unknown search 'smal'. Did you mean 'small'? Valid search names: small, large.\n"
    )
    assert experiment_main(experiment, searches, argv=["prepare", "--name", "small"]) == 0  # a good search passes
