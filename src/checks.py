"""Checks of numeric options (training_loop's, the callbacks'): a bad value is a one-line UserError naming it when
the option is read (before the run folder exists), not an error or a silent misbehaviour mid-training."""

from __future__ import annotations

import math
from typing import Any

from src.errors import UserError


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
