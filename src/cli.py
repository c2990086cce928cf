"""Command-line entry points behind the thin scripts in bin/: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from src.errors import UserError, one_line
from src.secrets import redact


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def load_env_file() -> None:
    """Load the project's git-ignored .env (machine paths, tracker tokens); variables already set win."""
    from dotenv import load_dotenv

    load_dotenv(Path(__file__).resolve().parents[1] / ".env", override=False)


def run_main(
    main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> int:
    """Parse arguments and run `main` (its int result is the exit code); errors become one line on stderr and a
    non-zero exit code."""
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    load_env_file()
    try:
        result = main(args)
    except UserError as e:
        if args.debug:
            raise
        print(redact(f"error: {one_line(e)}"), file=sys.stderr)  # a bad value may be a secret
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`bin/runs.py | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the flush at exit would fail again
        return 128 + signal.SIGPIPE
    except Exception as e:
        if args.debug:
            raise
        from src.gin_errors import call_error

        if message := call_error(e):  # a config mistake gin finds only when the run starts
            print(redact(f"error: {message}"), file=sys.stderr)
            return UserError.exit_code
        print(redact(f"error: {type(e).__name__}: {one_line(e)} (run with --debug for the traceback)"), file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def train_main(argv: Sequence[str] | None = None, freeze_gc: bool = False) -> int:
    """bin/train.py. freeze_gc (the script, not in-process callers): see gc.freeze() below."""
    from src import preemption_signal

    preemption_signal.listen()  # SLURM's preemption warning may come during imports and data loading
    parser = Parser(
        prog="bin/train.py",
        description="Train with gin configs into SAVE_DIR; re-running the same command resumes.",
        epilog='example: bin/train.py results/cnn configs/cnn.gin -b "training_loop.n_epochs=5" -b "cnn.width=8"',
    )
    parser.add_argument("save_dir", metavar="SAVE_DIR", help="run folder (created; resumed if it holds last.ckpt)")
    parser.add_argument("configs", metavar="CONFIGS", nargs="+", help="gin config files (several: joined with '#')")
    parser.add_argument(
        "-b", "--bindings", action="append", default=[], help="gin bindings joined with '#'; may be repeated"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the operative config the run would use (every parameter, defaults included) and write nothing",
    )

    def main(args: argparse.Namespace) -> None:
        from src import config
        from src.training_loop import training_loop

        # Every CONFIGS and every -b counts, in order: later ones override earlier ones.
        configs = [c for joined in args.configs for c in config.split_joined(joined)]
        bindings = [b for joined in args.bindings for b in config.split_joined(joined)]
        if not configs:
            raise UserError("No config file given: pass e.g. configs/cnn.gin (several joined with '#').")
        config.parse(configs, bindings)
        if freeze_gc:
            # Everything imported so far lives until exit: freeze it so that the GC never traverses it again: no
            # gen-2 pauses during training, and interpreter exit is ~1 s faster (bench/README.md). No gc.collect()
            # first: it would take ~0.3 s to free a few hundred objects. Only in a process that exits after the
            # training: frozen objects are never freed.
            gc.freeze()
        training_loop(args.save_dir, config_files=configs, bindings=bindings, dry_run=args.print_config)

    return run_main(main, parser, argv)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/evaluate.py", description="Test a run's checkpoint; writes eval_results_<checkpoint>.json."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--checkpoint", default="best", help="best or last (default: best)")

    def main(args: argparse.Namespace) -> None:
        from src.evaluate import evaluate

        metrics, path = evaluate(args.run_dir, checkpoint=args.checkpoint)
        print(" | ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
        print(f"wrote {path}")

    return run_main(main, parser, argv)


def download_main(argv: Sequence[str] | None = None) -> int:
    from src.data.download import ARCHIVES, data_dir, download

    parser = Parser(prog="bin/download_data.py", description="Download and verify a data set into DATA_DIR.")
    parser.add_argument("name", help=f"one of: {', '.join(sorted(ARCHIVES))}")
    parser.add_argument("--data-dir", help="default: $DATA_DIR (shell or .env) or data/")
    parser.add_argument("--url", help="mirror URL of the archive (the checksum is still verified)")

    def main(args: argparse.Namespace) -> None:
        # DATA_DIR is read here, after run_main has loaded .env
        print(f"{args.name} ready in {download(args.name, args.data_dir or data_dir(), url=args.url)}")

    return run_main(main, parser, argv)


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
    parser = Parser(
        prog="bin/run_slurm.py",
        description="Submit a batch file's unfinished jobs as one SLURM job array; each task is one run, on "
        "--nodes x --tasks-per-node processes started by srun.",
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
    parser.add_argument("--dry-run", action="store_true", help="print the array script, submit nothing")

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
        )
        submit(args.batch, options, dry_run=args.dry_run)

    return run_main(main, parser, argv)


def runs_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/runs.py", description="Every run under DIR: status, the config that varies, best metrics, age."
    )
    parser.add_argument("folder", metavar="DIR", help="a results folder (searched recursively)")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    def main(args: argparse.Namespace) -> None:
        from src.runs_table import runs_table, short_headers
        from src.tables import print_frame

        if not Path(args.folder).is_dir():
            raise UserError(f"{args.folder!r} is not a folder.")
        table = runs_table(args.folder)
        if table.empty:
            print(f"no runs under {args.folder}")
        elif args.csv:
            table.to_csv(sys.stdout, index=False)
        else:
            # on a narrow terminal the age, then the bindings from the right are left out before the metrics
            keep = ["run", "status", *table.attrs["metrics"]]
            table.columns = headers = short_headers(table.columns)
            print_frame(table, f"{len(table)} runs in {args.folder}", keep=[h for h in headers if h in keep])

    return run_main(main, parser, argv)


def diff_runs_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/diff_runs.py",
        description="The gin bindings and the environment (commit, host, device, packages) that differ between two "
        "runs, side by side.",
    )
    parser.add_argument("a", metavar="RUN_A")
    parser.add_argument("b", metavar="RUN_B")

    def main(args: argparse.Namespace) -> None:
        import pandas as pd

        from src.runs_table import diff_bindings, diff_environment, path_labels
        from src.tables import print_frame

        rows = diff_bindings(args.a, args.b)
        if not rows:
            print("same operative config")
        labels = path_labels([args.a, args.b])
        if rows:
            shown = [(key, *[v if v == "<unset>" else repr(v) for v in values]) for key, *values in rows]  # as in gin
            columns = ["binding", *labels]
            print_frame(pd.DataFrame(shown, columns=columns), f"{len(rows)} bindings differ", keep=columns)
        rows = diff_environment(args.a, args.b)
        if not rows:
            print("same environment (git commit and diff, host, device, Python, packages)")
        else:
            columns = ["environment", *labels]
            print_frame(pd.DataFrame(rows, columns=columns), f"{len(rows)} environment differences", keep=columns)

    return run_main(main, parser, argv)


def reproduce_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/reproduce.py",
        description="Train a run again from its folder alone (commit, diff, configs, bindings) in a clean checkout, "
        "and compare: exit code 0 only when the results are identical.",
        epilog="example: bin/reproduce.py results/cnn --into /tmp/cnn.repro",
    )
    parser.add_argument("run", metavar="RUN", help="a finished run folder")
    parser.add_argument("--into", metavar="DIR", help="the new run folder (default: RUN.repro)")
    parser.add_argument(
        "--tolerance",
        metavar="T",
        type=float,
        default=0.0,
        help="largest absolute difference that counts as equal (default 0: bitwise; GPU runs need more, e.g. 1e-4)",
    )
    parser.add_argument("--repo", metavar="DIR", help="the git repository holding the run's commit (default: this one)")

    def main(args: argparse.Namespace) -> int:
        from src.reproduce import print_result, reproduce

        plan, found = reproduce(args.run, into=args.into, tolerance=args.tolerance, repo=args.repo)
        return print_result(found, plan, args.tolerance)

    return run_main(main, parser, argv)


def find_lr_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/find_lr.py",
        description="Lightning's learning-rate range test for a config: the loss against a growing learning rate "
        "(lr_find.png) and the suggested learning rate (lr_find.json) in a folder, and the binding to use.",
        epilog='example: bin/find_lr.py configs/cnn.gin -b "digits.batch_size=128" --out results/find_lr/cnn',
    )
    parser.add_argument("configs", metavar="CONFIGS", help="gin config files joined with '#'")
    parser.add_argument("-b", "--bindings", default="", help="gin bindings joined with '#'")
    parser.add_argument("--out", metavar="DIR", help="where to write (default: results/find_lr/<first config's name>)")
    parser.add_argument("--min-lr", type=float, default=1e-6, help="smallest learning rate tried (default 1e-6)")
    parser.add_argument("--max-lr", type=float, default=1.0, help="largest learning rate tried (default 1)")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the test (default 100)")

    def main(args: argparse.Namespace) -> int:
        from src import config
        from src import run_dir as layout
        from src.lr_range_test import lr_range_test

        configs, bindings = config.split_joined(args.configs), config.split_joined(args.bindings)
        out = Path(args.out) if args.out else layout.results_root() / "find_lr" / Path(configs[0]).stem
        found = lr_range_test(configs, bindings, out, args.min_lr, args.max_lr, args.steps)
        print(f"plot: {out / 'lr_find.png'}; results: {out / 'lr_find.json'}")
        if found["binding"] is None:
            print("no suggestion: too few points where the loss fell; try more --steps or another --min-lr/--max-lr")
            return 1
        print(f"suggested: {found['binding']}")
        return 0

    return run_main(main, parser, argv)
