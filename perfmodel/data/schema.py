"""The tidy (long) record schema every perfmodel data set uses, validated with pandera.

One row per (record, metric)
----------------------------
A *record* is one measured thing: one image of a cell (``phase="image"``), one sampler interval of a
long run (``"trace"``), a whole cell (``"cell"``: CPU %, mean temperature, a counter total over the
cell) or a whole user command measured with the two-phase ``(s1 - s2) / N`` method (``"command"``:
the values are already *per image*). Each metric of a record is one row:

=============  ========  ==========================================================================
column         dtype     meaning
=============  ========  ==========================================================================
run_id         str       one invocation of the collector (non-empty)
cell_id        str       campaign cell (framework x network x threads x repeat x counter source)
board          str       board / machine name (non-empty)
framework      str       ``tensorflow``, ``litert``, ... ; empty for external non-CNN workloads
network        str       zoo network name; empty for external non-CNN workloads
threads        int64     >= 1
workload       str       ``"<framework>/<network>"`` or an external benchmark (``parsec.dedup``)
phase          str       ``image`` | ``trace`` | ``cell`` | ``command``
repeat         int64     >= 0
image_index    int64     >= 0 for ``phase="image"``, -1 otherwise
t_start_s      float64   start on the run's clock (s); NaN allowed except for ``trace``
t_end_s        float64   end on the run's clock (s); NaN allowed except for ``trace``; >= t_start_s
metric         str       a name of :data:`known_metrics` or ``x_<anything>`` for user extras
value          float64   finite, or NaN **if and only if** ``reason`` is non-empty
unit           str       unit of ``value`` (``count``, ``ms``, ``W``, ...)
source         str       what gave the value (``perf_event_open``, ``callgrind``, ``psutil``, ...)
provenance     str       one of :data:`perfmodel.readings.PROVENANCES`; ``none`` only with NaN
reason         str       why ``value`` is missing; empty when present
scale          float64   multiplex scaling ``time_enabled / time_running`` (>= 1, 1.0 if none);
                         NaN allowed only where ``value`` is NaN
=============  ========  ==========================================================================

More rules: timing, power, energy, frequency and CPU % values are >= 0, every value of a known metric is
physically possible (:data:`perfmodel.metrics.PLAUSIBLE`: no 1e308 ms latency, no count beyond a 64-bit
counter); the key
``(run_id, cell_id, phase, repeat, image_index, t_start_s, metric)`` is unique.

Vocabulary
----------
:func:`known_metrics` is :data:`perfmodel.metrics.EVENTS`, ``SENSORS`` and ``TIMING`` plus
:data:`EXTRA_METRICS` (OS figures the software counters give and trace bookkeeping). Any other figure a
user wants to keep must be prefixed ``x_`` (``x_gpu_busy``); it is stored and carried into the wide
tables as is, but never derived from.

Validation
----------
:func:`validate` runs in two steps, both pandera schemas: structure (columns, dtypes) and then values
(the checks above). Failures raise :class:`SchemaError` (a :class:`~perfmodel.errors.PerfmodelError`)
whose message names the column or rule, the number of rows, the first few row labels and offending
values - never pandera's full report. :func:`coerce` applies the only conversions done silently, all
lossless: whole, finite numbers to int64 in integer columns (never truncating 1.5), numbers (any int or
float dtype, nullable extension dtypes, numeric object columns) to float64 in float columns, a missing
``reason`` to ``""`` and object columns of strings to the pandas string dtype. Row labels in messages
are the caller's index, or positions when that index is not unique.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from perfmodel.metrics import EVENTS, SENSORS, TIMING
from perfmodel.readings import PROVENANCES

SCHEMA_VERSION = 1

PHASES: tuple[str, ...] = ("image", "trace", "cell", "command")

#: column name -> dtype name, in storage order
COLUMNS: dict[str, str] = {
    "run_id": "str",
    "cell_id": "str",
    "board": "str",
    "framework": "str",
    "network": "str",
    "threads": "int64",
    "workload": "str",
    "phase": "str",
    "repeat": "int64",
    "image_index": "int64",
    "t_start_s": "float64",
    "t_end_s": "float64",
    "metric": "str",
    "value": "float64",
    "unit": "str",
    "source": "str",
    "provenance": "str",
    "reason": "str",
    "scale": "float64",
}
STR_COLUMNS = tuple(c for c, d in COLUMNS.items() if d == "str")
INT_COLUMNS = tuple(c for c, d in COLUMNS.items() if d == "int64")
FLOAT_COLUMNS = tuple(c for c, d in COLUMNS.items() if d == "float64")

#: the columns that identify a row (one value per metric per record)
KEY_COLUMNS: tuple[str, ...] = ("run_id", "cell_id", "phase", "repeat", "image_index", "t_start_s", "metric")

#: the columns that identify a record (everything but the metric and its value)
RECORD_COLUMNS: tuple[str, ...] = (
    "run_id", "cell_id", "board", "framework", "network", "threads", "workload", "phase", "repeat",
    "image_index", "t_start_s", "t_end_s",
)

#: Names perfmodel's own sources produce beyond :mod:`perfmodel.metrics` (name -> (description, unit)).
EXTRA_METRICS: dict[str, tuple[str, str]] = {
    "user_time_ms": ("user CPU time of the process", "ms"),
    "system_time_ms": ("system CPU time of the process", "ms"),
    "voluntary_context_switches": ("voluntary context switches", "count"),
    "involuntary_context_switches": ("involuntary context switches", "count"),
    "max_rss_mb": ("peak resident set size", "MiB"),
    "system_cpu_percent": ("busy time of all CPUs over wall time (up to 100 x ncpu)", "%"),
    "alignment_faults": ("alignment faults", "count"),
    "emulation_faults": ("emulation faults", "count"),
    "images": ("images completed in a trace interval", "count"),
    "wall_ms": ("wall time of the record", "ms"),
}

#: prefix for user-defined metrics outside the vocabulary
USER_PREFIX = "x_"

#: metrics whose values can never be negative
NONNEGATIVE_METRICS: frozenset[str] = frozenset(
    set(TIMING) | {"power_w", "energy_j", "freq_mhz", "cpu_percent", "system_cpu_percent", "wall_ms", "images"}
)


def known_metrics() -> frozenset[str]:
    """The metric vocabulary: perfmodel.metrics EVENTS, SENSORS, TIMING and :data:`EXTRA_METRICS`."""
    return frozenset(EVENTS) | frozenset(SENSORS) | frozenset(TIMING) | frozenset(EXTRA_METRICS)


def metric_unit(metric: str) -> str | None:
    """The canonical unit of ``metric``, or None for ``x_`` extras and unknown names."""
    for table in (EVENTS, SENSORS, TIMING, EXTRA_METRICS):
        if metric in table:
            return table[metric][1]
    return None


class SchemaError(PerfmodelError):
    """Records that do not fit the perfmodel record schema.

    ``problems`` lists one dict per failed rule: ``rule``, ``column`` (or None), ``rows`` (number of
    offending rows), ``index`` (first few row labels), ``values`` (first few offending values).
    """

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


# --------------------------------------------------------------------------------------------------
# pandera schemas (built lazily: importing pandera costs ~0.5 s)

_SCHEMAS: dict[str, Any] = {}

_SHOW = 5  # offending rows / values shown per problem


def _pa():
    try:
        import pandera.pandas as pa  # pandera >= 0.24
    except ImportError:  # pragma: no cover - older pandera
        import pandera as pa
    return pa


def _structure_schema():
    if "structure" not in _SCHEMAS:
        pa = _pa()
        cols = {}
        for name, dtype in COLUMNS.items():
            nullable = dtype == "float64"
            cols[name] = pa.Column(str if dtype == "str" else dtype, nullable=nullable, required=True)
        _SCHEMAS["structure"] = pa.DataFrameSchema(cols, strict=True, ordered=False, name="perfmodel records")
    return _SCHEMAS["structure"]


def _metric_ok(s: pd.Series) -> pd.Series:
    known = s.isin(known_metrics())
    user = s.str.startswith(USER_PREFIX) & (s.str.len() > len(USER_PREFIX))
    return known | user


def _plausible_ok(d: pd.DataFrame) -> pd.Series:
    """Values inside the physically possible range of their metric (:func:`perfmodel.metrics.plausible_range`)."""
    from perfmodel.metrics import plausible_range

    ranges = {m: plausible_range(str(m)) for m in pd.unique(d["metric"])}
    lo = d["metric"].map(lambda m: ranges[m][1] if ranges[m] else -np.inf).astype("float64")
    hi = d["metric"].map(lambda m: ranges[m][2] if ranges[m] else np.inf).astype("float64")
    v = d["value"]
    return v.isna() | ((v >= lo) & (v <= hi))


# rule name -> (columns to show for offending rows, function df -> bool Series (True = ok))
_ROW_RULES: dict[str, tuple[tuple[str, ...], Any]] = {
    "a missing value (NaN) needs a non-empty reason": (
        ("metric", "value", "reason"), lambda d: d["value"].notna() | (d["reason"] != "")),
    "a present value must have an empty reason": (
        ("metric", "value", "reason"), lambda d: d["value"].isna() | (d["reason"] == "")),
    "value must be finite or NaN": (
        ("metric", "value"), lambda d: d["value"].abs() != np.inf),
    "provenance 'none' only with a missing value": (
        ("metric", "value", "provenance"), lambda d: (d["provenance"] != "none") | d["value"].isna()),
    "timing / power / frequency / CPU % values must be >= 0": (
        ("metric", "value"),
        lambda d: ~d["metric"].isin(NONNEGATIVE_METRICS) | d["value"].isna() | (d["value"] >= 0)),
    "value must be physically possible for its metric (perfmodel.metrics.PLAUSIBLE: e.g. 0 .. 1e9 ms)": (
        ("metric", "value", "unit"), _plausible_ok),
    "scale must be >= 1 (NaN only with a missing value)": (
        ("metric", "value", "scale"),
        lambda d: (d["scale"] >= 1) | (d["scale"].isna() & d["value"].isna())),
    "t_end_s must be >= t_start_s": (
        ("t_start_s", "t_end_s"), lambda d: d["t_start_s"].isna() | d["t_end_s"].isna()
        | (d["t_end_s"] >= d["t_start_s"])),
    "image_index must be >= 0 for phase 'image' and -1 otherwise": (
        ("phase", "image_index"),
        lambda d: ((d["phase"] == "image") & (d["image_index"] >= 0))
        | ((d["phase"] != "image") & (d["image_index"] == -1))),
    "trace records need t_start_s and t_end_s": (
        ("phase", "t_start_s", "t_end_s"),
        lambda d: (d["phase"] != "trace") | (d["t_start_s"].notna() & d["t_end_s"].notna())),
}


def _values_schema():
    if "values" not in _SCHEMAS:
        pa = _pa()
        nonempty = pa.Check.str_length(min_value=1, error="must be a non-empty string")
        cols = {
            "run_id": pa.Column(str, nonempty),
            "cell_id": pa.Column(str, nonempty),
            "board": pa.Column(str, nonempty),
            "framework": pa.Column(str),
            "network": pa.Column(str),
            "threads": pa.Column("int64", pa.Check.ge(1, error="threads must be >= 1")),
            "workload": pa.Column(str, nonempty),
            "phase": pa.Column(str, pa.Check.isin(PHASES, error=f"phase must be one of {', '.join(PHASES)}")),
            "repeat": pa.Column("int64", pa.Check.ge(0, error="repeat must be >= 0")),
            "image_index": pa.Column("int64", pa.Check.ge(-1, error="image_index must be >= -1")),
            "t_start_s": pa.Column("float64", nullable=True),
            "t_end_s": pa.Column("float64", nullable=True),
            "metric": pa.Column(str, pa.Check(
                _metric_ok, error=f"metric must be a perfmodel.metrics name or start with {USER_PREFIX!r}")),
            "value": pa.Column("float64", nullable=True),
            "unit": pa.Column(str),
            "source": pa.Column(str),
            "provenance": pa.Column(str, pa.Check.isin(
                PROVENANCES, error=f"provenance must be one of {', '.join(PROVENANCES)}")),
            "reason": pa.Column(str),
            "scale": pa.Column("float64", nullable=True),
        }
        checks = [pa.Check(fn, name=rule, error=rule) for rule, (_, fn) in _ROW_RULES.items()]
        _SCHEMAS["values"] = pa.DataFrameSchema(
            cols, checks=checks, unique=list(KEY_COLUMNS), strict=True, name="perfmodel records")
    return _SCHEMAS["values"]


# --------------------------------------------------------------------------------------------------


def empty_records() -> pd.DataFrame:
    """A valid, empty record frame with the schema's columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in COLUMNS.items()})


