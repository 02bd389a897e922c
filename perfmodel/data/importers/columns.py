"""Columns recognised by meaning, shared by the power-data importers (ARMPM, Powmon, mapped CSV).

A header is matched to a *role* (workload, frequency, voltage, power ...) by what it says, not by one
file's spelling: ``CPU(4) Frequency(MHz)``, ``Frequency A15`` and ``freq_khz`` are all frequencies. Where
several columns fit one role (``Power A7`` / ``Power A15``) the one naming the chosen CPU cluster wins.
Units come from the header (``(kHz)``, ``(mV)``, ``(mW)``, ``(ns)``) and are converted to perfmodel's
(MHz, V, W, degC, ns); a header without a unit is read in perfmodel's unit, except where the magnitude
rules that out (a frequency above 20 000 is kHz or Hz, a temperature above 1000 is milli-degrees), and the
conversion is said in the :class:`ImportReport`.

Event columns: any label :func:`perfmodel.armpmu.canonical_event` knows (a mnemonic, an alias, a raw
``0xNN``); :func:`build_samples` turns the counts into ``<event>_per_s`` and ``<event>_per_cycle``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.armpmu import canonical_event
from perfmodel.errors import InputFileError

from ..provenance import Provenance, Table

#: role -> header pattern (lower-cased header); checked in this order, a column takes the first role it fits
ROLE_PATTERNS: dict[str, str] = {
    "timestamp": r"timestamp|^#?\s*time\b|^t_?(s|ns|ms)$|^time_",
    "workload": r"benchmark|workload|program|application|^app\b|^bench\b",
    "run": r"^#?\s*run\b|^run\s*\(#\)|^repeat|^iteration",
    "core_mask": r"core\s*mask|cpu\s*mask|affinity",
    "cores": r"^#?\s*cores\b|cores\s*\(#\)|core\s*count|n_?cores|active\s*cores|num(ber)?\s*(of\s*)?cores|^threads$",
    "samples": r"samples\s*averaged|^n_?samples",
    "duration": r"duration|period|interval",
    "freq_mhz": r"freq",
    "temperature_c": r"temp",
    "voltage_v": r"volt",
    "current_a": r"current|\bamps?\b",
    "power_w": r"power",
}
SENSOR_ROLES = ("freq_mhz", "temperature_c", "voltage_v", "current_a", "power_w")
UNITS = {"freq_mhz": "MHz", "temperature_c": "degC", "voltage_v": "V", "current_a": "A", "power_w": "W"}
#: tags naming a CPU cluster in a header (big.LITTLE boards)
CLUSTER_TAGS = ("a7", "a15", "a53", "a55", "a57", "a72", "a73", "a76", "big", "little")


@dataclass
class ImportReport:
    """What an importer recognised (role or event -> column), converted, ignored and noted."""

    source: str
    recognised: dict[str, str] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": self.source, "recognised": dict(self.recognised), "events": dict(self.events),
                "ignored": list(self.ignored), "notes": list(self.notes)}

    def lines(self) -> list[str]:
        out = [f"{self.source}: recognised " + ", ".join(f"{k} <- {v!r}" for k, v in self.recognised.items())]
        if self.events:
            out.append(f"  events ({len(self.events)}): " + ", ".join(
                k if k == v else f"{k} <- {v!r}" for k, v in self.events.items()))
        out.append("  ignored: " + (", ".join(repr(c) for c in self.ignored) if self.ignored else "nothing"))
        out += [f"  note: {n}" for n in self.notes]
        return out


def cluster_tags(header: str) -> set[str]:
    low = header.lower()
    return {t for t in CLUSTER_TAGS if re.search(rf"(?<![a-z0-9]){t}(?![0-9])", low)}


def role_of(header: str) -> str | None:
    low = header.strip().lower()
    for role, pat in ROLE_PATTERNS.items():
        if re.search(pat, low):
            return role
    return None


def detect_cluster(headers: list[str], wanted: str | None = None) -> str | None:
    """The cluster to import: ``wanted`` (checked), else the biggest one a power column names, else None."""
    tagged = sorted({t for h in headers if role_of(h) == "power_w" for t in cluster_tags(h)})
    if wanted:
        w = wanted.lower()
        every = {t for h in headers for t in cluster_tags(h)}
        if every and w not in every:
            raise InputFileError(f"cluster {wanted!r} is not in the file (it names {', '.join(sorted(every))})")
        return w
    if not tagged:
        return None
    order = {"big": 100, "little": 0}
    return max(tagged, key=lambda t: order.get(t, int(re.sub(r"\D", "", t) or 0)))


def pick_roles(headers: list[str], cluster: str | None, report: ImportReport,
               mapping: dict[str, str] | None = None) -> dict[str, list[str]]:
    """role -> the columns that fill it (several only for a temperature to average), after ``mapping``."""
    mapping = dict(mapping or {})
    found: dict[str, list[str]] = {}
    for role, col in mapping.items():
        found[role] = [col]
    taken = set(mapping.values())
    cands: dict[str, list[str]] = {}
    for h in headers:
        if h in taken:
            continue
        role = role_of(h)
        if role and role not in found and not re.match(r"^core\s*\d", h.strip().lower()):
            cands.setdefault(role, []).append(h)
    for role, cols in cands.items():
        if len(cols) == 1:
            tags = cluster_tags(cols[0])
            if not tags or cluster is None or cluster in tags:
                found[role] = cols
            continue
        mine = [c for c in cols if cluster and cluster in cluster_tags(c)]
        untagged = [c for c in cols if not cluster_tags(c)]
        if mine:
            avg = [c for c in mine if "av" in c.lower()]
            found[role] = avg[:1] or mine[:1]
        elif role == "temperature_c" and untagged:
            found[role] = untagged
            report.notes.append(f"temperature: the mean of {', '.join(repr(c) for c in untagged)} (no column "
                                f"names the {cluster or 'CPU'} cluster)")
        elif untagged:
            found[role] = untagged[:1]
    return found


def convert_unit(role: str, header: str, values: pd.Series, report: ImportReport) -> pd.Series:
    """``values`` of ``role`` in perfmodel's unit (header unit first, then magnitude; said in ``report``)."""
    low = header.lower().replace(" ", "")
    med = float(np.nanmedian(values.to_numpy(dtype="float64"))) if len(values) else 0.0

    def say(factor: float, why: str) -> pd.Series:
        report.notes.append(f"{role} <- {header!r} x {factor:g} ({why})")
        return values * factor

    if role == "freq_mhz":
        if "ghz" in low:
            return say(1000.0, "GHz")
        if "khz" in low:
            return say(1e-3, "kHz")
        if re.search(r"\(hz\)|_hz$", low):
            return say(1e-6, "Hz")
        if "mhz" not in low:
            if med > 2e7:
                return say(1e-6, "values above 2e7: read as Hz")
            if med > 2e4:
                return say(1e-3, "values above 2e4: read as kHz")
            if 0 < med < 20:
                return say(1000.0, "values below 20: read as GHz")
    if role == "voltage_v" and ("mv" in low or (("(v)" not in low) and med > 100)):
        return say(1e-3, "mV")
    if role == "power_w" and re.search(r"\(mw\)|_mw$|\bmw\b", low):
        return say(1e-3, "mW")
    if role == "current_a" and re.search(r"\(ma\)|_ma$|\bma\b", low):
        return say(1e-3, "mA")
    if role == "temperature_c" and (re.search(r"\(mc\)|milli", low) or med > 1000):
        return say(1e-3, "milli-degrees")
    return values


