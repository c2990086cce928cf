"""Submit a batch file's unfinished jobs to SLURM as one job array.

Task i runs job line i of the batch; `%K` caps how many run at once. Each task's SLURM log goes into its run
folder (through `<batch folder>/slurm/tasks/<i>`, a link to the run folder, since `--output` only knows %A/%a).
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
from dataclasses import dataclass
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
requeue() {{
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
srun --kill-on-bad-exit=1 --cpus-per-task="${{SLURM_CPUS_PER_TASK:-1}}" {python} {train} "$@" &
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

    def processes_per_node(self) -> int:
        return self.tasks_per_node or self.gpus_per_node or 1

    def check(self) -> None:
        for flag, value in (
            ("--max-jobs", self.max_jobs),
            ("--nodes", self.nodes),
            ("--tasks-per-node", self.tasks_per_node),
            ("--gpus-per-node", self.gpus_per_node),
            ("--cpus", self.cpus),
        ):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}.")
        if self.time is not None and not SLURM_TIME.fullmatch(self.time.strip()):
            raise UserError(
                f"--time {self.time!r} is not a time SLURM reads: use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                "D-HH:MM:SS or UNLIMITED (e.g. 4:00:00 for four hours)."
            )

    def directives(self, batch: Path, indices: list[int]) -> list[str]:
        tasks = batch.parent / "slurm" / "tasks"
        lines = [
            f"--job-name={self.job_name or batch.parent.parent.name + '-' + batch.parent.name}",
            f"--array={','.join(map(str, indices))}%{self.max_jobs}",
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


def array_script(batch: Path, jobs: list[Job], indices: list[int], options: SlurmOptions) -> str:
    cases = "\n".join(f"    {i}) set -- {' '.join(shlex.quote(a) for a in jobs[i].args)} ;;" for i in indices)
    directives = [single_line("The SLURM option", d) for d in options.directives(batch, indices)]
    header = "#!/usr/bin/env bash\n" + "".join(f"#SBATCH {d}\n" for d in directives)
    return header + TASK_SCRIPT.format(
        cases=cases,
        root=shlex.quote(str(layout.CODE_ROOT)),
        python=shlex.quote(sys.executable),
        train=TRAIN,
        in_use=RunInUse.exit_code,
        requeued_by_script=REQUEUED_BY_TASK_SCRIPT,
    )


def submit(batch: str | Path, options: SlurmOptions, dry_run: bool = False) -> str | None:
    """Write <batch folder>/slurm/array.sh for the jobs not finished nor running and submit it; return the job id."""
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
    script = array_script(batch, jobs, indices, options)
    folder = batch.parent / "slurm"
    if dry_run:
        print(script)
        return None
    for i in indices:  # the run folder must exist for SLURM to open its log there
        link = folder / "tasks" / str(i)
        jobs[i].run_dir.mkdir(parents=True, exist_ok=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(jobs[i].run_dir.resolve(), target_is_directory=True)
    path = folder / "array.sh"
    layout.write_atomic(path, script)
    out = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise UserError(f"sbatch refused the job array: {out.stderr.strip() or out.stdout.strip()}")
    job_id = out.stdout.strip().split(";")[0]
    print(
        f"submitted job array {job_id}: {len(indices)} tasks ({skipped} finished or running skipped), "
        f"at most {options.max_jobs} at a time; script {path}; logs in each run folder (slurm-{job_id}_*.out)"
    )
    return job_id
