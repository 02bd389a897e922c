"""Machine calibrations stored with a data set (measured by :mod:`perfmodel.collect.calibrate`).

A campaign stores the calibration it measured in its run metadata (``metadata["calibration"]``, one per
run, so a resumed campaign has several); :func:`attach_calibration` adds one measured afterwards to
``dataset.json`` (``"calibrations"``, with when and why it was attached); :func:`merge` keeps those of its
inputs (their run metadata is under ``merged_from``). :func:`dataset_calibrations` collects them all and
:func:`stream_bandwidth` gives the median streaming bandwidth per thread count, which the throughput
model's weight-streaming time uses (:func:`perfmodel.model.features.attach_stream_time`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.errors import InputFileError, PerfmodelError

from .calibration_records import CALIBRATIONS_KEY, calibrations_of_info, check_calibration
from .store import Dataset, _now


def dataset_calibrations(path: str | os.PathLike) -> list[dict]:
    """The calibrations of a data set folder (a flat records file has none: ``[]``)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist")
    if not path.is_dir():
        return []
    return calibrations_of_info(Dataset.open(path).info)


def attach_calibration(path: str | os.PathLike, calibration: Mapping, note: str = "") -> dict:
    """Add ``calibration`` (measured after the data set's campaign) to the data set folder at ``path``.

    Stored under ``dataset.json["calibrations"]`` with ``attached`` (time) and ``note`` (why, e.g. "measured
    after the campaign, which had none"); nothing already there is changed. Returns the stored entry.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputFileError(f"{path} is not a data set folder (a calibration can only be attached to one)")
    Dataset.open(path)  # a data set, before a lock file is made in it
    entry = {**check_calibration(calibration), "attached": _now(), "note": str(note)}
    from .lock import DatasetLock

    with DatasetLock.acquire(path):  # one writer at a time: dataset.json is read and written under the lock
        ds = Dataset.open(path)
        ds.info.setdefault(CALIBRATIONS_KEY, []).append(entry)
        ds._save_info()
    return entry


def _median_per_threads(calibrations: Iterable[Mapping], key: str, *, skip_invalid: bool) -> dict[int, float]:
    """Median of ``cal[key][threads]`` per thread count over ``calibrations``; with ``skip_invalid`` an entry
    that is not threads: a finite number > 0 is left out, else it raises as ``int`` / ``float`` do."""
    per: dict[int, list[float]] = {}
    for cal in calibrations:
        for k, v in dict(cal.get(key) or {}).items():
            try:
                t, g = int(k), float(v)
            except (TypeError, ValueError):
                if skip_invalid:
                    continue
                raise
            if skip_invalid and not (np.isfinite(g) and g > 0):
                continue
            per.setdefault(t, []).append(g)
    return {t: float(np.median(v)) for t, v in sorted(per.items())}


def stream_bandwidth(calibrations: Iterable[Mapping]) -> dict[int, float]:
    """Median streaming bandwidth (GB/s) per thread count over ``calibrations`` (``{}`` when none)."""
    return _median_per_threads(calibrations, "stream_gbps", skip_invalid=False)


def gemm_speed(calibrations: Iterable[Mapping]) -> dict[int, float]:
    """Median in-cache GEMM speed (GFLOP/s) per thread count over ``calibrations`` (``{}`` when none): the
    machine's arithmetic speed at the time, which a shared VM's drift changes by 10-20 % within hours."""
    return _median_per_threads(calibrations, "gemm_gflops", skip_invalid=True)


def _systems(obj: Any, found: list[dict]) -> None:
    """Every ``"system"`` dict (run metadata, :func:`perfmodel.sysinfo.system_info`) under ``obj``."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if k == "system" and isinstance(v, Mapping):
                found.append(dict(v))
            else:
                _systems(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _systems(v, found)


def dataset_l2_bytes(path: str | os.PathLike, *, explicit: float | None = None,
                     here: Mapping | None = None) -> tuple[float | None, str]:
    """The L2 cache size (bytes) of the machine a data set was timed on, and a sentence saying where it
    came from; ``(None, why)`` when it cannot be known.

    In order: ``explicit`` (a user's figure); the size its runs recorded (``system.l2_bytes``, since
    runs record cacheinfo); else this machine's (``here`` = :func:`perfmodel.sysinfo.system_info`, read
    when not given) when every run recorded this machine's CPU model and architecture. Runs that recorded
    different sizes are an error (a model needs one machine's figure).
    """
    if explicit is not None:
        v = float(explicit)
        if not (np.isfinite(v) and v > 0):
            raise PerfmodelError(f"L2 cache size must be > 0 bytes, got {explicit!r}")
        return v, f"given: {v / 1024:.0f} KiB"
    path = Path(path)
    systems: list[dict] = []
    if path.is_dir():
        _systems(Dataset.open(path).info, systems)
    if not systems:
        return None, f"{path} records no machine description (a flat records file or no run metadata)"
    sizes = {int(s["l2_bytes"]) for s in systems if s.get("l2_bytes")}
    if len(sizes) > 1:
        raise PerfmodelError(f"the runs of {path} recorded different L2 sizes "
                             f"({', '.join(f'{b // 1024} KiB' for b in sorted(sizes))}): mixed machines")
    if sizes:
        b = sizes.pop()
        return float(b), f"recorded by the data set's runs: {b // 1024} KiB (Linux cacheinfo)"
    if here is None:
        from perfmodel.sysinfo import system_info

        here = system_info()
    cpus = {(str(s.get("cpu_model")), str(s.get("arch"))) for s in systems}
    mine = (str(here.get("cpu_model")), str(here.get("arch")))
    if cpus == {mine} and here.get("l2_bytes"):
        b = int(here["l2_bytes"])
        return float(b), (f"this machine's: {b // 1024} KiB ({here.get('l2_bytes_source')}); the data set's runs "
                          f"predate cache recording but recorded this CPU model ({mine[0]}, {mine[1]})")
    why = ("its runs recorded no L2 size" + ("" if cpus == {mine} else
                                            f" and another CPU ({', '.join(sorted(c for c, _ in cpus))})")
           + (f"; here: {here.get('l2_bytes_reason')}" if not here.get("l2_bytes") else ""))
    return None, f"no L2 cache size for {path}: {why}; give it by hand"


__all__ = ["gemm_speed", "dataset_l2_bytes", "attach_calibration", "dataset_calibrations", "calibrations_of_info", "stream_bandwidth",
           "check_calibration", "CALIBRATIONS_KEY"]
