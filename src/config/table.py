"""Print the operative gin config as a compact rich table: one row per configurable, its parameters beside it."""

from __future__ import annotations

import sys
from typing import Any


def group_bindings(bindings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"cnn.width": 16, "LR": 0.1} -> {"cnn": {"width": 16}, "(macros)": {"LR": 0.1}}."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in bindings.items():
        selector, _, param = key.rpartition(".")
        groups.setdefault(selector or "(macros)", {})[param] = value
    return groups


def print_config(bindings: dict[str, Any], title: str = "config") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for selector, params in sorted(group_bindings(bindings).items()):
        table.add_row(selector, ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "-")
    Console(file=sys.stdout, width=max(Console().width, 120)).print(table)
