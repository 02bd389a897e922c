"""Pareto front of a table: the rows no other row dominates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError


def pareto_front(df: pd.DataFrame, maximize: Sequence[str] = (), minimize: Sequence[str] = ()) -> pd.Series:
    """Boolean mask (same index as ``df``): True for rows on the Pareto front.

    Row ``a`` dominates ``b`` when ``a`` is at least as good in every objective and strictly better in
    one. Duplicated rows do not dominate each other, so all copies of a non-dominated point are on the
    front; a row that ties another in one objective and is worse in another is dominated. Rows with a
    missing (NaN) objective cannot be compared and are never on the front (the caller reports them).
    """
    cols = list(maximize) + list(minimize)
    if not cols:
        raise PerfmodelError("pareto_front needs at least one column to maximise or minimise")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise PerfmodelError(f"pareto_front: no column {', '.join(missing)}")
    if len(set(cols)) != len(cols):
        raise PerfmodelError("pareto_front: a column is named twice")
    # orient every objective as "larger is better"
    vals = np.column_stack([df[c].to_numpy(dtype="float64") for c in maximize]
                           + [-df[c].to_numpy(dtype="float64") for c in minimize]) if len(df) else \
        np.empty((0, len(cols)))
    ok = ~np.isnan(vals).any(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    idx = np.flatnonzero(ok)
    v = vals[idx]
    for k, i in enumerate(idx):
        ge = (v >= v[k]).all(axis=1)
        gt = (v > v[k]).any(axis=1)
        mask[i] = not (ge & gt).any()
    return pd.Series(mask, index=df.index, name="pareto")


__all__ = ["pareto_front"]
