"""Command-line entry points behind the thin scripts in bin/: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from src.errors import UserError


def first_line(error: BaseException) -> str:
    """gin appends '  In call to configurable ...' lines to errors raised inside configurables: drop them."""
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("  In call to configurable")]
    return " ".join(line.strip() for line in lines) or type(error).__name__


def load_env_file() -> None:
    """Load the project's git-ignored .env (machine paths, tracker tokens); variables already set win."""
    from dotenv import load_dotenv

    load_dotenv(Path(__file__).resolve().parents[1] / ".env", override=False)


def run_main(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
             argv: Sequence[str] | None = None) -> int:
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
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        print(f"error: {type(e).__name__}: {first_line(e)} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def train_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/train.py",
        description="Train with gin configs into SAVE_DIR; re-running the same command resumes.",
        epilog='example: bin/train.py results/cnn configs/cnn.gin -b "training_loop.n_epochs=5#training_loop.seed=1"',
    )
    parser.add_argument("save_dir", metavar="SAVE_DIR", help="run folder (created; resumed if it holds last.ckpt)")
    parser.add_argument("configs", metavar="CONFIGS", help="gin config files joined with '#'")
    parser.add_argument("-b", "--bindings", default="", help="gin bindings joined with '#'")

    def main(args):
        from src import config
        from src.training_loop import training_loop

        configs, bindings = config.split_joined(args.configs), config.split_joined(args.bindings)
        if not configs:
            raise UserError("No config file given: pass e.g. configs/cnn.gin (several joined with '#').")
        config.parse(configs, bindings)
        training_loop(args.save_dir, config_files=configs, bindings=bindings)

    return run_main(main, parser, argv)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/evaluate.py",
                                     description="Test a run's checkpoint; writes eval_results_<checkpoint>.json.")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--checkpoint", default="best", help="best or last (default: best)")

    def main(args):
        from src.evaluate import evaluate

        metrics, path = evaluate(args.run_dir, checkpoint=args.checkpoint)
        print(" | ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
        print(f"wrote {path}")

    return run_main(main, parser, argv)


def download_main(argv: Sequence[str] | None = None) -> int:
    import os

    from src.data.download import ARCHIVES

    parser = argparse.ArgumentParser(prog="bin/download_data.py",
                                     description="Download and verify a data set into DATA_DIR.")
    parser.add_argument("name", help=f"one of: {', '.join(sorted(ARCHIVES))}")
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR") or "data", help="default: $DATA_DIR or data/")
    parser.add_argument("--url", help="mirror URL of the archive (the checksum is still verified)")

    def main(args):
        from src.data.download import download

        print(f"{args.name} ready in {download(args.name, args.data_dir, url=args.url)}")

    return run_main(main, parser, argv)


__all__ = ["train_main", "evaluate_main", "download_main", "run_main"]
