"""Copy everything printed to stdout/stderr into files of the run folder (appending, so resumes keep history)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from src.run.secrets import redact


class Tee:
    """A text stream that writes to the original stream and to a file, secrets masked in both: the original stream
    often ends in a file too (SLURM's slurm-*.out inside the run folder, bin/run_local.py's logs)."""

    def __init__(self, stream: IO[str], file: IO[str]) -> None:
        self.stream = stream
        self.file = file

    def write(self, text: str) -> int:
        masked = redact(text)
        self.stream.write(masked)
        self.file.write(masked)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.file.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class Redacted:
    """A file that masks secrets in what is written to it."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file

    def write(self, text: str) -> int:
        return self.file.write(redact(text))

    def flush(self) -> None:
        self.file.flush()


@contextlib.contextmanager
def tee_output(stdout_path: str | Path, stderr_path: str | Path) -> Iterator[None]:
    with append(stdout_path) as out, append(stderr_path) as err:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(old_out, out), Tee(old_err, err)
        # Lightning logs through handlers that captured the original stderr at import time.
        handler = logging.StreamHandler(Redacted(err))
        lightning_loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "pytorch_lightning")]
        for logger in lightning_loggers:
            logger.addHandler(handler)
        try:
            yield
        finally:
            for logger in lightning_loggers:
                logger.removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = old_out, old_err


def append(path: str | Path) -> IO[str]:
    """A text file opened for appending, line-buffered, never through a link (it would write outside the run)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "a", buffering=1)
