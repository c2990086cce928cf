#!/usr/bin/env python
"""bin/run_slurm.py BATCH [--max-jobs K] [--partition P --time T --mem M --gpus G --cpus C]: submit a batch
file's unfinished jobs to SLURM as one job array (see src/runners/slurm.py)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.cli import run_main  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bin/run_slurm.py", description=__doc__)
    parser.add_argument("batch", metavar="BATCH", help="a batch.sh written by an experiment's `main.py prepare`")
    parser.add_argument("--max-jobs", type=int, default=8, help="tasks running at once (default 8)")
    parser.add_argument("--partition")
    parser.add_argument("--time", help="time limit per task, e.g. 4:00:00")
    parser.add_argument("--mem", help="memory per task, e.g. 16G")
    parser.add_argument("--gpus", type=int, help="GPUs per task")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs per task (default 1)")
    parser.add_argument("--account")
    parser.add_argument("--job-name")
    parser.add_argument("--sbatch", action="append", default=[], help="extra sbatch option, e.g. --sbatch=--qos=high")
    parser.add_argument("--dry-run", action="store_true", help="print the array script, submit nothing")

    def main(args):
        from src.runners.slurm import SlurmOptions, submit

        options = SlurmOptions(max_jobs=args.max_jobs, partition=args.partition, time=args.time, mem=args.mem,
                               gpus=args.gpus, cpus=args.cpus, account=args.account, job_name=args.job_name,
                               extra=tuple(args.sbatch))
        submit(args.batch, options, dry_run=args.dry_run)

    sys.exit(run_main(main, parser))