def _holds_numbers(s: pd.Series, target: str, *, skipna: bool, inferred: tuple[str, ...]) -> bool:
    """Whether ``s`` is a candidate for conversion to ``target``: not already of that dtype, not bool, and of
    an integer or float dtype, or an object column whose values pandas infers (``skipna``) as one of
    ``inferred``."""
    if s.dtype == np.dtype(target) or pd.api.types.is_bool_dtype(s.dtype):
        return False
    if isinstance(s.dtype, np.dtype) and s.dtype.kind == "O":
        return pd.api.types.infer_dtype(s, skipna=skipna) in inferred
    return pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype)


def _as_int64(s: pd.Series) -> pd.Series | None:
    """``s`` as int64 when that loses nothing (integral, finite, in range), else None."""
    if not _holds_numbers(s, "int64", skipna=False, inferred=("integer", "floating", "mixed-integer-float")):
        return None
    try:
        vals = s.to_numpy(dtype=float)
    except (TypeError, ValueError, OverflowError):
        return None
    if len(vals) and not (np.all(np.isfinite(vals)) and np.all(vals == np.round(vals))
                          and np.all(np.abs(vals) < 2**53)):
        return None
    return pd.Series(vals.astype("int64"), index=s.index, name=s.name)


def _as_float64(s: pd.Series) -> pd.Series | None:
    """``s`` as float64 when it holds numbers (ints, floats, NaN/None in an object column), else None."""
    if not _holds_numbers(s, "float64", skipna=True,
                          inferred=("integer", "floating", "mixed-integer-float", "empty")):
        return None
    try:
        vals = s.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError, OverflowError):
        return None
    if pd.api.types.is_integer_dtype(s.dtype) and len(vals) and np.any(np.abs(vals) >= 2**53):
        return None  # would lose precision
    return pd.Series(vals, index=s.index, name=s.name)


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with safe, lossless dtype conversions applied (see the module docstring).

    Anything that cannot be converted without loss is left as is, for :func:`validate` to report.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"records must be a pandas DataFrame, got {type(df).__name__}")
    out = df.copy()
    for col in INT_COLUMNS:
        if col in out:
            converted = _as_int64(out[col])
            if converted is not None:
                out[col] = converted
    for col in FLOAT_COLUMNS:
        if col in out:
            converted = _as_float64(out[col])
            if converted is not None:
                out[col] = converted
    if "reason" in out and (out["reason"].dtype == object or pd.api.types.is_string_dtype(out["reason"].dtype)):
        out["reason"] = out["reason"].where(out["reason"].notna(), "")
    for col in STR_COLUMNS:
        if col in out:
            s = out[col]
            if s.dtype == object and len(s) and pd.api.types.infer_dtype(s, skipna=False) == "string":
                out[col] = s.astype("str")
            elif s.dtype == object and not len(s):
                out[col] = s.astype("str")
    ordered = [c for c in COLUMNS if c in out] + [c for c in out.columns if c not in COLUMNS]
    return out[ordered]


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so messages read ``0`` and ``nan``, not ``np.int64(0)``."""
    return v.item() if isinstance(v, np.generic) else v


def _fmt(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) if isinstance(v, str) and not isinstance(v, _Row) else str(v)
                     for v in map(_plain, values))


class _Row(str):
    """A formatted row shown as is (no quotes) in messages."""


def _summarise(exc: Exception, df: pd.DataFrame, what: str) -> SchemaError:
    """Turn pandera's SchemaErrors into a short :class:`SchemaError`."""
    fc = getattr(exc, "failure_cases", None)
    if fc is None or not isinstance(fc, pd.DataFrame) or fc.empty:
        return SchemaError(f"{what} do not fit the perfmodel record schema: {str(exc).splitlines()[0][:300]}")
    problems: list[dict] = []
    fc = fc.copy()
    fc["check"] = fc["check"].astype(str)
    for check, group in fc.groupby("check", sort=False):
        if check == "column_in_schema":
            problems.append({"rule": "unknown column", "column": None, "rows": 0, "index": [],
                             "values": sorted(map(str, group["failure_case"]))})
            continue
        if check == "column_in_dataframe":
            problems.append({"rule": "missing column", "column": None, "rows": 0, "index": [],
                             "values": sorted(map(str, group["failure_case"]))})
            continue
        if check in _ROW_RULES or check == "multiple_fields_uniqueness":
            idx = pd.unique(group["index"].dropna())
            show_cols = _ROW_RULES[check][0] if check in _ROW_RULES else KEY_COLUMNS
            if check == "multiple_fields_uniqueness":
                check = f"duplicate rows for key ({', '.join(KEY_COLUMNS)})"
            shown = []
            for i in idx[: (2 if check.startswith("duplicate") else _SHOW)]:
                try:
                    row = df.loc[i, list(show_cols)]
                    shown.append(_Row("{" + ", ".join(f"{c}={_plain(row[c])!r}" for c in show_cols) + "}"))
                except (KeyError, TypeError, ValueError):
                    shown.append(str(i))
            if len(idx) == 0:  # a check that crashed on a wrong dtype
                shown = [str(v)[:120] for v in group["failure_case"][:_SHOW]]
            problems.append({"rule": check, "column": None, "rows": int(len(idx)),
                             "index": [x.item() if hasattr(x, "item") else x for x in idx[:_SHOW]],
                             "values": shown})
            continue
        for column, cgroup in group.groupby("column", sort=False, dropna=False):
            idx = list(cgroup["index"].dropna())
            vals, seen = [], set()
            for v in cgroup["failure_case"]:
                key = repr(v)
                if key not in seen:
                    seen.add(key)
                    vals.append(v)
                if len(vals) >= _SHOW:
                    break
            rule = check
            if check.startswith("dtype("):
                want = COLUMNS.get(str(column), "?")
                got = df[column].dtype if column in df else "?"
                rule = f"dtype must be {want} (got {got})"
            elif check == "not_nullable":
                rule = "must not be missing (NaN/None)"
            elif check == "field_uniqueness":
                rule = "must be unique"
            problems.append({"rule": rule, "column": None if pd.isna(column) else str(column),
                             "rows": len(idx), "index": idx[:_SHOW], "values": vals})
    lines = []
    for p in problems:
        where = f"column {p['column']!r}: " if p["column"] else ""
        if p["rule"] in ("missing column", "unknown column"):
            lines.append(f"{p['rule']}{'s' if len(p['values']) > 1 else ''}: {', '.join(p['values'])}")
            continue
        if p["rule"].startswith("dtype must be") and not p["index"]:
            lines.append(f"{where}{p['rule']}")
            continue
        rows = f"{p['rows']} row{'s' if p['rows'] != 1 else ''}" + (f" (e.g. rows {_fmt(p['index'])})"
                                                                    if p["index"] else "")
        lines.append(f"{where}{p['rule']}: {rows}; offending: {_fmt(p['values'])}")
    message = f"{what} do not fit the perfmodel record schema:\n  - " + "\n  - ".join(lines)
    return SchemaError(message, problems)


