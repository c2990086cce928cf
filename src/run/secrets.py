"""Keep secrets out of run folders: values of environment variables (and `.env` entries) whose names look
secret (*TOKEN*, *SECRET*, *PASSWORD*, *KEY*) are replaced by '***' in everything the template writes."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

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
