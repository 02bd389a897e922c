"""Option checks shared by the commands, importing neither typer nor the stages (the ``predict --graph`` fast
path of :mod:`perfmodel.cli.entry` uses them)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

from perfmodel.errors import PerfmodelError


def split_list(values: Iterable[Any] | str | None, option: str = "option", item: Callable[[str], Any] = str
               ) -> list[Any] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (blanks dropped, order kept); None / empty -> None.

    A value given only as commas or blanks (``--frameworks ""``) is an error, as is an item ``item`` cannot
    convert.
    """
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = [values]
    values = list(values)
    if not values:
        return None
    out: list[Any] = []
    for v in values:
        parts = [p.strip() for p in str(v).split(",") if p.strip()]
        if not parts:
            raise PerfmodelError(f"{option} needs at least one value (got {str(v)!r})")
        for p in parts:
            try:
                out.append(item(p))
            except (TypeError, ValueError):
                kind = getattr(item, "__name__", "value")
                raise PerfmodelError(f"{option} takes {kind} values (repeat it or give a comma list), got "
                                     f"{p!r}") from None
    return out


def check_option(name: str, value, *, minimum: float | None = None, above: float | None = None,
                  below: float | None = None, maximum: float | None = None, what: str = "") -> None:
    """Refuse an option value up front, naming the option (NaN and infinities included): ``minimum`` /
    ``maximum`` inclusive, ``above`` / ``below`` exclusive bounds."""
    if value is None:
        return
    x = float(value)
    bounds = [f">= {minimum:g}" if minimum is not None else None, f"> {above:g}" if above is not None else None,
              f"< {below:g}" if below is not None else None, f"<= {maximum:g}" if maximum is not None else None]
    want = " and ".join(b for b in bounds if b) or "finite"
    ok = math.isfinite(x) and (minimum is None or x >= minimum) and (above is None or x > above) \
        and (below is None or x < below) and (maximum is None or x <= maximum)
    if not ok:
        raise PerfmodelError(f"{name} must be a number {want}{what}, got {value}")


def error_exit(exc: BaseException) -> SystemExit:
    """``error: ...`` on stderr for a PerfmodelError or an OSError (no traceback), and the exit to raise."""
    if isinstance(exc, PerfmodelError):
        message, code = str(exc), exc.exit_code
    else:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        message, code = f"{getattr(exc, 'strerror', None) or exc}{where}", 2
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return SystemExit(code)