def validate(df: pd.DataFrame, *, what: str = "records") -> pd.DataFrame:
    """Validate a long record frame and return it coerced to the schema's dtypes and column order.

    Raises :class:`SchemaError` with a short message naming every failed rule. ``what`` names the
    frame in the message (``"records of cell 'x'"``, ``"file data.parquet"``).
    """
    pa = _pa()
    out = coerce(df)
    # the index labels in messages must identify rows: keep the caller's index unless it is not unique
    if not out.index.is_unique:
        out = out.reset_index(drop=True)
    for schema in (_structure_schema(), _values_schema()):
        try:
            schema.validate(out, lazy=True)
        except pa.errors.SchemaErrors as exc:
            raise _summarise(exc, out, what) from None
        except pa.errors.SchemaError as exc:  # pragma: no cover - lazy=True gives SchemaErrors
            raise SchemaError(f"{what} do not fit the perfmodel record schema: {exc}") from None
    for col in STR_COLUMNS:
        if out[col].dtype != "str":
            out[col] = out[col].astype("str")
    return out


def records_from_readings(
    readings: Mapping[str, Any] | Iterable[Any],
    **keys: Any,
) -> pd.DataFrame:
    """Long rows for one record from :class:`perfmodel.readings.Reading` objects.

    ``keys`` gives the record columns (``run_id``, ``cell_id``, ``board``, ``framework``, ``network``,
    ``threads``, ``workload``, ``phase``, ``repeat``; optional ``image_index`` (default -1),
    ``t_start_s`` / ``t_end_s`` (default NaN), and ``scales``: a dict metric -> multiplex scale). The
    result is not validated; pass it (or a concatenation) to :func:`validate` or a data set writer.
    """
    items = list(readings.values()) if isinstance(readings, Mapping) else list(readings)
    scales = dict(keys.pop("scales", None) or {})
    base = {"image_index": -1, "t_start_s": math.nan, "t_end_s": math.nan}
    base.update(keys)
    missing = [c for c in RECORD_COLUMNS if c not in base]
    if missing:
        raise PerfmodelError(f"records_from_readings: missing record keys {', '.join(missing)}")
    rows = []
    for r in items:
        value = float(r.value)
        rows.append({
            **{c: base[c] for c in RECORD_COLUMNS},
            "metric": r.name,
            "value": value,
            "unit": r.unit or "",
            "source": r.source or "",
            "provenance": r.provenance,
            "reason": (r.reason or "") if math.isnan(value) else "",
            "scale": float(scales.get(r.name, 1.0)),
        })
    if not rows:
        return empty_records()
    return coerce(pd.DataFrame(rows, columns=list(COLUMNS)))
