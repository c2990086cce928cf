"""Keep secrets out of run folders: values of environment variables (and `.env` entries) whose names look
secret (*TOKEN*, *SECRET*, *PASSWORD*, *KEY*) are replaced by '***' in everything the template writes."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)
MIN_LENGTH = 6  # shorter values ('1', 'true') would redact ordinary text
MASK = "***"


def _env_file_values() -> dict[str, str]:
    path = Path(__file__).resolve().parents[2] / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v}


@lru_cache(maxsize=8)
def _secrets(environment: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    found = {value for name, value in environment if SECRET_NAME.search(name) and len(value) >= MIN_LENGTH}
    found |= {v for k, v in _env_file_values().items() if SECRET_NAME.search(k) and len(v) >= MIN_LENGTH}
    return tuple(sorted(found, key=len, reverse=True))  # longest first: a secret containing another


def secret_values() -> tuple[str, ...]:
    return _secrets(tuple(sorted(os.environ.items())))


def redact(text: str) -> str:
    for secret in secret_values():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_all(value: Any) -> Any:
    """`value` with secrets masked in every string it holds (a string, or a list or tuple of them)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_all(v) for v in value)
    return value


@contextlib.contextmanager
def redacted_argv() -> Iterator[None]:
    """sys.argv with secrets masked while a tracker's client starts: W&B and Neptune record the command line (a
    binding given with -b may hold a secret) in their files inside the run folder."""
    argv = sys.argv
    sys.argv = [redact(a) for a in argv]
    try:
        yield
    finally:
        sys.argv = argv
