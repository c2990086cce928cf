"""Submit a batch file's unfinished jobs to SLURM as one job array.

Task i runs job line i of the batch; `%K` caps how many run at once. Each task's SLURM log goes into its run
folder (through `<batch folder>/slurm/tasks/<i>`, a link to the run folder, since `--output` only knows %A/%a).
`--signal=B:USR1@90` reaches the task script, which passes it to the training process: it checkpoints at the end
of the current batch and requeues the task (`--requeue`, src/callbacks/preemption.py); the requeued task resumes.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from src import run_dir as layout
from src.batch import TRAIN, Job, read_batch, single_line
from src.errors import RunInUse, UserError

TASK_SCRIPT = """\
set -u
case "$SLURM_ARRAY_TASK_ID" in
{cases}
    *) echo "no job for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;
esac
cd {root}
export OMP_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-1}}" PYTHONPATH={root}
echo "$(date -Is) task ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} on $(hostname): $1"
{python} {train} "$@" &
pid=$!
trap 'kill -USR1 $pid 2>/dev/null' USR1   # preemption warning: the run checkpoints and requeues itself
cancelled=0
trap 'cancelled=1; kill -TERM $pid 2>/dev/null' TERM   # scancel or time limit: the run resumes when resubmitted
while true; do
    wait $pid; code=$?
    kill -0 $pid 2>/dev/null || break   # still alive: wait was interrupted by a trapped signal
done
if [ "$code" -ne 0 ] && [ "$code" -ne 130 ] && [ "$code" -ne {in_use} ] && [ "$cancelled" -eq 0 ] \
        && [ ! -e "$1/FINISHED" ] && [ ! -e "$1/FAILED" ]; then
    echo "exit code $code" > "$1/FAILED"
fi
exit $code
"""


@dataclass
class SlurmOptions:
    max_jobs: int = 8
    partition: str | None = None
    time: str | None = None
    mem: str | None = None
    gpus: int | None = None
    cpus: int = 1
    account: str | None = None
    job_name: str | None = None
    extra: tuple[str, ...] = ()

    def directives(self, batch: Path, indices: list[int]) -> list[str]:
        tasks = batch.parent / "slurm" / "tasks"
        lines = [
            f"--job-name={self.job_name or batch.parent.parent.name + '-' + batch.parent.name}",
            f"--array={','.join(map(str, indices))}%{self.max_jobs}",
            f"--output={tasks}/%a/slurm-%A_%a.out",
            "--open-mode=append",
            "--signal=B:USR1@90",
            "--requeue",
            "--ntasks=1",  # one training process per task (SLURM_NTASKS: Lightning recognises SLURM)
            f"--cpus-per-task={self.cpus}",
        ]
        for flag, value in (
            ("partition", self.partition),
            ("time", self.time),
            ("mem", self.mem),
            ("gpus", self.gpus),
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
    )


def submit(batch: str | Path, options: SlurmOptions, dry_run: bool = False) -> str | None:
    """Write <batch folder>/slurm/array.sh for the jobs not finished nor running and submit it; return the job id."""
    if options.max_jobs < 1:
        raise UserError(f"--max-jobs must be at least 1, got {options.max_jobs}.")
    batch = Path(batch).resolve()
    jobs = read_batch(batch)
    indices = [i for i, job in enumerate(jobs) if layout.status(job.run_dir) not in ("finished", "running")]
    skipped = len(jobs) - len(indices)
    if not indices:  # an up-to-date sweep: `prepare` wrote no job line, or the runs finished or run meanwhile
        print(f"nothing to do: all {len(jobs)} runs of the batch file are finished or running")
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
