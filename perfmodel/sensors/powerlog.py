"""External power-analyzer logs, aligned to our timeline by a clock offset.

Accepted files (comma, semicolon or tab separated text; a UTF-8 BOM is fine):

* generic CSV: a header with a time column (``time_s``, ``time``, ``t``, ``timestamp``, ``elapsed``; unit
  from a suffix ``_s`` / ``_ms`` / ``_us`` or ``(s)`` / ``[ms]``; seconds by default; ISO-8601 date-times
  are read as epoch seconds) and either a power column (``power_w``, ``power``, ``Power (mW)``, ...) or a
  current column (``current_a``, ``current``, ``curr``, ``(mA)``) together with a voltage column
  (``voltage_v``, ``voltage``, ``volt``, ``(mV)``). E.g. ``time_s,power_w`` or
  ``timestamp,current_a,voltage_v``.
* Otii export: ``Timestamp (s),Main current (A),Main voltage (V)`` (and/or ``Main power (W)``).
* Keysight N6705 / 14585A datalog CSV export: ``key,value`` lines before the header, among them
  ``Sample interval`` (seconds, or with a unit such as ``(ms)`` / ``100 us``), then a header such as
  ``Sample,Curr avg 1,Volt avg 1`` (or ``Power avg 1``); time = sample index x interval.

Columns are taken case-insensitively; for several channels the first of each kind is used. Power from
current x voltage has provenance ``derived``, a power column ``external``. Rows whose time does not parse
are dropped (counted in :attr:`PowerLog.notes`); a cell that does not parse is missing, never a number.
The whole log is checked when it is read (before a campaign measures anything): a negative or infinite
power / current / voltage value, timestamps that go backwards and a log without one usable power value are
refused, the message naming the file line.

Alignment: our time ``t`` (``time.monotonic`` seconds) corresponds to log time ``t + offset_s``.
:meth:`PowerLog.at` interpolates (or averages over a window), :meth:`PowerLog.mean` is the time-weighted
mean over an interval; outside the log: NaN + reason.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from perfmodel.errors import InputFileError
from perfmodel.readings import Reading

from .base import SensorSource

_UNIT_SCALE = {
    "time": {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "": 1.0},
    "power": {"w": 1.0, "mw": 1e-3, "uw": 1e-6, "µw": 1e-6, "": 1.0},
    "current": {"a": 1.0, "ma": 1e-3, "ua": 1e-6, "µa": 1e-6, "": 1.0},
    "voltage": {"v": 1.0, "mv": 1e-3, "": 1.0},
}
_METRIC = {"power": ("power_w", "W"), "current": ("current_a", "A"), "voltage": ("voltage_v", "V")}

FORMATS_HELP = ("time_s,power_w | timestamp,current_a,voltage_v | Otii 'Timestamp (s),Main current (A),"
                "Main voltage (V)' | Keysight N6705 datalog ('Sample interval' line, 'Sample,Curr avg 1,Volt avg 1')")


def _split_unit(name: str) -> tuple[str, str]:
    """``"Main current (mA)"`` -> ("main current", "ma"); ``"power_mw"`` -> ("power", "mw")."""
    s = name.strip().lower()
    m = re.search(r"[\(\[]\s*([a-zµ]+)\s*[\)\]]\s*$", s)
    if m:
        return s[: m.start()].strip(), m.group(1)
    m = re.fullmatch(r"(.*?)[_ ](s|ms|us|ns|w|mw|uw|a|ma|ua|v|mv)", s)
    if m:
        return m.group(1).strip(), m.group(2)
    return s, ""


def classify_column(name: str) -> tuple[str, float] | None:
    """(kind, scale to SI) for a header cell, kind in time | sample | power | current | voltage."""
    base, unit = _split_unit(name)
    if re.fullmatch(r"(time|timestamp|t|elapsed|elapsed time|seconds)", base):
        kind = "time"
    elif re.fullmatch(r"(sample|sample ?(no|number|#|index)|index)", base):
        return "sample", 1.0
    elif "power" in base or base in {"p", "watts"}:
        kind = "power"
    elif "curr" in base or base in {"i", "amps"}:
        kind = "current"
    elif "volt" in base or base in {"v", "u"}:
        kind = "voltage"
    else:
        return None
    scale = _UNIT_SCALE[kind].get(unit)
    if scale is None:
        return None
    return kind, scale


def _parse_float(cell: str) -> float:
    try:
        v = float(cell.strip())
    except (ValueError, AttributeError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _check_value(cell: str, kind: str, path: str, line: int | None) -> None:
    """Refuse a power / current / voltage value that is a number but cannot be a reading: negative or infinite
    (an empty or non-numeric cell stays a missing value). The message names the file line."""
    try:
        v = float(cell.strip())
    except (ValueError, AttributeError):
        return
    where = f"{path}: line {line}" if line is not None else path
    if math.isinf(v):
        raise InputFileError(f"{where}: {kind} value {cell.strip()!r} is not a finite number")
    if v < 0:
        raise InputFileError(f"{where}: {kind} value {cell.strip()!r} is negative (a power log holds readings "
                             ">= 0; a sign convention of the analyzer?)")


def _parse_time(cell: str) -> float:
    v = _parse_float(cell)
    if not math.isnan(v):
        return v
    s = cell.strip()
    if not s or not re.match(r"\d{4}-\d\d-\d\d", s):
        return math.nan
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


def _parse_interval(key: str, value: str) -> float | None:
    """``Sample interval`` metadata -> seconds."""
    _, unit = _split_unit(key)
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-zµ]*)\s*", value.lower())
    if not m:
        return None
    v = _parse_float(m.group(1))
    unit = m.group(2) or unit or "s"
    scale = _UNIT_SCALE["time"].get(unit)
    if math.isnan(v) or v <= 0 or scale is None:
        return None
    return v * scale


@dataclass
class PowerLog:
    """A parsed analyzer log: times (log clock, s) and power / voltage / current arrays (NaN = missing)."""

    path: str
    t: np.ndarray
    columns: dict[str, np.ndarray]  # metric name -> values (SI units)
    provenance: dict[str, str]  # metric name -> provenance
    fmt: str
    notes: list[str] = field(default_factory=list)

    @property
    def span(self) -> tuple[float, float]:
        return float(self.t[0]), float(self.t[-1])

    @property
    def source(self) -> str:
        return f"power log {Path(self.path).name}"

    def _missing(self, reason: str) -> dict[str, Reading]:
        return {m: Reading.missing(m, reason, _unit(m), self.source) for m in self.columns}

    def _reading(self, metric: str, value: float, how: str) -> Reading:
        if not math.isfinite(value):
            return Reading.missing(metric, f"no valid {metric} in the log {how}", _unit(metric), self.source)
        src = self.source + (" V*I" if self.provenance[metric] == "derived" else "")
        return Reading(metric, float(value), _unit(metric), src, self.provenance[metric])

    def _outside(self, a: float, b: float) -> str | None:
        lo, hi = self.span
        if a < lo or b > hi:
            return (f"outside the power log (log time {a:.3f}..{b:.3f} s, log covers {lo:.3f}..{hi:.3f} s; "
                    "check the clock offset)")
        return None

    def at(self, t: float, offset_s: float = 0.0, window_s: float = 0.0) -> dict[str, Reading]:
        """Readings at our time ``t``: interpolated, or the mean over ``window_s`` around it."""
        if window_s > 0:
            return self.mean(t - window_s / 2, t + window_s / 2, offset_s)
        tau = t + offset_s
        reason = self._outside(tau, tau)
        if reason:
            return self._missing(reason)
        return {m: self._reading(m, _interp(self.t, v, tau), f"at {tau:.3f} s") for m, v in self.columns.items()}

    def mean(self, t0: float, t1: float, offset_s: float = 0.0) -> dict[str, Reading]:
        """Time-weighted mean over our interval ``[t0, t1]`` (linear between samples)."""
        if t1 < t0:
            t0, t1 = t1, t0
        a, b = t0 + offset_s, t1 + offset_s
        reason = self._outside(a, b)
        if reason:
            return self._missing(reason)
        return {m: self._reading(m, _interval_mean(self.t, v, a, b), f"over {a:.3f}..{b:.3f} s")
                for m, v in self.columns.items()}


def _unit(metric: str) -> str:
    return {"power_w": "W", "voltage_v": "V", "current_a": "A"}[metric]


def _interp(t: np.ndarray, v: np.ndarray, x: float) -> float:
    ok = ~np.isnan(v)
    if not ok.any():
        return math.nan
    tt, vv = t[ok], v[ok]
    if x < tt[0] or x > tt[-1]:
        return math.nan
    return float(np.interp(x, tt, vv))


def _interval_mean(t: np.ndarray, v: np.ndarray, a: float, b: float) -> float:
    ok = ~np.isnan(v)
    tt, vv = t[ok], v[ok]
    if tt.size == 0 or a < tt[0] or b > tt[-1]:
        return math.nan
    if b - a <= 0:
        return float(np.interp(a, tt, vv))
    inside = (tt > a) & (tt < b)
    xs = np.concatenate(([a], tt[inside], [b]))
    ys = np.concatenate(([np.interp(a, tt, vv)], vv[inside], [np.interp(b, tt, vv)]))
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2 / (b - a))


def parse_power_log_text(text: str, path: str = "<text>") -> PowerLog:
    """Parse the content of a power-analyzer log (see the module doc); :class:`InputFileError` if unusable."""
    text = text.lstrip("\ufeff")
    numbered = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    lines = [ln for _, ln in numbered]
    line_no = [n for n, _ in numbered]  # the file line of each row (one row per line)
    if not lines:
        raise InputFileError(f"{path}: empty power log")
    sample = "\n".join(lines[:50])
    delim = max((",", ";", "\t"), key=sample.count)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    meta: dict[str, str] = {}
    header_at = None
    cols: dict[str, tuple[int, float]] = {}
    for i, row in enumerate(rows[:200]):
        kinds = [classify_column(c) for c in row]
        found: dict[str, tuple[int, float]] = {}
        for j, k in enumerate(kinds):
            if k and k[0] not in found:
                found[k[0]] = (j, k[1])
        has_value = "power" in found or ("current" in found and "voltage" in found)
        if has_value and (sum(1 for k in kinds if k) >= 2 or any("interval" in k for k in meta)):
            header_at, cols = i, found
            break
        if len(row) >= 2 and row[0].strip():
            meta[row[0].strip().lower()] = row[1].strip()
    if header_at is None:
        raise InputFileError(f"{path}: no power log header found; accepted formats: {FORMATS_HELP}")
    interval = None
    for k, v in meta.items():
        if k.startswith("sample interval") or k.startswith("sample period") or k == "interval":
            interval = _parse_interval(k, v)
            if interval is None:
                raise InputFileError(f"{path}: cannot read the sample interval {v!r}")
    if "time" in cols:
        fmt = "timestamped CSV"
    elif interval is not None:
        fmt = f"datalog with sample interval {interval:g} s"
    else:
        raise InputFileError(f"{path}: the log has neither a time column nor a 'Sample interval' line; "
                             f"accepted formats: {FORMATS_HELP}")
    ts: list[float] = []
    rows_at: list[int | None] = []
    data: dict[str, list[float]] = {k: [] for k in ("power", "current", "voltage") if k in cols}
    dropped = 0
    for n, row in enumerate(rows[header_at + 1:]):
        if "time" in cols:
            j, scale = cols["time"]
            t = _parse_time(row[j]) * scale if j < len(row) else math.nan
        elif "sample" in cols:
            j, _ = cols["sample"]
            idx = _parse_float(row[j]) if j < len(row) else math.nan
            t = idx * interval if not math.isnan(idx) else math.nan
        else:
            t = n * interval
        if math.isnan(t):
            dropped += 1
            continue
        at = line_no[header_at + 1 + n] if header_at + 1 + n < len(line_no) else None
        ts.append(t)
        rows_at.append(at)
        for k in data:
            j, scale = cols[k]
            cell = row[j] if j < len(row) else ""
            _check_value(cell, k, path, at)
            data[k].append(_parse_float(cell) * scale if j < len(row) else math.nan)
    if not ts:
        raise InputFileError(f"{path}: the power log has a header but no data rows")
    t_arr = np.asarray(ts, dtype=float)
    back = np.nonzero(np.diff(t_arr) < 0)[0]
    if back.size:
        i = int(back[0]) + 1
        raise InputFileError(f"{path}: line {rows_at[i]}: time {t_arr[i]:g} s goes backwards (the line before says "
                             f"{t_arr[i - 1]:g} s); a log's timestamps must not decrease (appended twice?)")
    columns: dict[str, np.ndarray] = {}
    prov: dict[str, str] = {}
    for k, vals in data.items():
        metric = _METRIC[k][0]
        columns[metric] = np.asarray(vals, dtype=float)
        prov[metric] = "external"
    if "power_w" not in columns:
        columns["power_w"] = columns["current_a"] * columns["voltage_v"]
        prov["power_w"] = "derived"
    if np.isnan(columns["power_w"]).all():
        raise InputFileError(f"{path}: no usable power value in the log (every {'power' if prov['power_w'] == 'external' else 'current x voltage'} "
                             "value is empty or unreadable)")
    notes = [f"{dropped} row(s) without a readable time dropped"] if dropped else []
    for m, v in columns.items():
        bad = int(np.isnan(v).sum())
        if bad:
            notes.append(f"{bad} unreadable {m} value(s) left missing")
    return PowerLog(path=path, t=t_arr, columns=columns, provenance=prov, fmt=fmt, notes=notes)


def load_power_log(path: str | Path) -> PowerLog:
    """Read and parse a power-analyzer log file (:class:`InputFileError` when missing or unusable)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read power log {p}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_power_log_text(text, str(p))


class PowerLogSource(SensorSource):
    """Readings from an analyzer log at the sampler's current time (interpolated)."""

    kind = "power"

    def __init__(self, log: PowerLog, offset_s: float = 0.0, clock=None):
        import time

        self.log = log
        self.offset_s = float(offset_s)
        self.clock = clock or time.monotonic
        self.name = log.source
        self.location = log.path
        self.metrics = tuple((m, _unit(m)) for m in log.columns)

    def read(self) -> list[Reading]:
        return list(self.log.at(self.clock(), self.offset_s).values())

    def describe(self) -> str:
        lo, hi = self.log.span
        note = f"{self.log.fmt}, {len(self.log.t)} samples, log time {lo:.3f}..{hi:.3f} s, offset {self.offset_s:+.3f} s"
        return note + ("; " + "; ".join(self.log.notes) if self.log.notes else "")
