"""SLURM job arrays without a cluster (a fake sbatch and srun on PATH): more jobs than the cluster's MaxArraySize are
submitted as several arrays, one after another; a task runs the setup lines, then srun with one unbuffered log per
process. tests/slurm/ submits to the real local SLURM."""

import os
import stat
import subprocess

import pytest

from src.run import layout
from src.runners.batch import Job, write_batch
from src.runners.slurm import SlurmOptions, array_spec, max_array_size, split_arrays, submit


def fake_command(folder, name, body):
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch that records its arguments and answers job ids 100, 101, ...; srun that records its own; scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch.calls"
    fake_command(bin_dir, "sbatch", f'echo "$*" >> {calls}; echo $((99 + $(wc -l < {calls})))\n')
    fake_command(bin_dir, "srun", 'printf "%s\\n" "$@" > "${@: -2:1}/srun.args"\n')  # in the run folder
    fake_command(bin_dir, "scontrol", 'echo "MaxArraySize            = 5"\necho "MaxJobCount             = 10000"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def test_array_spec_and_split():
    assert array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    arrays = split_arrays([0, 2, 3, 4, 5, 6], max_array_size=3)
    assert [(a.script, a.offset, a.tasks) for a in arrays] == [
        ("array.sh", 0, [0, 2]), ("array-1.sh", 3, [0, 1, 2]), ("array-2.sh", 6, [0])
    ]  # fmt: skip
    assert [a.tasks for a in split_arrays(list(range(0, 5000, 2)), 5000)][0][-1] < 5000 // 2  # the list stays short
    assert all(len(array_spec(a.tasks)) <= 2000 for a in split_arrays(list(range(0, 5000, 2)), 5000))


def test_max_array_size_is_read_from_the_cluster(fake_slurm):
    assert max_array_size() == 5


def test_more_jobs_than_max_array_size_are_arrays_one_after_another(tmp_path, fake_slurm):
    runs = [tmp_path / "results" / f"run{i}" for i in range(7)]
    (tmp_path / "exp" / "s").mkdir(parents=True)
    batch = write_batch(
        tmp_path / "exp" / "s" / "batch.sh", [Job((str(r), f"c{i}.gin")) for i, r in enumerate(runs)], "t"
    )
    runs[1].mkdir(parents=True)
    (runs[1] / layout.FINISHED).touch()  # skipped
    options = SlurmOptions(max_jobs=2, max_array_size=3, setup=("export X='a b'", "module load cuda/12.4"))
    assert submit(batch, options) == "100,101,102"
    slurm = batch.parent / "slurm"
    scripts = [slurm / name for name in ("array.sh", "array-1.sh", "array-2.sh")]
    assert fake_slurm.read_text().splitlines() == [
        f"--parsable {scripts[0]}",
        f"--parsable --dependency=afterany:100 {scripts[1]}",
        f"--parsable --dependency=afterany:101 {scripts[2]}",
    ]
    texts = [s.read_text() for s in scripts]
    for text, spec, links in zip(texts, ["0,2%2", "0-2%2", "0%2"], ["tasks", "tasks-1", "tasks-2"], strict=True):
        assert f"#SBATCH --array={spec}\n" in text
        assert f"#SBATCH --output={slurm / links}/%a/slurm-%A_%a.out\n" in text
        assert subprocess.run(["bash", "-n", "-c", text]).returncode == 0
    assert (slurm / "tasks-1" / "1").resolve() == runs[4].resolve()  # task 1 of the second array: job line 4
    # task 1 of array-1.sh: the setup lines, then srun on job line 4, one unbuffered log per rank in its run folder
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_JOB_ID": "101", "SLURM_JOB_NODELIST": "n1",
           "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1"}  # fmt: skip
    script = texts[1].replace("module load cuda/12.4", 'echo "$X" > "$run/setup.txt"')
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (runs[4] / "setup.txt").read_text() == "a b\n"
    args = (runs[4] / "srun.args").read_text().splitlines()
    assert "--unbuffered" in args and f"--output={runs[4]}/slurm-%A_%a-rank%t.out" in args
    assert args[-2:] == [str(runs[4]), "c4.gin"]
    # a setup line that fails: nothing trains, the run is failed and the log says which line
    script = texts[1].replace("module load cuda/12.4", "false")
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "setup line failed, nothing trained: false" in out.stderr
    assert (runs[4] / layout.FAILED).is_file() and len((runs[4] / "srun.args").read_text()) > 0  # from before
