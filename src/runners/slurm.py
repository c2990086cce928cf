"""Submit a batch file's unfinished jobs to SLURM as job arrays: one, or several where the jobs outnumber the
cluster's MaxArraySize (`scontrol show config`), each starting when the one before it has ended, so that `%K` caps
how many run at once over all of them.

Task i of array.sh runs job line i of the batch (task i of array-<n>.sh, job line offset + i). Each task's SLURM
log goes into its run folder (through `<batch folder>/slurm/tasks/<i>`, a link to the run folder, since `--output`
only knows %A/%a), and so does each process's own log (`slurm-<job>_<task>-rank<r>.out`, srun's %t).
A task is `--nodes` x `--ntasks-per-node` processes that srun starts (one per task; Lightning's SLURMEnvironment
gives each its rank, src/training/lightning_trainer.py makes devices and num_nodes follow the allocation); rank 0 owns
the run folder. `--signal=B:USR1@90` reaches the task script, which passes it on to every process through srun: they
agree on a batch end, save one checkpoint and stop (src/training/callbacks/preemption.py); then the script requeues the
task once (`--requeue`) and the requeued task resumes.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from src.errors import RunInUse, UserError
from src.run import layout
from src.run.status import DONE, status_of
from src.runners.batch import TRAIN, Job, read_batch, single_line
from src.training.preemption_signal import REQUEUED_BY_TASK_SCRIPT

TASK_SCRIPT = """\
set -u
preempted=0
trap 'preempted=1' USR1   # a preemption warning before the processes start: requeue at once (below)
case "$SLURM_ARRAY_TASK_ID" in
{cases}
    *) echo "no job for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;
esac
cd {root}
task="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
setup_failed() {{
    echo "$(date -Is) setup line failed, nothing trained: $1" >&2
    {python} -m src.run.status exited "$run" 1   # FAILED, with this log to say why
    exit 1
}}
run="$1"
{setup}requeue() {{
    echo "$(date -Is) preempted: requeueing SLURM job $task"
    scontrol requeue "$task" || echo "requeueing SLURM job $task failed: resubmit to continue" >&2
    exit 130
}}
# another process holds the run folder's lock (rank 0 exited 75, srun then stopped the others): not a failure
in_use() {{ [ -f "$1/LOCK" ] && [ ! -L "$1/LOCK" ] && command -v flock >/dev/null && ! flock -n "$1/LOCK" true; }}
export OMP_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-1}}" PYTHONPATH={root} {requeued_by_script}=1
echo "$(date -Is) task $task on $SLURM_JOB_NODELIST: $SLURM_NTASKS process(es) on $SLURM_JOB_NUM_NODES node(s): $1"
[ "$preempted" -eq 0 ] || requeue
# one process per SLURM task; if one fails the others are stopped instead of waiting for it forever
# each process's output unbuffered into its own log in the run folder (%t: its rank)
srun --kill-on-bad-exit=1 --unbuffered --output="$rank_logs" --open-mode=append \\
    --cpus-per-task="${{SLURM_CPUS_PER_TASK:-1}}" {python} {train} "$@" &
pid=$!
trap 'preempted=1; kill -USR1 $pid 2>/dev/null' USR1   # srun passes the warning on to every process
[ "$preempted" -eq 0 ] || kill -USR1 $pid 2>/dev/null   # it came while srun was being started: pass it on
cancelled=0
trap 'cancelled=1; kill -TERM $pid 2>/dev/null' TERM   # scancel or time limit: the run resumes when resubmitted
while true; do
    wait $pid; code=$?
    kill -0 $pid 2>/dev/null || break   # still alive: wait was interrupted by a trapped signal
done
wait $pid; code=$?   # srun's own status (bash keeps it): the last wait may have been cut short just as srun ended
# after the preemption warning the processes saved a checkpoint and stopped (130, or srun stopped the last ones
# when the first exited): requeue the task once, which ends this script
if {{ [ "$preempted" -eq 1 ] || [ "$code" -eq 130 ]; }} && [ "$cancelled" -eq 0 ] && [ ! -e "$1/FINISHED" ] \\
        && [ ! -e "$1/FAILED" ] && ! in_use "$1"; then
    requeue
fi
# scancel's TERM reaches the processes and this script at about the same time: give it a moment to arrive here
# before an exit code counts as a failure (a cancelled run resumes when resubmitted)
if [ "$code" -ne 0 ] && [ "$cancelled" -eq 0 ]; then sleep 3; fi
if [ "$code" -ne 0 ] && [ "$cancelled" -eq 0 ]; then
    {python} -m src.run.status exited "$1" "$code"   # FAILED, by the rule every runner follows
