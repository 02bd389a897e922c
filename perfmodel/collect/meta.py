"""Run metadata (machine, library versions, tool version) and the sensor sampler of a worker.

``perfmodel.sysinfo`` gives the machine description and ``perfmodel.sensors`` the sensor readings; a
sampler that fails gives NaN readings with the reason, never invented values.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from perfmodel.readings import Reading

#: sensor metrics every cell / trace interval records (NaN + reason where the machine has no sensor)
SENSOR_METRICS = {"temperature_c": "degC", "freq_mhz": "MHz", "power_w": "W"}

def new_run_id() -> str:
    """A unique id for one invocation of the collector: UTC time + random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def tool_version() -> str:
    from perfmodel import __version__

    return __version__


def system_info() -> dict[str, Any]:
    """The machine description stored with every run (:func:`perfmodel.sysinfo.system_info`)."""
    from perfmodel import sysinfo

    info = dict(sysinfo.system_info())
    info.setdefault("source", "perfmodel.sysinfo")
    return info


def library_versions() -> dict[str, str]:
    """Installed versions of the numeric and ML libraries; ``"missing"`` for one not installed."""
    from perfmodel import sysinfo

    return {str(k): (str(v) if v is not None else "missing") for k, v in sysinfo.library_versions().items()}


def run_metadata(counter_source: str, geometry: Mapping | None, **extra: Any) -> dict[str, Any]:
    """Metadata stored with every run: board, CPU, system, library versions, counters, tool version."""
    system = system_info()
    return {
        "board": str(system.get("board") or "unknown"),
        "cpu_model": str(system.get("cpu_model") or "unknown"),
        "system": system,
        "versions": library_versions(),
        "counter_source": counter_source,
        "cache_geometry": dict(geometry) if geometry else None,
        "tool": "perfmodel",
        "tool_version": tool_version(),
        **extra,
    }


# --------------------------------------------------------------------------------------------------
# sensors


def _missing_sensors(reason: str) -> dict[str, Reading]:
    return {n: Reading.missing(n, reason, unit, "perfmodel.sensors") for n, unit in SENSOR_METRICS.items()}


def usable_readings(readings: Mapping[str, Reading]) -> dict[str, Reading]:
    """Readings under names the record schema accepts: known metrics as is, others prefixed ``x_``."""
    from perfmodel.data.schema import USER_PREFIX, known_metrics

    known = known_metrics()
    out: dict[str, Reading] = {}
    for key, r in readings.items():
        if not isinstance(r, Reading):
            continue
        name = r.name if r.name in known or r.name.startswith(USER_PREFIX) else f"{USER_PREFIX}{r.name}"
        if name != r.name:
            r = Reading(name, r.value, r.unit, r.source, r.provenance, r.reason)
        out[name] = r
    return out


class SensorWindow:
    """The sensor sampler of a worker: ``perfmodel.sensors.Sampler`` if it works, else NaN + reason.

    :meth:`window` always returns at least :data:`SENSOR_METRICS`. One sensor's failure never costs the
    others: a power log that cannot be used (it was checked up front, but a file can change) gives power
    NaN with the parser's reason while the machine's temperature and frequency sensors are sampled as
    usual (power then comes from no other source: the user asked for the log's figures). :meth:`snapshot`
    takes a sample on demand (right before and right after a short counted window).
    """

    def __init__(self, period_s: float = 0.1, power_log: str | None = None, power_log_offset_s: float = 0.0):
        self.period_s = period_s
        self.sampler = None
        self.reason: str | None = None
        self.power_reason: str | None = None  #: why the power log given could not be used
        try:
            from perfmodel.sensors import Sampler
        except Exception as exc:  # noqa: BLE001 - optional stage; the reason is recorded with every NaN
            self.reason = f"sensor sampler unavailable ({type(exc).__name__}: {exc})"
            return
        if power_log is not None:
            try:
                from perfmodel.sensors import load_power_log

                power_log = load_power_log(power_log)
            except Exception as exc:  # noqa: BLE001 - costs power only, never the other sensors
                self.power_reason = f"power log unusable ({type(exc).__name__}: {exc})"
                power_log = None
        try:
            self.sampler = Sampler(period_s=period_s, power_log=power_log, power_log_offset_s=power_log_offset_s)
        except Exception as exc:  # noqa: BLE001 - optional stage; the reason is recorded with every NaN
            self.reason = f"sensor sampler unavailable ({type(exc).__name__}: {exc})"

    def start(self) -> "SensorWindow":
        if self.sampler is not None:
            try:
                self.sampler.start()
            except Exception as exc:  # noqa: BLE001
                self.reason = f"sensor sampler failed to start ({type(exc).__name__}: {exc})"
                self.sampler = None
        return self

    def snapshot(self) -> float | None:
        """Take one sample now; its timestamp (``time.monotonic``), or None when there is no sampler."""
        if self.sampler is None:
            return None
        try:
            return self.sampler.snapshot()
        except Exception:  # noqa: BLE001 - a failed snapshot is a missing sample, the window says so
            return None

    def stop(self) -> None:
        if self.sampler is not None:
            try:
                self.sampler.stop()
            except Exception:  # noqa: BLE001
                pass

    def window(self, t0: float, t1: float, margin_s: float = 0.0) -> dict[str, Reading]:
        """Sensor readings over ``[t0, t1]``; samples up to ``margin_s`` outside it count too (see
        :meth:`perfmodel.sensors.Sampler.window`)."""
        if self.sampler is None:
            got = _missing_sensors(self.reason or "no sensor sampler")
        else:
            try:
                got = usable_readings(dict(self.sampler.window(t0, t1, margin_s=margin_s)))
            except Exception as exc:  # noqa: BLE001
                got = _missing_sensors(f"sensor window failed ({type(exc).__name__}: {exc})")
        if self.power_reason:
            got["power_w"] = Reading.missing("power_w", self.power_reason, "W", "power log")
        for name, unit in SENSOR_METRICS.items():
            got.setdefault(name, Reading.missing(name, "the sensor sampler gave no reading", unit,
                                                 "perfmodel.sensors"))
        return got

    @staticmethod
    def margin(t0: float, t1: float, s0: float | None, s1: float | None) -> float:
        """The ``margin_s`` that takes in snapshots taken at ``s0`` (before ``t0``) and ``s1`` (after ``t1``)."""
        gaps = [g for g in ((t0 - s0) if s0 is not None else None, (s1 - t1) if s1 is not None else None)
                if g is not None and g >= 0]
        return max(gaps) + 1e-9 if gaps else 0.0

    def status(self) -> dict[str, Any]:
        reasons = "; ".join(r for r in (self.reason, self.power_reason) if r) or None
        return {"sampler": type(self.sampler).__module__ + "." + type(self.sampler).__name__
                if self.sampler is not None else None, "period_s": self.period_s, "reason": reasons}
