"""Wide tables for modelling, made from the tidy long records.

* :func:`wide_per_image` - one row per image record (``phase="image"``), keys
  ``run_id, cell_id, board, framework, network, threads, workload, repeat, image_index``; one column per
  metric. Event counts are named ``<event>_per_image``; timing, sensor and ``x_`` columns keep their
  names. Derived columns (only where their inputs exist):

  - ``throughput_fps`` = 1000 / ``latency_ms`` (the study's definition), unless measured;
  - ``<event>_per_s`` = count / (``latency_ms`` / 1000);
  - ``ipc`` = instructions / cycles and ``<event>_per_cycle`` = count / cycles (hardware events);
  - miss rates :data:`MISS_RATES` (``l1d_miss_rate`` = l1d_refills / l1d_accesses, ...).

* :func:`wide_per_cell` - one row per cell (``run_id, cell_id, board, framework, network, threads,
  workload, repeat``): for every per-image column its mean (plain name), ``<col>_std`` (sample standard
  deviation) and ``<col>_n`` (images with a value), plus ``n_images``. Derived columns are then
  recomputed from the means (ratio of means, so ``throughput_fps`` = 1000 / mean latency as in the
  study; the ``_std`` of a derived column is the spread of its per-image values). Whole-command records
  (``phase="command"``, already per image) fill cells that have no image records; cell-level records
  (``phase="cell"``) are joined under their metric name, or ``<metric>_cell`` where that name is taken.

* :func:`wide_per_sample` - one row per trace sample (``phase="trace"``) keyed by the cell keys and
  ``t_start_s``, with ``t_end_s``, ``dt_s`` and ``t_rel_s`` (time since the cell's first sample); event
  columns hold the interval's count under the event name, with ``<event>_per_s`` = count / ``dt_s``;
  ``throughput_fps`` = ``images`` / ``dt_s`` where the trace records ``images`` and not a throughput.

Missing figures stay NaN: nothing is filled or interpolated. A ratio with a zero or missing
denominator is NaN.

Provenance
----------
Each function returns a :class:`perfmodel.data.provenance.Table`: the frame and its
:class:`~perfmodel.data.provenance.Provenance`, which maps every metric column to the provenance of its present
values (one of :data:`perfmodel.readings.PROVENANCES`, several joined with ``+`` such as ``"real+simulated"``
when data sets were mixed, ``"none"`` when no row has a value). Derived columns are ``"derived"`` with their
inputs in ``derived_from``; :func:`base_provenances` resolves a column to the provenances of the measurements
behind it, so a model trained on simulated counts can refuse real ones. ``units`` maps columns to units.

Every table with a ``cell_id`` has the key column ``counter_source`` (:mod:`perfmodel.data.cells`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perfmodel.metrics import EVENTS, per_cycle, per_image, per_second

from . import cells
from .provenance import Provenance, Table
from .schema import SchemaError, metric_unit

CELL_KEYS: tuple[str, ...] = ("run_id", "cell_id", "board", "framework", "network", "threads", "workload", "repeat")
IMAGE_KEYS: tuple[str, ...] = CELL_KEYS + ("image_index",)
SAMPLE_KEYS: tuple[str, ...] = CELL_KEYS + ("t_start_s",)

#: software / OS events: no ``_per_cycle`` ratio is derived for them
SOFTWARE_EVENTS = frozenset({"task_clock_ms", "context_switches", "cpu_migrations", "page_faults",
                             "minor_faults", "major_faults"})

#: rate column -> (misses, accesses)
MISS_RATES: dict[str, tuple[str, str]] = {
    "l1d_miss_rate": ("l1d_refills", "l1d_accesses"),
    "l1i_miss_rate": ("l1i_refills", "l1i_accesses"),
    "l2d_miss_rate": ("l2d_refills", "l2d_accesses"),
    "llc_miss_rate": ("llc_misses", "llc_accesses"),
    "branch_miss_rate": ("branch_misses", "branches"),
}

_LONG_NEEDED = ("metric", "value", "provenance", "unit", "phase")


# --------------------------------------------------------------------------------------------------
# provenance helpers


def provenance(table: Table) -> dict[str, str]:
    """Column -> provenance of a wide table."""
    return dict(table.provenance.sources)


def column_provenance(table: Table, column: str) -> str:
    """The provenance of one column of a wide table (``KeyError`` for key columns / unknown names)."""
    p = table.provenance.get(column)
    if p is None:
        raise KeyError(f"no provenance recorded for column {column!r}")
    return p


def base_provenances(table: Table, column: str) -> set[str]:
    """The provenances of the measured columns behind ``column`` (derived columns resolved)."""
    out: set[str] = set()
    for col, p in table.provenance.leaves(column):
        if p is None:
            raise KeyError(f"no provenance recorded for column {col!r}")
        out.update(p.split("+"))
    return out


# --------------------------------------------------------------------------------------------------
# internals


def _check_long(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"expected a long records DataFrame, got {type(df).__name__}")
    missing = [c for c in _LONG_NEEDED + CELL_KEYS + ("image_index", "t_start_s", "t_end_s") if c not in df]
    if missing:
        raise SchemaError(f"not a long records frame: missing column{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}")


def _div(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype(float)
    return num.astype(float) / den.where(den != 0)


def _column_name(metric: str, phase: str) -> str:
    if metric in EVENTS and phase in ("image", "command"):
        return per_image(metric)
    return metric


def _pivot(df: pd.DataFrame, keys: Sequence[str], phase: str, extra: Sequence[str] = ()) -> tuple[
        pd.DataFrame, dict[str, str], dict[str, str]]:
    """Pivot one phase of the long frame; return (wide with keys as columns, provenance, units)."""
    keys = list(keys)
    sub = df.loc[df["phase"] == phase]
    if sub.empty:
        return pd.DataFrame(columns=keys + list(extra)), {}, {}
    dup = sub.duplicated(keys + ["metric"], keep=False)
    if dup.any():
        first = sub.loc[dup, keys + ["metric"]].head(3).to_dict("records")
        raise SchemaError(f"{int(dup.sum())} {phase} rows repeat a metric for the same record "
                          f"(keys {', '.join(keys)}); e.g. {first}")
    wide = sub.set_index(keys + ["metric"])["value"].unstack("metric")
    wide.columns = [_column_name(str(m), phase) for m in wide.columns]
    wide.columns.name = None
    present = sub.loc[sub["value"].notna()]
    prov: dict[str, str] = {}
    units: dict[str, str] = {}
    for metric, group in sub.groupby("metric", sort=False):
        col = _column_name(str(metric), phase)
        vals = sorted(set(present.loc[present["metric"] == metric, "provenance"]))
        prov[col] = "+".join(vals) if vals else "none"
        unit_vals = [u for u in group["unit"].unique() if u]
        units[col] = unit_vals[0] if unit_vals else (metric_unit(str(metric)) or "")
    if extra:
        ex = sub.groupby(keys, sort=False, dropna=False)[list(extra)].agg(
            {c: ("min" if c == "t_start_s" else "max") for c in extra})
        wide = wide.join(ex)
    wide = wide.reset_index()
    return wide, prov, units


class _Derive:
    """Adds derived columns to a wide frame and records provenance / inputs / units."""

    def __init__(self, df: pd.DataFrame, prov: dict, units: dict, derived: dict):
        self.df, self.prov, self.units, self.derived = df, prov, units, derived

    def has(self, col: str) -> bool:
        return col in self.df.columns

    def add(self, col: str, values: pd.Series, inputs: Sequence[str], unit: str) -> None:
        if self.has(col) and col not in self.derived:
            return  # a measured column wins over a derived one; derived ones are recomputed
        self.df[col] = values.astype(float)
        self.prov[col] = "derived"
        self.derived[col] = list(inputs)
        self.units[col] = unit


def _derive(d: _Derive, count_of, time_s_col: str | None, time_s: pd.Series | None, *,
            throughput_from_images: bool = False) -> None:
    """Derived rates and ratios. ``count_of(event)`` -> column holding the event count."""
    df = d.df
    if time_s is not None:
        if throughput_from_images:
            if d.has("images"):
                d.add("throughput_fps", _div(df["images"], time_s), ["images"] + ([time_s_col] if time_s_col else []),
                      "img/s")
        elif d.has("latency_ms"):
            d.add("throughput_fps", _div(pd.Series(1000.0, index=df.index), df["latency_ms"]), ["latency_ms"],
                  "img/s")
        for event in EVENTS:
            col = count_of(event)
            if d.has(col):
                unit = EVENTS[event][1]
                d.add(per_second(event), _div(df[col], time_s), [col] + ([time_s_col] if time_s_col else []),
                      f"{unit}/s" if unit != "count" else "1/s")
    cycles = count_of("cycles")
    if d.has(cycles):
        instr = count_of("instructions")
        if d.has(instr):
            d.add("ipc", _div(df[instr], df[cycles]), [instr, cycles], "instructions/cycle")
        for event in EVENTS:
            col = count_of(event)
            if event in ("cycles", "instructions") or event in SOFTWARE_EVENTS or not d.has(col):
                continue
            d.add(per_cycle(event), _div(df[col], df[cycles]), [col, cycles], "1/cycle")
    for name, (miss, acc) in MISS_RATES.items():
        mc, ac = count_of(miss), count_of(acc)
        if d.has(mc) and d.has(ac):
            d.add(name, _div(df[mc], df[ac]), [mc, ac], "ratio")


def _finish(df: pd.DataFrame, keys: Sequence[str], prov: dict, units: dict, derived: dict,
            lead: Sequence[str] = ()) -> Table:
    keys = [k for k in keys if k in df.columns]
    lead = [c for c in lead if c in df.columns and c not in keys]
    rest = sorted(c for c in df.columns if c not in keys and c not in lead)
    df = df[keys + lead + rest].sort_values(keys, kind="stable").reset_index(drop=True)
    for k in ("threads", "repeat", "image_index"):
        if k in df.columns and len(df):
            df[k] = df[k].astype("int64")
    if "cell_id" in df.columns:  # a key: the cell's counter source, asked by cells.is_simulated
        df.insert(df.columns.get_loc("cell_id") + 1, cells.COLUMN, cells.counter_sources(df["cell_id"]))
    return Table(df, Provenance(sources={c: prov[c] for c in df.columns if c in prov},
                                derived_from={c: derived[c] for c in df.columns if c in derived},
                                units={c: units[c] for c in df.columns if c in units}))


# --------------------------------------------------------------------------------------------------
# public tables


def wide_per_image(long_df: pd.DataFrame) -> Table:
    """One row per image record with one column per metric and derived rates (module docstring)."""
    _check_long(long_df)
    wide, prov, units = _pivot(long_df, IMAGE_KEYS, "image", extra=("t_start_s", "t_end_s"))
    derived: dict[str, list[str]] = {}
    d = _Derive(wide, prov, units, derived)
    if d.has("latency_ms"):
        _derive(d, per_image, "latency_ms", wide["latency_ms"] / 1000.0)
    else:
        _derive(d, per_image, None, None)
    return _finish(d.df, IMAGE_KEYS, prov, units, derived, lead=("t_start_s", "t_end_s"))


def _cell_from_images(long_df: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict, dict]:
    table = wide_per_image(long_df)
    img = table.frame.drop(columns=cells.COLUMN)
    keys = list(CELL_KEYS)
    prov = dict(table.provenance.sources)
    units = dict(table.provenance.units)
    derived = {k: list(v) for k, v in table.provenance.derived_from.items()}
    if img.empty:
        return pd.DataFrame(columns=keys), {}, {}, {}
    metric_cols = [c for c in img.columns if c not in IMAGE_KEYS and c not in ("t_start_s", "t_end_s")]
    g = img.groupby(keys, sort=True, dropna=False)
    mean = g[metric_cols].mean()
    std = g[metric_cols].std(ddof=1).add_suffix("_std")
    n = g[metric_cols].count().add_suffix("_n")
    cell = pd.concat([g.size().rename("n_images"), mean, std, n], axis=1)
    out_prov, out_units, out_derived = {}, {}, {}
    for c in metric_cols:
        out_prov[c] = prov.get(c, "none")
        out_units[c] = units.get(c, "")
        out_prov[f"{c}_std"] = prov.get(c, "none") if c not in derived else "derived"
        out_units[f"{c}_std"] = units.get(c, "")
        if c in derived:
            out_derived[f"{c}_std"] = [c]
        out_prov[f"{c}_n"] = "derived"
        out_derived[f"{c}_n"] = [c]
        out_units[f"{c}_n"] = "count"
    out_prov["n_images"] = "derived"
    out_derived["n_images"] = []
    out_units["n_images"] = "count"
    # recompute derived means as ratios of means
    cell = cell.copy().reset_index()  # copy() consolidates blocks (no fragmentation warning)
    base_cols = [c for c in metric_cols if c not in derived]
    d = _Derive(cell, out_prov, out_units, out_derived)
    for c in metric_cols:
        if c in derived:
            out_derived[c] = list(derived[c])
    if "latency_ms" in base_cols:
        _derive(d, per_image, "latency_ms", cell["latency_ms"] / 1000.0)
    else:
        _derive(d, per_image, None, None)
    return d.df, out_prov, out_units, out_derived


def wide_per_cell(long_df: pd.DataFrame) -> Table:
    """One row per cell: per-image means / std / n, derived ratios of means, cell-level metrics."""
    _check_long(long_df)
    keys = list(CELL_KEYS)
    cell, prov, units, derived = _cell_from_images(long_df)

    # whole-command records: already per image; fill cells without image records
    cmd, cprov, cunits = _pivot(long_df, keys, "command")
    if not cmd.empty:
        cderived: dict[str, list[str]] = {}
        dc = _Derive(cmd, cprov, cunits, cderived)
        if dc.has("latency_ms"):
            _derive(dc, per_image, "latency_ms", cmd["latency_ms"] / 1000.0)
        else:
            _derive(dc, per_image, None, None)
        if cell.empty:
            cell, prov, units, derived = cmd, cprov, cunits, cderived
        else:
            merged = cell.set_index(keys).combine_first(cmd.set_index(keys)).reset_index()
            for c in cmd.columns:
                if c in keys:
                    continue
                if c not in prov or prov[c] == "none":
                    prov[c] = cprov[c]
                elif cprov[c] not in (prov[c], "none"):
                    both = set(prov[c].split("+")) | set(cprov[c].split("+"))
                    prov[c] = "derived" if "derived" in both else "+".join(sorted(both))
                units.setdefault(c, cunits.get(c, ""))
                if c in cderived:
                    derived.setdefault(c, cderived[c])
            cell = merged

    # cell-level records
    cl, clprov, clunits = _pivot(long_df, keys, "cell")
    if not cl.empty:
        rename = {c: (f"{c}_cell" if c in cell.columns else c) for c in cl.columns if c not in keys}
        cl = cl.rename(columns=rename)
        for old, new in rename.items():
            prov[new] = clprov[old]
            units[new] = clunits.get(old, "")
        if cell.empty:
            cell = cl
        else:
            cell = cell.merge(cl, on=keys, how="outer")
    if cell.empty:
        return _finish(pd.DataFrame(columns=keys), keys, {}, {}, {})
    if "n_images" in cell.columns:
        cell["n_images"] = cell["n_images"].fillna(0).astype("int64")  # a count, not a measurement
    return _finish(cell, keys, prov, units, derived, lead=("n_images",))


def wide_per_sample(long_df: pd.DataFrame) -> Table:
    """One row per trace sample (``phase="trace"``) with interval counts and per-second rates."""
    _check_long(long_df)
    keys = list(SAMPLE_KEYS)
    wide, prov, units = _pivot(long_df, keys, "trace", extra=("t_end_s",))
    derived: dict[str, list[str]] = {}
    if wide.empty:
        return _finish(pd.DataFrame(columns=keys + ["t_end_s"]), keys, {}, {}, {})
    wide["dt_s"] = wide["t_end_s"] - wide["t_start_s"]
    first = wide.groupby(["run_id", "cell_id", "repeat"], sort=False)["t_start_s"].transform("min")
    wide["t_rel_s"] = wide["t_start_s"] - first
    for c in ("dt_s", "t_rel_s"):
        prov[c], derived[c], units[c] = "derived", ["t_start_s", "t_end_s"], "s"
    d = _Derive(wide, prov, units, derived)
    _derive(d, lambda e: e, "dt_s", wide["dt_s"], throughput_from_images=True)
    for c in ("dt_s", "t_rel_s"):  # time bookkeeping, not a measurement
        derived[c] = []
    return _finish(d.df, keys, prov, units, derived, lead=("t_end_s", "dt_s", "t_rel_s"))


def implausible_cells(df: pd.DataFrame) -> dict:
    """row label -> why the row cannot be used, for the rows of a wide table whose value in a column that
    holds numbers (a metric, ``threads``, ``cores``, ``macs``: :func:`perfmodel.metrics.plausible_range`)
    is not a number or is physically impossible (``instructions_per_image=1e300``, ``threads="two"``).
    Missing values (empty, NaN) are not problems here: they are said where a model needs them."""
    from perfmodel.metrics import implausible, plausible_range

    out: dict = {}
    positions = {label: i for i, label in enumerate(df.index)}
    for col in df.columns:
        if plausible_range(str(col)) is None:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        for label in raw.index[num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")]:
            out.setdefault(label, []).append(f"column {col!r}: {raw[label]!r} is not a number")
        vals = num.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            suspect = np.flatnonzero(np.isfinite(vals) | np.isinf(vals))
        for j in suspect:
            why = implausible(str(col), float(vals[j]))
            if why is not None:
                out.setdefault(raw.index[j], []).append(f"column {col!r}: {why}")
    return {label: f"row {label} (line {positions[label] + 2}): " + "; ".join(why) for label, why in
            sorted(out.items(), key=lambda kv: positions[kv[0]])}


def read_wide_csv(path, *, strict: bool = True) -> Table:
    """A wide table from a CSV file, checked: a column named twice in the header is refused (which one is
    meant cannot be told), and so is, with ``strict``, a value that is not a number or is physically
    impossible where a number is due (:func:`implausible_cells`, naming column, row, CSV line and reason).
    Without ``strict`` such rows are kept and listed in the table's ``meta["row_problems"]`` (row label ->
    reason), so that a prediction can give them n/a and its reason and still answer for the other rows. A CSV
    records no provenance: the caller states it (``--provenance``)."""
    import csv
    from collections import Counter
    from pathlib import Path

    from perfmodel.errors import InputFileError

    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"{path} is a folder, not a CSV file")
    if not path.exists():
        raise InputFileError(f"{path} does not exist")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(f"cannot read CSV {path}: {exc}") from None
    twice = [name for name, n in Counter(h.strip() for h in header).items() if n > 1]
    if twice:
        where = ", ".join(f"{name!r} (columns {', '.join(str(i + 1) for i, h in enumerate(header) if h.strip() == name)})"
                          for name in twice)
        raise InputFileError(f"CSV {path}: the header names {where} more than once; which one is meant cannot be "
                             "told: remove or rename the duplicate")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputFileError(f"cannot read CSV {path}: {exc}") from None
    problems = implausible_cells(df)
    if problems and strict:
        shown = list(problems.values())[:5]
        raise InputFileError(f"CSV {path}: {len(problems)} row(s) hold values that are not numbers or are physically "
                             f"impossible: {'; '.join(shown)}{' ...' if len(problems) > 5 else ''}")
    return Table(df, meta={"row_problems": problems} if problems else {})


__all__ = [
    "CELL_KEYS", "IMAGE_KEYS", "SAMPLE_KEYS", "MISS_RATES", "wide_per_image", "wide_per_cell",
    "wide_per_sample", "provenance", "column_provenance", "base_provenances",
    "implausible_cells", "read_wide_csv",
]
