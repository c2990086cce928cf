"""What every command line shares: argparse with one-line errors, .env loading, and `run_main`, which turns
errors into one line on stderr and a non-zero exit code."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from src.errors import MEMORY_ADVICE, UserError, did_you_mean, one_line, out_of_memory
from src.run.secrets import redact


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):  # `--print_config`: LightningCLI's spelling, say
            options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            for given in message.split(": ", 1)[1].split():
                if given.startswith("--") and (hint := did_you_mean(given.replace("_", "-"), options)):
                    message = f"unrecognized argument {given}.{hint}"
                    break
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def load_env_file() -> None:
    """Load the project's git-ignored .env (machine paths, tracker tokens); variables already set win."""
    from dotenv import load_dotenv

    load_dotenv(Path(__file__).resolve().parents[2] / ".env", override=False)


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
        from src.config.gin_errors import call_error

        if message := call_error(e):  # a config mistake gin finds only when the run starts
            print(redact(f"error: {message}"), file=sys.stderr)
            return UserError.exit_code
        if out_of_memory(e):
            why = f"{type(e).__name__}: {one_line(e)}"
            print(redact(f"error: out of memory ({why}): {MEMORY_ADVICE}."), file=sys.stderr)
            return 1
        print(redact(f"error: {type(e).__name__}: {one_line(e)} (run with --debug for the traceback)"), file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0
