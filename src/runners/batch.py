"""The batch file (`batch.sh`): one training job per line, runnable with plain bash and readable by the runners.

    job '/abs/results/tune_lr/small/lr=0.001' '/abs/experiments/tune_lr/small/configs/lr=0.001.gin'

`job` (defined at the top of the file) runs `bin/train.py` with the line's arguments: the run folder first,
then the configs. A failing line is counted and its exit code recorded in the run's FAILED file by the rule every
runner follows (src/run/status.py: not when the run finished or another process trains it); the others still run; the
script exits non-zero if any failed. A run another process trains in is skipped, untouched. Ctrl-C stops the whole
batch (re-running it resumes).
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from src.errors import RunInUse, UserError
from src.run.layout import CODE_ROOT as ROOT
from src.run.layout import write_atomic

TRAIN = "bin/train.py"
# What ends a line for bash (\n) or for read_batch (str.splitlines): none may appear in a value written into a script,
# where it would end a comment or a job line early and run the rest as a command.
LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")

PREAMBLE = """\
#!/usr/bin/env bash
# {title}
# Each job line trains (or resumes) one run; re-running this file is safe. Run it with one of:
#   bash {path}
#   bin/run_local.py {path} --jobs 2
#   bin/run_slurm.py {path} --max-jobs 8
set -u
cd {root}
PYTHON="${{PYTHON:-{python}}}"
failed=0
job() {{
    "$PYTHON" {train} "$@"
    local code=$?
    if [ "$code" -eq 130 ]; then echo "batch: interrupted; run it again to resume" >&2; exit 130; fi
    if [ "$code" -eq {in_use} ]; then echo "batch: skipped, another process trains in $1" >&2; return 0; fi
    if [ "$code" -ne 0 ]; then
        failed=$((failed + 1))
        echo "batch: job failed (exit $code): $1" >&2
        "$PYTHON" -m src.run.status exited "$1" "$code"   # FAILED, by the rule every runner follows
    fi
    return 0
}}
"""
EPILOGUE = """\
if [ "$failed" -gt 0 ]; then echo "batch: $failed job(s) failed" >&2; exit 1; fi
"""


@dataclass(frozen=True)
class Job:
    args: tuple[str, ...]  # bin/train.py arguments: SAVE_DIR CONFIGS [-b BINDINGS]

    @property
    def run_dir(self) -> Path:
        return Path(self.args[0])

    def command(self, python: str = sys.executable) -> list[str]:
        return [python, str(ROOT / TRAIN), *self.args]

    def line(self) -> str:
        return "job " + " ".join(shlex.quote(a) for a in self.args)


def single_line(what: str, value: str) -> str:
    """`value`, refused if it holds a line break (a comment, directive or job line of a script would end there)."""
    if LINE_BREAK.search(value):
        raise UserError(f"{what} {value!r} contains a line break, which cannot be written into a script: rename it.")
    return value


def write_batch(path: str | Path, jobs: list[Job], title: str) -> Path:
    path = Path(path)
    single_line("The batch file's title", title)
    for value in (str(path), str(ROOT), sys.executable):
        single_line("The path", value)
    for job in jobs:
        for arg in job.args:
            single_line("The job argument", arg)
    text = PREAMBLE.format(
        title=title,
        path=path,
        root=shlex.quote(str(ROOT)),
        python=shlex.quote(sys.executable),
        train=TRAIN,
        in_use=RunInUse.exit_code,
    )
    text += "".join(job.line() + "\n" for job in jobs) + EPILOGUE
    write_atomic(path, text)
    path.chmod(0o755)
    return path


def read_batch(path: str | Path) -> list[Job]:
    """The jobs of a batch file: none when every run is finished (`prepare` writes no job line then); a missing
    file, or one with neither job lines nor the `job` function (not a batch file), is an error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Batch file {str(path)!r} does not exist; write one with `main.py prepare`.")
    jobs, text = [], path.read_text()
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("job "):
            try:
                args = tuple(shlex.split(line)[1:])
            except ValueError as e:
                raise UserError(f"{path}:{number}: cannot parse job line ({e}).") from e
            if not args:
                raise UserError(f"{path}:{number}: job line without a run folder.")
            jobs.append(Job(args))
    if not jobs and not re.search(r"^\s*(function\s+)?job\s*(\(\s*\))?\s*\{", text, re.MULTILINE):
        raise UserError(f"{str(path)!r} is not a batch file: it has no job lines and no `job` function.")
    return jobs
