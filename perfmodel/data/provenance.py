"""Provenance as an explicit object, and the table type that carries it beside a DataFrame.

A wide table's columns come from different measurements: hardware counters (``real``), the cache simulator
(``simulated``), OS counters (``software``), sensors, or are ``derived`` from other columns. A model trained on
simulated counts must refuse real ones (:meth:`perfmodel.model.ModelFile.check_compatible`), so where a column
came from travels with the table:

* :class:`Provenance` (frozen): column -> provenance (``sources``; several joined with ``+`` such as
  ``real+simulated`` where data sets were mixed), the inputs of derived columns (``derived_from``), units, and
  the data's origin (``origin``, e.g. ``armpm:<file>``). Operations return new objects, never change one.
* :class:`Table` (frozen): a DataFrame, its :class:`Provenance` and ``meta``, facts about the table as a whole
  (an importer's report, how many timing cells a join left without counts, ...).

The functions that make wide tables (:func:`perfmodel.data.wide_per_cell`, the importers) return a
:class:`Table`; those that add or replace columns (:func:`perfmodel.model.features.join_simulated`,
``attach_*``, ``speed_scaled``) take one and return one whose provenance names what they added. A bare
DataFrame has no provenance at all: a model refuses its measured columns unless the caller states their
provenance. Nothing rides in a frame's pandas ``attrs`` (pandas drops them across concat / merge and deep-copies them
into every intermediate result).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import pandas as pd

_EMPTY: Mapping = MappingProxyType({})


def _frozen(mapping: Mapping | None, value=lambda v: v) -> Mapping:
    return MappingProxyType({str(k): value(v) for k, v in (mapping or {}).items()})


@dataclass(frozen=True)
class Provenance:
    """Where each column of a table came from (module docstring). ``sources``: column -> provenance;
    ``derived_from``: derived column -> the columns it is computed from (empty for bookkeeping such as
    ``n_images``); ``units``: column -> unit; ``origin``: the data's origin where it is one file or program."""

    sources: Mapping[str, str] = field(default_factory=dict)
    derived_from: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    origin: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", _frozen(self.sources, str))
        object.__setattr__(self, "derived_from", _frozen(self.derived_from, lambda v: tuple(map(str, v))))
        object.__setattr__(self, "units", _frozen(self.units, str))

    def __bool__(self) -> bool:
        return bool(self.sources or self.derived_from or self.units or self.origin)

    def get(self, column: str) -> str | None:
        """The recorded provenance of ``column`` (None when none is recorded)."""
        return self.sources.get(column)

    def leaves(self, column: str) -> list[tuple[str, str | None]]:
        """The measured columns behind ``column`` with their recorded provenance (None where none is recorded).
        Derived columns are followed through :attr:`derived_from`; a derived column with no recorded inputs
        (bookkeeping such as ``n_images``) contributes nothing."""
        leaves: list[tuple[str, str | None]] = []
        todo, seen = [column], set()
        while todo:
            col = todo.pop()
            if col in seen:
                continue
            seen.add(col)
            if col in self.derived_from:
                todo.extend(self.derived_from[col])
            else:
                leaves.append((col, self.sources.get(col)))
        return leaves

    def with_columns(self, sources: Mapping[str, str], *, derived_from: Mapping[str, Sequence[str]] | None = None,
                     units: Mapping[str, str] | None = None) -> Provenance:
        """A copy that records ``sources`` (column -> provenance); a column named there and not in
        ``derived_from`` loses any derivation recorded before (it is a measurement of its own now)."""
        derived_from = dict(derived_from or {})
        derived = {k: v for k, v in self.derived_from.items() if k not in sources or k in derived_from}
        derived.update(derived_from)
        return replace(self, sources={**self.sources, **sources}, derived_from=derived,
                       units={**self.units, **(units or {})})

    def without(self, columns: Iterable[str]) -> Provenance:
        """A copy that records nothing about ``columns``."""
        gone = set(columns)
        return replace(self, sources={k: v for k, v in self.sources.items() if k not in gone},
                       derived_from={k: v for k, v in self.derived_from.items() if k not in gone},
                       units={k: v for k, v in self.units.items() if k not in gone})

    def restricted(self, columns: Iterable[str]) -> Provenance:
        """A copy that records only ``columns`` (those of a table made from a wider one)."""
        keep = set(columns)
        return replace(self, sources={k: v for k, v in self.sources.items() if k in keep},
                       derived_from={k: v for k, v in self.derived_from.items() if k in keep},
                       units={k: v for k, v in self.units.items() if k in keep})

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON output and tests): ``provenance``, ``derived_from``, ``units``, ``origin``."""
        return {"provenance": dict(self.sources), "derived_from": {k: list(v) for k, v in self.derived_from.items()},
                "units": dict(self.units), "origin": self.origin}


#: a provenance that records nothing (the provenance of a bare DataFrame)
NO_PROVENANCE = Provenance()


@dataclass(frozen=True, eq=False)
class Table:
    """A DataFrame with its :class:`Provenance` and ``meta`` (facts about the table as a whole). Treat the
    frame as read-only: the operations here and in :mod:`perfmodel.model.features` make new frames."""

    frame: pd.DataFrame
    provenance: Provenance = NO_PROVENANCE
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame):
            raise TypeError(f"Table needs a DataFrame, got {type(self.frame).__name__}")
        if not isinstance(self.provenance, Provenance):
            raise TypeError(f"Table needs a Provenance, got {type(self.provenance).__name__}")
        object.__setattr__(self, "meta", _frozen(self.meta))

    @property
    def columns(self) -> pd.Index:
        return self.frame.columns

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def __len__(self) -> int:
        return len(self.frame)

    def rows(self, selector, *, reset_index: bool = False) -> Table:
        """The rows ``frame.loc[selector]`` (a boolean mask or index labels) with the same provenance."""
        frame = self.frame.loc[selector]
        return self.with_frame(frame.reset_index(drop=True) if reset_index else frame)

    def with_frame(self, frame: pd.DataFrame) -> Table:
        """The same provenance and meta on ``frame`` (the same measurements: fewer rows or columns, a copy, a
        new order). Provenance of columns ``frame`` lacks is kept: a derived column's inputs may be among them."""
        return Table(frame, self.provenance, self.meta)

    def with_provenance(self, provenance: Provenance) -> Table:
        return Table(self.frame, provenance, self.meta)

    def with_meta(self, **items: Any) -> Table:
        """A copy with ``meta`` entries added or replaced."""
        return Table(self.frame, self.provenance, {**self.meta, **items})


