"""bin/run_local.py and bin/run_slurm.py: argument parsing; the work is src/runners/'s."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from src.cli.common import Parser, run_main


def run_local_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/run_local.py", description="Run a batch file's unfinished jobs N at a time on this machine."
    )
    parser.add_argument("batch", metavar="BATCH", help="a batch.sh written by an experiment's `main.py prepare`")
    parser.add_argument(
        "--jobs", "-j", type=int, help="jobs at a time (default: as many as the GPUs take; 2 without GPUs)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads per job (default: cores // jobs)")
    parser.add_argument(
        "--gpus", help="the GPUs to use, e.g. 0,2,3 (nvidia-smi's numbers; default: $CUDA_VISIBLE_DEVICES or all)"
    )
    parser.add_argument(
        "--gpus-per-job", type=int, help="GPUs each job gets (default 1 where there are GPUs; 0: CPU only)"
    )
    parser.add_argument(
        "--jobs-per-gpu", type=int, default=1, help="jobs sharing one GPU, for small models (default 1)"
    )
    parser.add_argument(
        "--max-gpu-memory",
        type=float,
        default=20,
        metavar="PERCENT",
        help="a GPU with more of its memory used by others than this is busy (default 20)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start every job as a fresh bin/train.py process (default on Linux: forked from a process that has "
        "imported torch and Lightning once, ~5 s less per job; other systems always start cold)",
    )

    def main(args: argparse.Namespace) -> int:
        from src.runners.local import run_local

        return run_local(
            args.batch,
            jobs=args.jobs,
            threads=args.threads,
            gpus=args.gpus,
            gpus_per_job=args.gpus_per_job,
            jobs_per_gpu=args.jobs_per_gpu,
            max_gpu_memory=args.max_gpu_memory / 100,
            cold=args.cold,
        )

    return run_main(main, parser, argv)


def run_slurm_main(argv: Sequence[str] | None = None) -> int:
    parser = slurm_parser()

    def main(args: argparse.Namespace) -> None:
        from src.runners.slurm import SlurmOptions, submit

        options = SlurmOptions(
            max_jobs=args.max_jobs,
            nodes=args.nodes,
            tasks_per_node=args.tasks_per_node,
            gpus_per_node=args.gpus_per_node,
            partition=args.partition,
            time=args.time,
            mem=args.mem,
            cpus=args.cpus,
            account=args.account,
            job_name=args.job_name,
            extra=tuple(args.sbatch),
            setup=tuple(args.setup),
            max_array_size=args.max_array_size,
        )
        submit(args.batch, options, dry_run=args.dry_run, test_only=args.test_only)

    return run_main(main, parser, argv)


def slurm_parser() -> Parser:
    """bin/run_slurm.py's options (SlurmOptions, src/runners/slurm.py)."""
    parser = Parser(
        prog="bin/run_slurm.py",
        description="Submit a batch file's unfinished jobs as a SLURM job array (several, one after another, where "
        "they outnumber the cluster's MaxArraySize); each task is one run, on --nodes x --tasks-per-node processes "
        "started by srun.",
        epilog="example: bin/run_slurm.py experiments/tune_lr/small/batch.sh --gpus-per-node 4 --time 4:00:00",
    )
    parser.add_argument("batch", metavar="BATCH", help="a batch.sh written by an experiment's `main.py prepare`")
    parser.add_argument("--max-jobs", type=int, default=8, help="tasks running at once (default 8)")
    parser.add_argument("--nodes", type=int, default=1, help="nodes per run (default 1)")
    parser.add_argument(
        "--tasks-per-node", type=int, help="training processes per node (default: --gpus-per-node, or 1)"
    )
    parser.add_argument(
        "--gpus-per-node", "--gpus", type=int, help="GPUs per node, one process each unless --tasks-per-node"
    )
    parser.add_argument("--partition")
    parser.add_argument("--time", help="time limit per task, e.g. 4:00:00")
    parser.add_argument("--mem", help="memory per node, e.g. 16G")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs per process (default 1)")
    parser.add_argument("--account")
    parser.add_argument("--job-name")
    parser.add_argument("--sbatch", action="append", default=[], help="extra sbatch option, e.g. --sbatch=--qos=high")
    parser.add_argument(
        "--setup",
        action="append",
        default=[],
        metavar="LINE",
        help="a shell line each task runs before training, e.g. --setup 'module load cuda/12.4' (repeatable; a "
        "failing one fails the run)",
    )
    parser.add_argument(
        "--max-array-size", type=int, help="task ids per array (default: the cluster's MaxArraySize, scontrol)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the array scripts, submit nothing")
    parser.add_argument(
        "--test-only",
        action="store_true",
        help="write the scripts and ask sbatch --test-only about them; submit nothing",
    )
    return parser
