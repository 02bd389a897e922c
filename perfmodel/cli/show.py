"""What every command prints with: numbers formatted one way, a table, a console for stdout, and the
:data:`perfmodel.workflows.Say` that puts a workflow's notes and warnings on stderr."""

from __future__ import annotations

import math
from typing import Any


def fmt(x: Any, spec: str = ".2f", missing: str = "n/a", *, finite: bool = False) -> str:
    """``x`` formatted with ``spec``; None and NaN (with ``finite`` infinities too) -> ``missing``; a value
    ``spec`` does not fit (a string) -> ``str(x)``."""
    if x is None:
        return missing
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(f) or (finite and math.isinf(f)):
        return missing
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def stdout_console(width: int = 140):
    """A console on stdout: the terminal's width, or ``width`` when the output is piped or captured (so that
    tables are not squeezed into 80 columns)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=width)


def print_table(title: str, columns: list[str], rows: list[list[str]], *, left: int = 1,
                no_wrap: bool = False) -> None:
    """A table on stdout: the first ``left`` columns left-aligned, the others right-aligned; cells fold
    (``no_wrap``: never wrap)."""
    from rich.table import Table

    t = Table(title=title)
    for i, c in enumerate(columns):
        how = {"no_wrap": True} if no_wrap else {"overflow": "fold"}
        t.add_column(c, justify="left" if i < left else "right", **how)
    for r in rows:
        t.add_row(*r)
    stdout_console().print(t)


def say(text: str, warn: bool = False) -> None:
    """A line (or lines) on stderr, a warning in yellow; the text is printed as it is (no markup)."""
    from rich.console import Console

    Console(stderr=True).print(text, style="yellow" if warn else None, markup=False, highlight=False)
