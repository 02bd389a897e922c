"""Provenance of features: which measurements (real, simulated, software, ...) stand behind a column or a
feature of a table (:class:`perfmodel.data.provenance.Provenance`); what a model file records and prediction
checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from perfmodel.data.provenance import Provenance, Table, provenance_of

from ._grammar import NON_FEATURES, base_columns, parse_feature

#: columns that are keys / design variables rather than measurements: provenance ``"key"``
KEY_COLUMNS = frozenset(NON_FEATURES | {"cores", "macs"})


def resolve_provenance(provenance: Provenance, column: str) -> set[str] | None:
    """The provenances of the measurements behind ``column`` according to ``provenance``.

    Derived columns are followed through ``derived_from``; ``"real+simulated"`` splits into two. None when
    the provenance says nothing about the column.
    """
    out: set[str] = set()
    for col, p in provenance.leaves(column):
        if p is None:
            if col in KEY_COLUMNS:
                continue
            return None
        if p == "derived":  # marked derived without recorded inputs: bookkeeping
            continue
        out.update(str(p).split("+"))
    return out


def column_provenance(data: Table | pd.DataFrame | Provenance, columns: Iterable[str],
                      override: str | Mapping[str, str] | None = None) -> dict[str, list[str] | None]:
    """Base column -> sorted provenances (``["key"]`` for key columns, None when unknown). ``data``: a
    :class:`~perfmodel.data.provenance.Table` or its provenance; a bare DataFrame records none.

    ``override``: one provenance for every measured column (``"real"``) or a column -> provenance
    mapping; it applies to columns the provenance does not describe (e.g. a CSV file).
    """
    prov = provenance_of(data)
    out: dict[str, list[str] | None] = {}
    for col in columns:
        if col in KEY_COLUMNS and col not in prov.sources:
            out[col] = ["key"]
            continue
        p = resolve_provenance(prov, col)
        if p is None and override is not None:
            if isinstance(override, str):
                p = {override}
            elif col in override:
                p = {override[col]}
        out[col] = sorted(p) if p is not None else None
    return out


def feature_provenance(data: Table | pd.DataFrame | Provenance, features: Sequence[str],
                       override: str | Mapping[str, str] | None = None) -> dict[str, list[str] | None]:
    """Feature -> sorted provenances of the columns behind it (None when any of them is unknown).

    Indicator factors (``framework=litert``) and key columns count as ``"key"``.
    """
    cols = column_provenance(data, base_columns(features), override)
    out: dict[str, list[str] | None] = {}
    for f in features:
        acc: set[str] = set()
        for fac in parse_feature(f):
            p = ["key"] if fac.op == "eq" else cols[fac.column]
            if p is None:
                acc = None  # type: ignore[assignment]
                break
            acc.update(p)
        out[f] = sorted(acc) if acc is not None else None
    return out
