"""The calibration record (:func:`check_calibration`) and where a ``dataset.json`` dict holds them
(:func:`calibrations_of_info`): what :mod:`.store` (a merge keeps its inputs' calibrations) and :mod:`.calibration`
(reading and attaching them) both need. Imports no other data module, so neither of those imports the other back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from perfmodel.errors import PerfmodelError

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


__all__ = ["CALIBRATIONS_KEY", "calibrations_of_info", "check_calibration"]
