"""Importer for the Powmon data format (per-workload big.LITTLE A7 / A15 power and PMU data).

One row per workload x core mask x frequency, each an average over ``Samples Averaged`` samples, with
columns such as ``Workload Name``, ``Core Mask``, ``Frequency A7``, ``Frequency A15``, ``Voltage A15``,
``Power A15``, ``Temperature C4`` .. ``C7``, ``Average Temperature A15`` and, per core, ``Core N
CycleCount`` and ``Core N Event 0xNN`` (raw ARMv7 / ARMv8 event numbers). Delimiter: comma, tab or
semicolon (sniffed).

:func:`load_powmon` returns the wide table of one CPU cluster (``cluster``, default the biggest one a
power column names), one row per file row:

* sensors of that cluster (recognised by meaning, :mod:`.columns`): ``freq_mhz``, ``voltage_v``,
  ``power_w``, ``temperature_c`` (the cluster's average column, else the mean of the untagged ones);
* ``cores``: the cluster's cores in the core mask (cores with a non-zero cycle count where there is no
  mask); the cluster's cores are ``cluster_cores`` (default for the ODROID-XU3 layout: A7 = 0-3,
  A15 = 4-7; all cores of the file when the layout does not fit it);
* every event, named by :func:`perfmodel.armpmu.event_name` (``0x08`` -> ``instructions``; an unknown number
  stays ``event_0xNN``): the count *summed* over the cluster's active cores (events of every core add up
  to the cluster's dynamic power), ``<event>_per_cycle`` = that sum / the summed cycles (the cluster's
  *average* per-core activity), and ``<event>_per_s``: the sum over active cores of events per cycle x
  the cluster frequency (Powmon's rate: the file records no interval), or count / interval where the
  file has a duration column.

Rows are averages of many samples, so there is no sensor lag to choose (``sensor_lag`` other than 0 is
refused). Provenance as :mod:`.armpm`: counts and sensors ``real``, rates / ratios ``derived``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.armpmu import event_name
from perfmodel.errors import InputFileError

from ..provenance import Table
from .columns import ImportReport, convert_unit, detect_cluster, finish, mask_cores, numeric, pick_roles

#: cluster -> core numbers on the ODROID-XU3 / XU4 (Exynos 5422): cpu0-3 Cortex-A7, cpu4-7 Cortex-A15
XU3_LAYOUT: dict[str, tuple[int, ...]] = {"a7": (0, 1, 2, 3), "a15": (4, 5, 6, 7), "little": (0, 1, 2, 3),
                                          "big": (4, 5, 6, 7)}
_CORE_COL = re.compile(r"^core\s*(\d+)\s*[_ ]?\s*(cyclecount|cycle count|cycles|event\s*(?:0x)?([0-9a-f]+))$",
                       re.IGNORECASE)


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputFileError(f"Powmon file not found: {path}")
    try:
        raw = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise InputFileError(f"{path}: cannot read Powmon file: {exc}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise InputFileError(f"{path}: Powmon file has a header but no rows")
    return raw


def load_powmon(
    path: str | os.PathLike,
    *,
    cluster: str | None = None,
    cluster_cores: tuple[int, ...] | None = None,
    board: str | None = None,
    sensor_lag: int = 0,
) -> Table:
    """Load a Powmon data file as a wide per-row table of one cluster (see the module docstring)."""
    path = Path(path)
    if sensor_lag:
        raise InputFileError("Powmon rows are averages over many samples per workload x core mask x frequency: "
                             "there is no sensor lag to apply (leave --sensor-lag at 0)")
    raw = _read(path)
    headers = list(raw.columns)
    report = ImportReport(source=f"powmon:{path.name}")
    per_core: dict[int, dict[str, str]] = {}
    for h in headers:
        m = _CORE_COL.match(h)
        if not m:
            continue
        core = int(m.group(1))
        name = "cycles" if m.group(3) is None else event_name(int(m.group(3), 16))
        per_core.setdefault(core, {}).setdefault(name, h)
    if not per_core:
        raise InputFileError(f"{path}: no per-core columns ('Core N CycleCount', 'Core N Event 0xNN'): "
                             "not a Powmon file")
    clus = detect_cluster(headers, cluster)
    roles = pick_roles([h for h in headers if not _CORE_COL.match(h)], clus, report)
    for role, what in (("workload", "workload name"), ("freq_mhz", "frequency"), ("power_w", "power")):
        if role not in roles:
            raise InputFileError(f"{path}: Powmon file lacks a {what} column for cluster {clus or '?'} "
                                 f"(columns: {', '.join(map(repr, headers[:20]))})")
    present = sorted(per_core)
    if cluster_cores is not None:
        mine = [c for c in cluster_cores if c in per_core]
        if not mine:
            raise InputFileError(f"{path}: none of cores {list(cluster_cores)} has columns (cores {present})")
    elif clus in XU3_LAYOUT and set(XU3_LAYOUT[clus]) & set(present):
        mine = [c for c in XU3_LAYOUT[clus] if c in per_core]
        report.notes.append(f"cluster {clus}: cores {mine} (ODROID-XU3 layout)")
    else:
        mine = present
        report.notes.append(f"cluster cores: every core with columns, {mine} (no layout known for {clus!r})")
    no_cycles = [c for c in mine if "cycles" not in per_core[c]]
    if no_cycles:
        raise InputFileError(f"{path}: core(s) {no_cycles} have events but no CycleCount column")
    events = sorted({e for c in mine for e in per_core[c]}, key=lambda e: (e != "cycles", e))
    lacking = {e: [c for c in mine if e not in per_core[c]] for e in events}
    lacking = {e: v for e, v in lacking.items() if v}
    if lacking:
        for e, cores in lacking.items():
            report.notes.append(f"event {e} is not recorded on core(s) {cores}: dropped (a cluster sum needs "
                                "every core)")
        events = [e for e in events if e not in lacking]

    df = pd.DataFrame(index=raw.index)
    df["board"] = board or (f"odroid-xu3-{clus}" if clus in XU3_LAYOUT else (clus or "powmon"))
    df["workload"] = raw[roles["workload"][0]].astype(str).str.strip()
    for role in ("freq_mhz", "voltage_v", "temperature_c", "current_a", "power_w"):
        if role not in roles:
            if role != "current_a":
                report.notes.append(f"no {role} column for cluster {clus}")
            continue
        vals = [convert_unit(role, c, numeric(raw, c, Path(path)), report) for c in roles[role]]
        df[role] = vals[0] if len(vals) == 1 else pd.concat(vals, axis=1).mean(axis=1)
    cyc = {c: numeric(raw, per_core[c]["cycles"], path) for c in mine}
    if "core_mask" in roles:
        masks = raw[roles["core_mask"][0]].map(mask_cores)
        active = pd.DataFrame({c: masks.map(lambda s, c=c: c in s) for c in mine}, index=raw.index)
        report.notes.append(f"cores: cluster cores in the core mask {roles['core_mask'][0]!r}")
    else:
        active = pd.DataFrame({c: cyc[c] > 0 for c in mine}, index=raw.index)
        report.notes.append("cores: cluster cores with a non-zero cycle count (no core-mask column)")
    df["cores"] = active.sum(axis=1).astype("int64")
    duration = None
    if "duration" in roles:
        duration = numeric(raw, roles["duration"][0], path)
        report.notes.append(f"rates: count / {roles['duration'][0]!r}")
    else:
        report.notes.append("rates: events per cycle x cluster frequency, summed over the active cores (the file "
                            "records no interval)")
    hz = df["freq_mhz"] * 1e6
    for e in events:
        counts = {c: numeric(raw, per_core[c][e], path) for c in mine}
        if any((v < 0).any() for v in counts.values()):
            raise InputFileError(f"{path}: negative {e} counts")
        on = {c: counts[c].where(active[c], 0.0) for c in mine}
        df[e] = sum(on.values())
        if duration is not None:
            df[f"{e}_per_s"] = df[e] / duration.where(duration > 0)
        else:
            per_cyc = [(on[c] / cyc[c].where(cyc[c] > 0)).fillna(0.0).where(active[c], 0.0) for c in mine]
            df[f"{e}_per_s"] = sum(per_cyc) * hz
    if "samples" in roles:
        df["samples"] = numeric(raw, roles["samples"][0], path)
    used = {c for cols in roles.values() for c in cols} | {per_core[c][e] for c in mine for e in events}
    report.recognised = {r: " + ".join(c) for r, c in roles.items()}
    report.events = {e: f"{per_core[mine[0]][e]} (+ the same on cores {mine})" for e in events}
    report.ignored = [h for h in headers if h not in used]
    return finish(df, {e: e for e in events}, report, path=path, board=str(df["board"].iloc[0]), cluster=clus,
                  kind="powmon", extra={"sensor_lag": 0, "cluster_cores": mine}, rates_from="given")


__all__ = ["XU3_LAYOUT", "load_powmon"]