def timestamp_ns(header: str, values: pd.Series, report: ImportReport) -> pd.Series:
    low = header.lower().replace(" ", "")
    v = values.astype("float64")
    units = [("(ns)", 1.0), ("_ns", 1.0), ("(us)", 1e3), ("_us", 1e3), ("(ms)", 1e6), ("_ms", 1e6), ("(s)", 1e9),
             ("_s", 1e9)]
    for tag, f in units:
        if tag in low:
            return (v * f).round().astype("int64") if f != 1.0 else values.astype("int64")
    med = float(np.nanmedian(np.abs(v))) if len(v) else 0.0
    unit, f = ("ns", 1.0) if med > 1e17 else ("us", 1e3) if med > 1e14 else ("ms", 1e6) if med > 1e11 else ("s", 1e9)
    if unit != "ns":
        report.notes.append(f"timestamps {header!r} have no unit in the header: read as {unit} from their size")
        return (v * f).round().astype("int64")
    return values.astype("int64")


def numeric(raw: pd.DataFrame, column: str, path: Path) -> pd.Series:
    s = raw[column].astype(str).str.strip()
    out = pd.to_numeric(s, errors="coerce").astype("float64")
    bad = out.isna() | ~np.isfinite(out)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputFileError(
            f"{path}: column {column!r} has {int(bad.sum())} non-numeric value(s), first {raw[column].iloc[i]!r} "
            f"on data line {i + 1}")
    return out


