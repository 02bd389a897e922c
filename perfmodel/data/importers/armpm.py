"""Importer for the ARMPM / PARSEC power-model data (ODROID-XU3, Cortex-A15 cluster).

The file (``xu3_cset_perfcpu_PARSEC_eMMC_big.data`` by Kris Nikov, BSD-3) is tab separated with one
header line that starts with ``#``; each row is one ~500 ms sample of one run::

    #Timestamp  Benchmark  Run(#)  Cores(#)  CPU(4) Frequency(MHz)  CPU(4) Temperature(C)
    A15 Voltage(V)  A15 Current(A)  A15 Power(W)  CPU_CYCLES  L1I_CACHE_REFILL ... L2D_CACHE_ACCESS

``Timestamp`` is in ns, event columns are counts over the sample interval (summed over the cores in
use), sensor columns are the board's INA231 / TMU readings.

:func:`load_armpm` returns a *wide per-sample* table with perfmodel's canonical names
(:mod:`perfmodel.metrics`): keys ``board`` (``odroid-xu3-a15``), ``workload``, ``run``, ``cores``,
``segment`` (one contiguous run of samples), sensors ``freq_mhz``, ``temperature_c``, ``voltage_v``,
``current_a``, ``power_w``, time ``timestamp_ns``, ``dt_s``, and for every event ``<event>`` (count per
sample), ``<event>_per_s`` (count / interval) and ``<event>_per_cycle`` (count / cycles).

Sample intervals
----------------
The interval of a sample is the difference to the previous timestamp *of the same run*. The first sample
of a run has no previous timestamp (the row before it belongs to another run, often minutes away), so
its interval - and therefore its rates - cannot be known; it also mostly covers the workload's start-up
(its cycle count is ~65 % of the run's median). It is dropped by default (``drop_first=True``); with
``drop_first=False`` it is kept with ``interval_ok=False`` and NaN rates. Later samples whose interval
differs from the run's median by more than ``interval_tolerance`` are flagged ``interval_ok=False``
(none in the published file: all 6275 later intervals are 509-511 ms).

Sensor alignment
----------------
``sensor_lag`` (default 0, the file as published) shifts the sensor columns (temperature, voltage,
current, power) by that many samples within each run, so that the counter interval of row ``t`` is
paired with the sensor reading of row ``t + sensor_lag``. In this file the power reading follows the
counters by one sample: the within-run correlation of power with the cycle count peaks at a lag of one
sample (0.89, against 0.80 at lags 0 and 2), and with ``sensor_lag=1`` the leave-one-workload-out MAPE
of the fixed Powmon-style linear model (:func:`perfmodel.model.features.power_features`, no feature
selection, so the figure is honest) drops from 5.58 % to 3.93 % (per-frequency-mean baseline 26.3 %;
measured by ``benchmarks/bench_power_model.py``). Rows left without a sensor reading (the last
``sensor_lag`` samples of each run) are dropped.

Provenance
----------
:func:`load_armpm` returns a :class:`~perfmodel.data.provenance.Table` whose provenance marks counts and sensor
readings ``"real"`` (hardware PMU / physical sensors), ratios ``"derived"`` with ``derived_from`` naming their
inputs; its ``origin`` is ``"armpm:<file name>"``; ``meta`` holds the board, cluster, events and import report.

:func:`load_armpm_records` gives the same samples as long ``phase="trace"`` records of
:mod:`perfmodel.data.schema`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.errors import InputFileError

from ..provenance import Table
from .columns import ImportReport, build_samples, detect_cluster, event_columns, pick_roles

BOARD = "odroid-xu3-a15"

#: the published PARSEC file's columns -> canonical names (any other spelling is recognised by meaning,
#: :mod:`.columns`; these are kept as the reference of what the shipped model was trained on)
SENSOR_COLUMNS: dict[str, str] = {
    "CPU(4) Frequency(MHz)": "freq_mhz",
    "CPU(4) Temperature(C)": "temperature_c",
    "A15 Voltage(V)": "voltage_v",
    "A15 Current(A)": "current_a",
    "A15 Power(W)": "power_w",
}
EVENT_COLUMNS: dict[str, str] = {
    "CPU_CYCLES": "cycles",
    "INST_RETIRED": "instructions",
    "L1D_CACHE_ACCESS": "l1d_accesses",
    "L1D_CACHE_REFILL": "l1d_refills",
    "L2D_CACHE_ACCESS": "l2d_accesses",
    "L1I_CACHE_ACCESS": "l1i_accesses",
    "L1I_CACHE_REFILL": "l1i_refills",
    "L1I_TLB_REFILL": "itlb_refills",
    "L1D_TLB_REFILL": "dtlb_refills",
    "BRANCH_PRED": "branches",
    "BRANCH_MISPRED": "branch_misses",
    "DATA_MEM_ACCESS": "mem_accesses",
    "EXCEPTION_TAKEN": "exceptions_taken",
    "EXCEPTION_RETURN": "exceptions_returned",
}


def _read_raw(path: Path) -> pd.DataFrame:
    if path.is_dir():
        raise InputFileError(f"{path} is a folder, not an ARMPM file: give the tab-separated .data file in it")
    if not path.exists():
        raise InputFileError(f"ARMPM file not found: {path}")
    if not path.is_file():
        raise InputFileError(f"{path} is not a regular file (a device or pipe): give the ARMPM .data file")
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline()
            if not header.startswith("#"):
                raise InputFileError(f"{path}: not an ARMPM file (the header line must start with '#Timestamp')")
            n_fields = len(header.rstrip("\r\n").split("\t"))
            for i, line in enumerate(fh, start=1):  # a row with more fields than the header shifts every column
                line = line.rstrip("\r\n")
                if line and len(line.split("\t")) > n_fields:
                    raise InputFileError(
                        f"{path}: data line {i} has {len(line.split(chr(9)))} tab-separated fields, the header "
                        f"names {n_fields} (an extra trailing column?); every line must have the header's columns")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read ARMPM file {path}: {exc}") from None
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, index_col=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputFileError(f"{path}: malformed ARMPM file: {exc}") from None
    raw.columns = [c.strip() for c in raw.columns]
    return raw


def _board(cluster: str | None) -> str:
    return f"odroid-xu3-{cluster}" if cluster else "odroid-xu3"


def _check_time_order(ts: pd.Series, path: Path) -> None:
    """Refuse a file whose timestamps do not increase from line to line (ARMPM writes its samples in time order;
    a time that goes back or repeats means samples appended twice or out of order), naming the line."""
    d = np.diff(ts.to_numpy(dtype="int64"))
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0]) + 1  # data line i + 1, file line i + 2 (after the header)
        how = "goes back" if d[bad[0]] < 0 else "repeats"
        raise InputFileError(
            f"{path}: the timestamp {how} on data line {i + 1} (file line {i + 2}): {int(ts.iloc[i])} after "
            f"{int(ts.iloc[i - 1])} on the line before; {bad.size} line(s) do so. Samples appended twice or out "
            "of order? ARMPM files are written in time order: remove the repeated samples")


def load_armpm(
    path: str | os.PathLike,
    *,
    drop_first: bool = True,
    sensor_lag: int = 0,
    interval_tolerance: float = 0.1,
    cores: int | None = None,
    cluster: str | None = None,
    board: str | None = None,
) -> Table:
    """Load an ARMPM ``.data`` file as a wide per-sample table (see the module docstring).

    Parameters
    ----------
    path : the tab-separated ARMPM file (any event set: every ARM event column it has is imported).
    drop_first : drop the first sample of every run (its interval is unknown); else keep it flagged.
    sensor_lag : pair the counters of sample ``t`` with the sensors of sample ``t + sensor_lag`` (>= 0).
    interval_tolerance : relative deviation from the run's median interval above which a sample is
        flagged ``interval_ok=False``.
    cores : core count of every sample when the file has no core-count column (else the core terms are
        dropped, and ``meta["import_report"]`` says so).
    cluster : the CPU cluster whose sensors to take where the file has several (default: the biggest one
        a power column names).
    board : the board key (default ``odroid-xu3-<cluster>``).

    Raises
    ------
    InputFileError : missing file, missing columns, non-numeric or negative values, timestamps that do not
        increase from line to line (samples appended twice), naming the line.
    """
    path = Path(path)
    if sensor_lag < 0:
        raise InputFileError(f"sensor_lag must be >= 0, got {sensor_lag}")
    raw = _read_raw(path)
    headers = list(raw.columns)
    report = ImportReport(source=f"armpm:{path.name}")
    clus = detect_cluster(headers, cluster)
    roles = pick_roles(headers, clus, report)
    used = {c for cols in roles.values() for c in cols}
    events = event_columns(headers, used)
    used |= set(events.values())
    report.recognised = {r: " + ".join(c) for r, c in roles.items()}
    report.events = dict(events)
    report.ignored = [h for h in headers if h not in used]
    if roles.get("timestamp"):  # samples appended twice: refused before anything else (non-numbers: build_samples)
        ts = pd.to_numeric(raw[roles["timestamp"][0]], errors="coerce")
        if ts.notna().all():
            _check_time_order(ts.astype("int64"), path)
    return build_samples(raw, roles, events, path=path, report=report, board=board or _board(clus), cluster=clus,
                         cores=cores, drop_first=drop_first, sensor_lag=sensor_lag,
                         interval_tolerance=interval_tolerance, kind="armpm")


def load_armpm_records(path: str | os.PathLike, *, drop_first: bool = True, sensor_lag: int = 0) -> pd.DataFrame:
    """The samples of :func:`load_armpm` as long ``phase="trace"`` records of :mod:`perfmodel.data.schema`.

    One record per sample (``t_start_s``/``t_end_s`` on the file's clock, seconds since its first
    timestamp), metrics: the event counts and sensor readings, ``provenance="real"``,
    ``source="armpm:<file>"``; ``cell_id`` is ``<workload>-run<run>-c<cores>-f<freq>``.
    """
    from perfmodel.data.schema import coerce  # noqa: PLC0415 - keep import light

    table = load_armpm(path, drop_first=True if drop_first else False, sensor_lag=sensor_lag)
    wide, source = table.frame, table.provenance.origin
    t0 = float(wide["timestamp_ns"].min()) if len(wide) else 0.0
    t_end = (wide["timestamp_ns"] - t0) / 1e9
    if "cores" not in wide.columns:  # no core count in the file: 0 = not known
        wide = wide.assign(cores=0)
    dt = wide["dt_s"].fillna(wide.groupby("segment")["dt_s"].transform("median"))
    base = pd.DataFrame({
        "run_id": "armpm",
        "cell_id": (wide["workload"] + "-run" + wide["run"].astype(str) + "-c" + wide["cores"].astype(str)
                    + "-f" + wide["freq_mhz"].astype("int64").astype(str)),
        "board": wide["board"],
        "framework": "",
        "network": "",
        "threads": wide["cores"].astype("int64"),
        "workload": wide["workload"],
        "phase": "trace",
        "repeat": wide["run"].astype("int64"),
        "image_index": -1,
        "t_start_s": t_end - dt,
        "t_end_s": t_end,
    })
    metrics = [c for c in ("freq_mhz", "temperature_c", "voltage_v", "current_a", "power_w", *table.meta["events"])
               if c in wide.columns]
    units = table.provenance.units
    parts = []
    for m in metrics:
        part = base.copy()
        part["metric"] = m
        part["value"] = wide[m].astype("float64")
        part["unit"] = units[m]
        part["source"] = source
        part["provenance"] = "real"
        part["reason"] = ""
        part["scale"] = 1.0
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    return coerce(out)


__all__ = ["BOARD", "EVENT_COLUMNS", "SENSOR_COLUMNS", "load_armpm", "load_armpm_records"]
