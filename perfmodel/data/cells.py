"""What a cell is measured with: its counter source, as data.

The collect stage names a cell after its counter source (``<framework>__<network>__t<threads>__r<repeat>__<source>``,
``command__<digest>__<source>``, traces ``...__trace-<source>``). The wide tables
(:func:`perfmodel.data.wide_per_cell`, ...) carry it as the key column ``counter_source``, derived here once from
the cell id, so data sets stored before the column existed read the same; :func:`is_simulated` is the one
question "is this cell simulated?" (a valgrind cell: simulated per-image counts, no timing).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from perfmodel.readings import COUNTER_SOURCES

#: the counter source of simulated cells (the valgrind cache simulator)
SIMULATED = "valgrind"

#: the ``counter_source`` of a cell whose id names none (imported samples, partial traces, renamed cells)
UNKNOWN = "unknown"

#: the name of the column
COLUMN = "counter_source"


def counter_source(cell_id: object) -> str:
    """The counter source a cell id names (its last ``__`` part; ``trace-<source>`` for traces; a cell renamed
    ``<cell_id>@<n>`` by :func:`perfmodel.data.merge` keeps its source), else :data:`UNKNOWN`."""
    last = re.sub(r"@[0-9]+$", "", str(cell_id)).split("__")[-1]
    if last.startswith("trace-"):
        last = last[len("trace-"):]
    return last if last in COUNTER_SOURCES else UNKNOWN


def counter_sources(cell_ids: pd.Series) -> pd.Series:
    """:func:`counter_source` of every cell id (computed once per distinct id)."""
    ids = cell_ids.astype(str)
    return ids.map({c: counter_source(c) for c in pd.unique(ids)}).astype(object)


def is_simulated(df: pd.DataFrame) -> pd.Series:
    """True for the rows of simulated cells: by the ``counter_source`` column of a wide table, else by the cell
    ids (long records); all False for a table with neither column (it has no cells)."""
    if COLUMN in df.columns:
        return (df[COLUMN].astype(str) == SIMULATED).rename(None)
    if "cell_id" in df.columns:
        return (counter_sources(df["cell_id"]) == SIMULATED).rename(None)
    return pd.Series(False, index=df.index)


def splice_simulated(records: pd.DataFrame, others: Sequence[pd.DataFrame], *, replace: bool = False) -> pd.DataFrame:
    """Long records with the simulated cells of ``others`` (other data sets' records) that ``records`` does not
    have (by cell id), e.g. a valgrind pass run into a second folder; ``replace``: instead of the simulated
    cells of ``records`` (the same workloads simulated with another cache geometry)."""
    if replace:
        records = records[~is_simulated(records)]
    have = set(records["cell_id"].astype(str))
    parts = [records] + [o[is_simulated(o) & ~o["cell_id"].astype(str).isin(have)] for o in others]
    return pd.concat(parts, ignore_index=True)


__all__ = ["COLUMN", "COUNTER_SOURCES", "SIMULATED", "UNKNOWN", "counter_source", "counter_sources", "is_simulated",
           "splice_simulated"]