def event_columns(headers: list[str], skip: set[str]) -> dict[str, str]:
    """canonical event -> column, for every header that names an ARM event (first column wins)."""
    out: dict[str, str] = {}
    for h in headers:
        if h in skip:
            continue
        name = canonical_event(h)
        if name is not None and name not in out:
            out[name] = h
    return out


def build_samples(
    raw: pd.DataFrame,
    roles: dict[str, list[str]],
    events: dict[str, str],
    *,
    path: Path,
    report: ImportReport,
    board: str,
    cluster: str | None,
    cores: int | None = None,
    drop_first: bool = True,
    sensor_lag: int = 0,
    interval_tolerance: float = 0.1,
    kind: str = "armpm",
) -> Table:
    """The wide per-sample table of a time series of PMU counts and sensor readings (see ``armpm``)."""
    if sensor_lag < 0:
        raise InputFileError(f"sensor_lag must be >= 0, got {sensor_lag}")
    need = {"timestamp": "time stamp", "workload": "workload / benchmark name", "freq_mhz": "frequency",
            "power_w": "power"}
    missing = [f"{what} ({role})" for role, what in need.items() if role not in roles]
    if missing:
        raise InputFileError(f"{path}: {kind} file lacks column(s) for {', '.join(missing)}"
                             f" (columns: {', '.join(map(repr, raw.columns[:20]))})")
    if "cycles" not in events:
        raise InputFileError(f"{path}: {kind} file lacks a cycle-count column (CPU_CYCLES / 0x11): event rates "
                             "per cycle need it")
    if raw.empty:
        raise InputFileError(f"{path}: {kind} file has a header but no samples")
    df = pd.DataFrame(index=raw.index)
    df["board"] = board
    wl = roles["workload"][0]
    df["workload"] = raw[wl].astype(str).str.strip()
    if (df["workload"] == "").any():
        raise InputFileError(f"{path}: empty workload name on {int((df['workload'] == '').sum())} line(s)")
    ts = roles["timestamp"][0]
    df["timestamp_ns"] = timestamp_ns(ts, numeric(raw, ts, path), report)
    df["run"] = numeric(raw, roles["run"][0], path).astype("int64") if "run" in roles else 1
    if "cores" in roles:
        df["cores"] = numeric(raw, roles["cores"][0], path).astype("int64")
    elif "core_mask" in roles:
        df["cores"] = raw[roles["core_mask"][0]].map(mask_count)
        report.notes.append(f"cores: counted from the core mask {roles['core_mask'][0]!r}")
    elif cores is not None:
        df["cores"] = int(cores)
        report.notes.append(f"cores: {cores} for every sample (given, the file has no core-count column)")
    else:
        report.notes.append("no core-count column and no --cores: the core terms (cores x V^2 f) are dropped")
    for role in SENSOR_ROLES:
        if role not in roles:
            if role != "current_a":
                report.notes.append(f"no {role} column" + (": the Powmon terms need it" if role == "voltage_v" else ""))
            continue
        cols = roles[role]
        vals = [convert_unit(role, c, numeric(raw, c, path), report) for c in cols]
        df[role] = vals[0] if len(vals) == 1 else pd.concat(vals, axis=1).mean(axis=1)
    for name, col in events.items():
        v = numeric(raw, col, path)
        if (v < 0).any():
            raise InputFileError(f"{path}: negative {name} counts in {col!r}")
        df[name] = v
    for name in ("freq_mhz", "power_w", "voltage_v", "current_a"):
        if name in df.columns and (df[name] < 0).any():
            raise InputFileError(f"{path}: negative {name} values")

    keys = [c for c in ("workload", "run", "cores", "freq_mhz") if c in df.columns]
    key = df[keys]
    df["segment"] = (key != key.shift()).any(axis=1).cumsum().astype("int64") - 1
    dt_ns = df.groupby("segment")["timestamp_ns"].diff()
    if (dt_ns <= 0).any():
        raise InputFileError(f"{path}: timestamps do not increase within a run")
    df["dt_s"] = dt_ns / 1e9
    first = df["dt_s"].isna()
    median = df.groupby("segment")["dt_s"].transform("median")
    df["interval_ok"] = ~first & ((df["dt_s"] - median).abs() <= interval_tolerance * median)
    lagged = [r for r in ("temperature_c", "voltage_v", "current_a", "power_w") if r in df.columns]
    if sensor_lag:
        grouped = df.groupby("segment")
        for name in lagged:
            df[name] = grouped[name].shift(-sensor_lag)
        df = df[df["power_w"].notna()].copy()
    if drop_first:
        df = df[~first.loc[df.index]].copy()
    return finish(df, events, report, path=path, board=board, cluster=cluster, kind=kind,
                  extra={"sensor_lag": int(sensor_lag), "drop_first": bool(drop_first)},
                  rates_from="interval")