def as_table(data: Table | pd.DataFrame) -> Table:
    """``data`` as a :class:`Table` (a bare DataFrame gets :data:`NO_PROVENANCE`)."""
    if isinstance(data, Table):
        return data
    if isinstance(data, pd.DataFrame):
        return Table(data)
    raise TypeError(f"expected a Table or a DataFrame, got {type(data).__name__}")


def frame_of(data: Table | pd.DataFrame) -> pd.DataFrame:
    """The DataFrame of a :class:`Table`, or ``data`` itself."""
    return data.frame if isinstance(data, Table) else data


def provenance_of(data: Table | pd.DataFrame | Provenance) -> Provenance:
    """The :class:`Provenance` of a table (:data:`NO_PROVENANCE` for a bare DataFrame)."""
    if isinstance(data, Provenance):
        return data
    return data.provenance if isinstance(data, Table) else NO_PROVENANCE


def like(original: Table | pd.DataFrame, result: Table) -> Table | pd.DataFrame:
    """``result`` as the kind of table ``original`` is: a function given a bare DataFrame returns one (it had
    no provenance to carry), one given a :class:`Table` returns the Table."""
    return result if isinstance(original, Table) else result.frame


__all__ = ["NO_PROVENANCE", "Provenance", "Table", "as_table", "frame_of", "like", "provenance_of"]