fi
exit $code
"""


DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize: task ids 0 to 1000
MAX_ARRAY_SPEC = 2000  # characters of --array's index list: sbatch refuses one longer than ~4,000 ("too long")


# sbatch --time's formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or no limit
SLURM_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}|unlimited|infinite", re.IGNORECASE)


@dataclass
class SlurmOptions:
    max_jobs: int = 8
    nodes: int = 1
    tasks_per_node: int | None = None  # processes per node; default: gpus_per_node, or 1
    gpus_per_node: int | None = None
    partition: str | None = None
    time: str | None = None
    mem: str | None = None
    cpus: int = 1  # per process
    account: str | None = None
    job_name: str | None = None
    extra: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()  # shell lines each task runs before training (`module load cuda/12.4`)
    max_array_size: int | None = None  # default: the cluster's MaxArraySize (scontrol show config)

    def processes_per_node(self) -> int:
        return self.tasks_per_node or self.gpus_per_node or 1

    def check(self) -> None:
        for flag, value in (
            ("--max-jobs", self.max_jobs),
            ("--nodes", self.nodes),
            ("--tasks-per-node", self.tasks_per_node),
            ("--gpus-per-node", self.gpus_per_node),
            ("--cpus", self.cpus),
            ("--max-array-size", self.max_array_size),
        ):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}.")
        if self.time is not None and not SLURM_TIME.fullmatch(self.time.strip()):
            raise UserError(
                f"--time {self.time!r} is not a time SLURM reads: use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                "D-HH:MM:SS or UNLIMITED (e.g. 4:00:00 for four hours)."
            )

    def directives(self, batch: Path, array: Array) -> list[str]:
        tasks = batch.parent / "slurm" / array.links
        lines = [
            f"--job-name={self.job_name or batch.parent.parent.name + '-' + batch.parent.name}",
            f"--array={array_spec(array.tasks)}%{self.max_jobs}",
            f"--output={tasks}/%a/slurm-%A_%a.out",
            "--open-mode=append",
            "--signal=B:USR1@90",
            "--requeue",
            f"--nodes={self.nodes}",
            f"--ntasks-per-node={self.processes_per_node()}",  # one training process per SLURM task
            f"--cpus-per-task={self.cpus}",
        ]
        for flag, value in (
            ("gpus-per-node", self.gpus_per_node),
            ("partition", self.partition),
            ("time", self.time),
            ("mem", self.mem),
            ("account", self.account),
        ):
            if value is not None:
                lines.append(f"--{flag}={value}")
        return lines + list(self.extra)


@dataclass
class Array:
    """One job array of a submission: its tasks 0, 1, ... run the batch's job lines offset, offset + 1, ..."""

    number: int  # 0: array.sh and slurm/tasks/; n: array-<n>.sh and slurm/tasks-<n>/
    offset: int
    indices: list[int] = field(default_factory=list)  # the batch's job lines it runs

    @property
    def tasks(self) -> list[int]:
        return [i - self.offset for i in self.indices]

    @property
    def script(self) -> str:
        return "array.sh" if self.number == 0 else f"array-{self.number}.sh"

    @property
    def links(self) -> str:
        return "tasks" if self.number == 0 else f"tasks-{self.number}"


def array_spec(tasks: list[int]) -> str:
    """sbatch's --array list, runs of consecutive ids as ranges: [0, 1, 2, 5, 7, 8] -> '0-2,5,7-8'."""
    ranges: list[list[int]] = []
    for task in tasks:
        if ranges and task == ranges[-1][1] + 1:
            ranges[-1][1] = task
        else:
            ranges.append([task, task])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def split_arrays(indices: list[int], max_array_size: int) -> list[Array]:
    """The job lines `indices` (ascending) as few arrays as the cluster takes: every task id below MaxArraySize
    (each array's ids start at 0 at its first job line), every --array list short enough for sbatch."""
    arrays: list[Array] = []
    for i in indices:
        current = arrays[-1] if arrays else None
        if (
            current is None
            or i - current.offset >= max_array_size
            or len(array_spec([*current.tasks, i - current.offset])) > MAX_ARRAY_SPEC
        ):
            current = Array(len(arrays), i)
            arrays.append(current)
        current.indices.append(i)
    return arrays