def finish(df: pd.DataFrame, events: dict[str, str], report: ImportReport, *, path: Path, board: str,
           cluster: str | None, kind: str, extra: dict, rates_from: str) -> Table:
    """Add ``<event>_per_s`` (``rates_from="interval"``: count / dt_s; ``"given"``: already there) and
    ``<event>_per_cycle``: the :class:`~perfmodel.data.provenance.Table` with provenance and units (origin
    ``<kind>:<file name>``) and, in ``meta``, ``board``, ``cluster``, ``events``, ``import_report`` and ``extra``."""
    prov: dict[str, str] = {}
    derived: dict[str, list[str]] = {}
    units: dict[str, str] = {}
    for name in SENSOR_ROLES:
        if name in df.columns:
            prov[name], units[name] = "real", UNITS[name]
    for name in events:
        prov[name], units[name] = "real", "count"
    if rates_from == "interval":
        ok = df["interval_ok"]
        for name in events:
            col = f"{name}_per_s"
            df[col] = (df[name] / df["dt_s"]).where(ok)
            prov[col], derived[col], units[col] = "derived", [name, "dt_s"], "1/s"
        prov["dt_s"], derived["dt_s"], units["dt_s"] = "derived", [], "s"
    else:
        for name in events:
            col = f"{name}_per_s"
            prov[col], derived[col], units[col] = "derived", [name, "cycles", "freq_mhz"], "1/s"
    cycles = df["cycles"].where(df["cycles"] > 0)
    for name in events:
        if name == "cycles":
            continue
        col = f"{name}_per_cycle"
        df[col] = df[name] / cycles
        prov[col], derived[col], units[col] = "derived", [name, "cycles"], "1/cycle"
    df = df.reset_index(drop=True)
    return Table(df, Provenance(prov, derived, units, origin=f"{kind}:{path.name}"),
                 {"board": board, "cluster": cluster, "events": list(events), "import_report": report.as_dict(), **extra})


def mask_count(text) -> int:
    """Cores in a core mask: ``0xF0`` / ``f0`` (bit mask), ``4,5`` / ``4-7`` (lists)."""
    return len(mask_cores(text))


def mask_cores(text) -> set[int]:
    s = str(text).strip().lower()
    if not s:
        return set()
    if "," in s or "-" in s:
        out: set[int] = set()
        for part in s.split(","):
            a, _, b = part.strip().partition("-")
            out |= set(range(int(a), int(b or a) + 1))
        return out
    try:
        v = int(s, 16)
    except ValueError:
        raise InputFileError(f"core mask {text!r} is neither a hex bit mask nor a list of cores") from None
    return {i for i in range(64) if v >> i & 1}


__all__ = ["ImportReport", "ROLE_PATTERNS", "build_samples", "finish", "pick_roles", "detect_cluster",
           "event_columns", "mask_cores", "mask_count", "role_of", "cluster_tags"]
