"""Generic CSV importer with a column mapping, for any other power / PMU logger.

``load_mapped(path, mapping)`` reads a delimited text file (comma, tab or semicolon, sniffed) of time
samples and returns the same wide per-sample table as :func:`.armpm.load_armpm`. ``mapping`` names the
file's column for a role or an event: ``time=Time (s),power_w=P_big,freq_mhz=f`` (a string), a dict, or
a mapping file (JSON object, or ``key=column`` lines). Roles: ``time`` (``timestamp``), ``workload``,
``run``, ``cores``, ``core_mask``, ``freq_mhz``, ``voltage_v``, ``temperature_c``, ``current_a``,
``power_w``; any other key is an event: an ARM mnemonic (``INST_RETIRED``), a raw number (``0x08``) or a
perfmodel event name (``instructions``). Columns the mapping does not name are recognised by meaning
(:mod:`.columns`) where they can be, and reported as ignored otherwise. Units: the header's, else
perfmodel's (the time stamp's from its size), converted and said in ``meta["import_report"]`` of the table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from perfmodel.armpmu import canonical_event
from perfmodel.errors import InputFileError
from perfmodel.metrics import EVENTS

from ..provenance import Table
from .columns import ImportReport, build_samples, detect_cluster, event_columns, pick_roles

ROLE_KEYS = {"time": "timestamp", "timestamp": "timestamp", "time_s": "timestamp", "time_ns": "timestamp",
             "workload": "workload", "benchmark": "workload", "run": "run", "cores": "cores",
             "core_mask": "core_mask", "freq_mhz": "freq_mhz", "freq": "freq_mhz", "voltage_v": "voltage_v",
             "voltage": "voltage_v", "temperature_c": "temperature_c", "temperature": "temperature_c",
             "current_a": "current_a", "current": "current_a", "power_w": "power_w", "power": "power_w"}


def parse_mapping(spec: str | os.PathLike | dict) -> dict[str, str]:
    """``key=column,...`` text, a mapping file (JSON object or ``key=column`` lines) or a dict -> dict."""
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        text = str(spec)
        p = Path(text)
        if "=" not in text and not p.is_file():
            raise InputFileError(f"--map {text!r}: neither key=column pairs nor a mapping file")
        if "=" not in text or p.is_file():
            body = p.read_text(encoding="utf-8")
            try:
                obj = json.loads(body)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                items = list(obj.items())
            else:
                items = [ln.split("=", 1) for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        else:
            items = [part.split("=", 1) for part in text.split(",") if part.strip()]
    out: dict[str, str] = {}
    for item in items:
        if len(item) != 2 or not str(item[0]).strip() or not str(item[1]).strip():
            raise InputFileError(f"mapping entry {item!r} is not key=column")
        out[str(item[0]).strip()] = str(item[1]).strip()
    return out


def load_mapped(
    path: str | os.PathLike,
    mapping: str | os.PathLike | dict,
    *,
    drop_first: bool = True,
    sensor_lag: int = 0,
    cores: int | None = None,
    cluster: str | None = None,
    board: str | None = None,
    interval_tolerance: float = 0.1,
) -> Table:
    """Load ``path`` with ``mapping`` as a wide per-sample table (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"CSV file not found: {path}")
    try:
        raw = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read CSV: {exc}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    headers = list(raw.columns)
    report = ImportReport(source=f"csv:{path.name}")
    roles_map: dict[str, str] = {}
    mapped_events: dict[str, str] = {}
    for key, col in parse_mapping(mapping).items():
        if col not in headers:
            raise InputFileError(f"mapping {key}={col!r}: {path} has no column {col!r} "
                                 f"(columns: {', '.join(map(repr, headers[:20]))})")
        role = ROLE_KEYS.get(key.lower())
        if role:
            roles_map[role] = col
            continue
        name = key if key in EVENTS else canonical_event(key)
        if name is None:
            raise InputFileError(f"mapping key {key!r} is neither a role ({', '.join(sorted(set(ROLE_KEYS)))}) nor an "
                                 "event (an ARM mnemonic such as INST_RETIRED, a number such as 0x08, or a perfmodel "
                                 "event name such as instructions)")
        mapped_events[name] = col
    clus = detect_cluster(headers, cluster)
    roles = pick_roles(headers, clus, report, mapping=roles_map)
    used = {c for cols in roles.values() for c in cols} | set(mapped_events.values())
    events = {**event_columns(headers, used), **mapped_events}
    used |= set(events.values())
    report.recognised = {r: " + ".join(c) + (" (mapped)" if r in roles_map else "") for r, c in roles.items()}
    report.events = dict(events)
    report.ignored = [h for h in headers if h not in used]
    return build_samples(raw, roles, events, path=path, report=report, board=board or (clus or "csv"),
                         cluster=clus, cores=cores, drop_first=drop_first, sensor_lag=sensor_lag,
                         interval_tolerance=interval_tolerance, kind="csv")


__all__ = ["load_mapped", "parse_mapping"]