def max_array_size() -> int:
    """The cluster's MaxArraySize (task ids must stay below it), from `scontrol show config`; SLURM's default, 1001,
    where scontrol cannot say."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(found[1]) if found and int(found[1]) > 0 else DEFAULT_MAX_ARRAY_SIZE


def array_script(batch: Path, jobs: list[Job], array: Array, options: SlurmOptions) -> str:
    cases = "\n".join(
        f"    {i - array.offset}) set -- {' '.join(shlex.quote(a) for a in jobs[i].args)}; "
        f"rank_logs={shlex.quote(rank_logs(jobs[i].run_dir))} ;;"
        for i in array.indices
    )
    directives = [single_line("The SLURM option", d) for d in options.directives(batch, array)]
    setup = "".join(
        f"{single_line('The setup line', line)} || setup_failed {shlex.quote(line)}\n" for line in options.setup
    )
    header = "#!/usr/bin/env bash\n" + "".join(f"#SBATCH {d}\n" for d in directives)
    return header + TASK_SCRIPT.format(
        cases=cases,
        root=shlex.quote(str(layout.CODE_ROOT)),
        python=shlex.quote(sys.executable),
        train=TRAIN,
        in_use=RunInUse.exit_code,
        requeued_by_script=REQUEUED_BY_TASK_SCRIPT,
        setup=f"# per-cluster setup (bin/run_slurm.py --setup)\n{setup}" if setup else "",
    )


def rank_logs(run_dir: Path) -> str:
    """srun's --output for each process of a run: <run>/slurm-<job>_<task>-rank<r>.out (a % of the path escaped)."""
    return str(run_dir).replace("%", "%%") + "/slurm-%A_%a-rank%t.out"


def submit(batch: str | Path, options: SlurmOptions, dry_run: bool = False, test_only: bool = False) -> str | None:
    """Write <batch folder>/slurm/array.sh (and array-<n>.sh where one array cannot hold them all) for the jobs not
    finished nor running and submit them; return the job id (ids, comma-separated, of several arrays). `dry_run`:
    print the scripts; `test_only`: ask sbatch whether it would accept them (--test-only); neither submits."""
    options.check()
    batch = Path(batch).resolve()
    jobs = read_batch(batch)
    indices = [i for i, job in enumerate(jobs) if status_of(job.run_dir) not in (*DONE, "running")]
    skipped = len(jobs) - len(indices)
    if not indices:  # an up-to-date sweep: `prepare` wrote no job line, or the runs finished or run meanwhile
        print(
            f"nothing to do: all {len(jobs)} runs of {batch} are finished or running"
            if jobs
            else f"nothing to do: {batch} lists no runs"
        )
        return None
    if not dry_run and shutil.which("sbatch") is None:
        raise UserError("SLURM is not installed here: `sbatch` is not on PATH (use bin/run_local.py instead).")
    arrays = split_arrays(indices, options.max_array_size or max_array_size())
    scripts = [array_script(batch, jobs, array, options) for array in arrays]
    folder = batch.parent / "slurm"
    if dry_run:
        for array, script in zip(arrays, scripts, strict=True):
            if len(arrays) > 1:
                after = f"; starts when {arrays[array.number - 1].script} has ended" if array.number else ""
                print(f"# {array.script}: job lines {array.indices[0]} to {array.indices[-1]}{after}")
            print(script)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("array-*.sh"):  # arrays of an earlier, larger submission
        old.unlink()
    paths = [folder / array.script for array in arrays]
    for path, script in zip(paths, scripts, strict=True):
        layout.write_atomic(path, script)
    if test_only:
        check_with_sbatch(paths)
        return None
    ids: list[str] = []
    for array, path in zip(arrays, paths, strict=True):
        link_run_folders(folder / array.links, jobs, array)
        dependency = [f"--dependency=afterany:{ids[-1]}"] if ids else []  # %K holds over all the arrays
        out = subprocess.run(["sbatch", "--parsable", *dependency, str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            submitted = f" (submitted before it: {', '.join(ids)})" if ids else ""
            raise UserError(
                f"sbatch refused the job array {path}: {out.stderr.strip() or out.stdout.strip()}{submitted}"
            )
        ids.append(out.stdout.strip().split(";")[0])
    arrays_text = (
        f"job array {ids[0]}" if len(ids) == 1 else f"{len(ids)} job arrays {', '.join(ids)}, one after another"
    )
    scripts_text = paths[0] if len(paths) == 1 else f"{paths[0]} ... {paths[-1].name}"
    print(
        f"submitted {arrays_text}: {len(indices)} tasks ({skipped} finished or running skipped), "
        f"at most {options.max_jobs} at a time; script {scripts_text}; logs in each run folder (slurm-<job>_*.out)"
    )
    return ",".join(ids)


def link_run_folders(links: Path, jobs: list[Job], array: Array) -> None:
    """<links>/<task> -> the task's run folder (created: SLURM opens the task's log there)."""
    links.mkdir(parents=True, exist_ok=True)
    for i, task in zip(array.indices, array.tasks, strict=True):
        jobs[i].run_dir.mkdir(parents=True, exist_ok=True)
        link = links / str(task)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(jobs[i].run_dir.resolve(), target_is_directory=True)


def check_with_sbatch(paths: list[Path]) -> None:
    """`sbatch --test-only` of each script: the cluster checks them (array sizes, options, limits) and runs nothing."""
    for path in paths:
        out = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            raise UserError(f"sbatch would refuse {path}: {out.stderr.strip() or out.stdout.strip()}")
        print(f"sbatch would accept {path}: {(out.stderr.strip() or out.stdout.strip()).splitlines()[-1]}")
