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

CALIBRATIONS_KEY = "calibrations"


def check_calibration(cal: Any, where: str = "calibration") -> dict:
    """``cal`` if it is a calibration dict (version 1, ``stream_gbps`` = {threads: GB/s > 0}), else
    :class:`PerfmodelError` saying what is wrong."""
    if not isinstance(cal, Mapping):
        raise PerfmodelError(f"{where}: not a calibration (a JSON object expected, got {type(cal).__name__})")
    if cal.get("version") != 1:
        raise PerfmodelError(f"{where}: unsupported calibration version {cal.get('version')!r} (this perfmodel reads 1)")
    bw = cal.get("stream_gbps")
    if not isinstance(bw, Mapping):
        raise PerfmodelError(f"{where}: no 'stream_gbps' object")
    for k, v in bw.items():
        try:
            ok = int(k) >= 1 and float(v) > 0 and np.isfinite(float(v))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise PerfmodelError(f"{where}: stream_gbps[{k!r}] = {v!r} is not threads >= 1: GB/s > 0")
    return dict(cal)


def _walk(obj: Any, found: list[dict], seen: set[str]) -> None:
    """Calibration dicts under ``obj`` (``"calibration"`` keys of nested metadata), each once."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if k == "calibration" and isinstance(v, Mapping) and "stream_gbps" in v:
                key = repr((v.get("when"), sorted(dict(v.get("stream_gbps") or {}).items())))
                if key not in seen:
                    seen.add(key)
                    found.append(dict(v))
            else:
                _walk(v, found, seen)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, found, seen)


def calibrations_of_info(info: Mapping) -> list[dict]:
    """Every calibration of a ``dataset.json`` dict: run metadata (also of merged inputs) and attached ones."""
    found: list[dict] = []
    seen: set[str] = set()
    _walk({k: v for k, v in info.items() if k != CALIBRATIONS_KEY}, found, seen)
    found = [check_calibration(c, f"calibration of a run ({c.get('when', '?')})") for c in found]
    attached = info.get(CALIBRATIONS_KEY) or []
    if not isinstance(attached, list):
        raise PerfmodelError(f"'{CALIBRATIONS_KEY}' of the data set is not a list")
    for i, cal in enumerate(attached):
        cal = check_calibration(cal, f"attached calibration {i}")
        _walk({"calibration": cal}, found, seen)
    return found


def dataset_calibrations(path: str | os.PathLike) -> list[dict]:
    """The calibrations of a data set folder (a flat records file has none: ``[]``)."""
    from .store import Dataset

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
    from .store import Dataset, _now

    path = Path(path)
    if not path.is_dir():
        raise InputFileError(f"{path} is not a data set folder (a calibration can only be attached to one)")
    ds = Dataset.open(path)
    entry = {**check_calibration(calibration), "attached": _now(), "note": str(note)}
    ds.info.setdefault(CALIBRATIONS_KEY, []).append(entry)
    ds._save_info()
    return entry


def stream_bandwidth(calibrations: Iterable[Mapping]) -> dict[int, float]:
    """Median streaming bandwidth (GB/s) per thread count over ``calibrations`` (``{}`` when none)."""
    per: dict[int, list[float]] = {}
    for cal in calibrations:
        for k, v in dict(cal.get("stream_gbps") or {}).items():
            per.setdefault(int(k), []).append(float(v))
    return {t: float(np.median(v)) for t, v in sorted(per.items())}


__all__ = ["attach_calibration", "dataset_calibrations", "calibrations_of_info", "stream_bandwidth",
           "check_calibration", "CALIBRATIONS_KEY"]
