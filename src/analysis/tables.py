"""Print a pandas DataFrame as a table: whole when piped (for files and grep), fitted to the terminal otherwise.

On a terminal, columns that do not fit are dropped (the rightmost first, never those in `keep`) and named below
the table; only if the kept ones still do not fit are cells wrapped. Piped output is never cut or wrapped: one row
per line, however wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

import pandas as pd


def fmt(value: Any) -> str:
    """A cell: '-' for missing, 4 significant digits for floats."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_width(widths: Sequence[int]) -> int:
    """Width of a rich table (default box, one space of padding each side) whose columns are `widths` wide."""
    return sum(widths) + 3 * len(widths) + 1


def print_frame(
    frame: pd.DataFrame, title: str | None = None, keep: Sequence[str] = (), file: IO | None = None
) -> None:
    """Print `frame` (its column names as headers, its index left out) to `file` (default stdout)."""
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # plain text: a value like '[red]' is not markup

    console = Console(file=file)
    headers = [str(c) for c in frame.columns]
    cells = [[fmt(v) for v in frame.iloc[:, i]] for i in range(len(headers))]
    widths = [max([cell_len(h), *map(cell_len, column)]) for h, column in zip(headers, cells, strict=True)]
    shown, dropped = list(range(len(headers))), []
    if console.is_terminal:
        droppable = [i for i in reversed(shown) if headers[i] not in keep]
        while droppable and table_width([widths[i] for i in shown]) > console.width:
            dropped.append(droppable.pop(0))
            shown.remove(dropped[-1])
    else:
        console = Console(file=file, width=max(table_width(widths), 80))  # as wide as the table: nothing is cut
    table = Table(title=title and Text(title))
    for i in shown:
        numeric = pd.api.types.is_numeric_dtype(frame.iloc[:, i]) and not pd.api.types.is_bool_dtype(frame.iloc[:, i])
        table.add_column(Text(headers[i]), overflow="fold", justify="right" if numeric else "left")
    for row in zip(*[cells[i] for i in shown], strict=True):
        table.add_row(*map(Text, row))
    console.print(table)
    if dropped:
        names = ", ".join(headers[i] for i in sorted(dropped))
        note = f"not shown, the terminal is too narrow: {names} (piped output has every column)"
        console.print(Text(note), soft_wrap=True)  # one line, to copy the names from
