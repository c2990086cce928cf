"""User-facing errors: one clear line naming the bad value and what would be valid, no traceback (unless --debug).

raise UserError(unknown("optimizer", name, OPTIMIZERS))   # Unknown optimizer 'adm'. Did you mean 'adam'? Valid ...
integer("progress_log.every_n_steps", value)              # the value, or a UserError naming the option
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

GIN_CALL_CONTEXT = "  In call to configurable"  # a line gin appends to errors raised inside configurables


class UserError(Exception):
    """A mistake in the user's input (name, config, path, data) that has a one-line explanation."""

    exit_code = 2


class RunInUse(UserError):
    """Another process trains in the run folder. Not a failure of that run: the runners (batch.sh, run_local,
    run_slurm) see the exit code and leave the folder alone."""

    exit_code = 75  # EX_TEMPFAIL


def one_line(error: BaseException | str, sep: str = " ") -> str:
    """An error's message (a KeyError's without its quotes), or a tool's output, on one line; the context lines gin
    appends to errors raised inside configurables (`  In call to configurable ...`) are dropped, its `  In file ...,
    line N` lines kept."""
    text = (
        error if isinstance(error, str) else str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    )
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(GIN_CALL_CONTEXT)]
    return sep.join(lines) or (type(error).__name__ if not isinstance(error, str) else "")


# How running out of memory shows besides MemoryError: a shared library that cannot be mapped (an import under
# `ulimit -v`), and the allocators of torch, oneDNN, CUDA and OpenBLAS.
OUT_OF_MEMORY = (
    "failed to map segment",
    "cannot allocate memory",
    "can't allocate memory",
    "out of memory",
    "could not create a primitive",
    "memory allocation",
)
MEMORY_ADVICE = "give the process more memory (ulimit -v, the job's --mem) or use less (a smaller batch or model)"


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is the process running out of memory rather than a mistake in the code that raised it."""
    return isinstance(error, MemoryError) or any(text in str(error).lower() for text in OUT_OF_MEMORY)


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """` Did you mean 'x'?` for the valid name closest to a misspelt one, or nothing."""
    import difflib

    valid = list(valid)
    swapped = [v for v in valid if transposed(str(name), v)]  # 'valid_mea' is 'valid_mae', not 'valid_mse'
    close = swapped or difflib.get_close_matches(str(name), valid, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def transposed(a: str, b: str) -> bool:
    """b is a with two adjacent characters swapped (the commonest typo, which difflib's ratio underrates)."""
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    return (
        len(a) == len(b)
        and len(diff) == 2
        and diff[1] == diff[0] + 1
        and a[diff[0]] == b[diff[1]]
        and a[diff[1]] == b[diff[0]]
    )


def unknown(kind: str, name: object, valid: Iterable[str], where: str = "") -> str:
    """Every "Unknown ..." message: `Unknown loss 'mes' (supervised.loss). Did you mean 'mse'? Valid loss names: ...`;
    `where` names the option that holds it."""
    valid = list(valid)
    at = f" ({where})" if where else ""
    return f"Unknown {kind} {name!r}{at}.{did_you_mean(name, valid)} Valid {kind} names: {', '.join(valid)}."


# --- numeric options: a bad value is one line naming it when the option is read (before the run folder exists) ------


def is_number(value: Any) -> bool:
    """A finite int or float (bool is no number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer(name: str, value: Any, at_least: int = 1) -> int:
    """`value` if it is an int >= `at_least` (a count of steps: >= 1), else a UserError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        valid = "a positive integer" if at_least == 1 else f"an integer >= {at_least}"
        raise UserError(f"{name} must be {valid}, got {value!r}.")
    return value


def number(name: str, value: Any, positive: bool = True) -> float:
    """`value` if it is a finite number > 0 (with `positive`) or >= 0, else a UserError naming `name`."""
    if not is_number(value) or value < 0 or (positive and value == 0):
        raise UserError(f"{name} must be a {'positive number' if positive else 'number >= 0'}, got {value!r}.")
    return value
