"""Provenance of features: which measurements (real, simulated, software, ...) stand behind a column or a
feature of a table; what a model file records and prediction checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from ._grammar import NON_FEATURES, base_columns, parse_feature

#: columns that are keys / design variables rather than measurements: provenance ``"key"``
KEY_COLUMNS = frozenset(NON_FEATURES | {"cores", "macs"})


def resolve_provenance(attrs: Mapping, column: str) -> set[str] | None:
    """The provenances of the measurements behind ``column`` according to ``df.attrs``.

    Derived columns are followed through ``attrs["derived_from"]``; ``"real+simulated"`` splits into two.
    None when the attrs say nothing about the column.
    """
    from perfmodel.data.tables import provenance_leaves  # noqa: PLC0415 (data may be imported by model)

    out: set[str] = set()
    for col, p in provenance_leaves(attrs, column):
        if p is None:
            if col in KEY_COLUMNS:
                continue
            return None
        if p == "derived":  # marked derived without recorded inputs: bookkeeping
            continue
        out.update(str(p).split("+"))
    return out


def column_provenance(df: pd.DataFrame, columns: Iterable[str], override: str | Mapping[str, str] | None = None,
                      ) -> dict[str, list[str] | None]:
    """Base column -> sorted provenances (``["key"]`` for key columns, None when unknown).

    ``override``: one provenance for every measured column (``"real"``) or a column -> provenance
    mapping; it applies to columns the attrs do not describe (e.g. a CSV file).
    """
    attrs = getattr(df, "attrs", {}) or {}
    out: dict[str, list[str] | None] = {}
    for col in columns:
        if col in KEY_COLUMNS and col not in (attrs.get("provenance") or {}):
            out[col] = ["key"]
            continue
        p = resolve_provenance(attrs, col)
        if p is None and override is not None:
            if isinstance(override, str):
                p = {override}
            elif col in override:
                p = {override[col]}
        out[col] = sorted(p) if p is not None else None
    return out


def feature_provenance(df: pd.DataFrame, features: Sequence[str], override: str | Mapping[str, str] | None = None,
                       ) -> dict[str, list[str] | None]:
    """Feature -> sorted provenances of the columns behind it (None when any of them is unknown).

    Indicator factors (``framework=litert``) and key columns count as ``"key"``.
    """
    cols = column_provenance(df, base_columns(features), override)
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
