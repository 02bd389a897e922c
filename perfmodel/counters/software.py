"""OS-level counters per image: CPU utilisation (psutil), rusage (CPU times, faults, context switches).

These work everywhere (no PMU, no perf permission needed) and are recorded with
``provenance="software"``. :meth:`SoftwareCounters.read` returns the change since the previous read, so
one read per image gives per-image figures, like :class:`~perfmodel.counters.perf_event.PerfEventCounters`.

Conventions: ``cpu_percent`` is this process's CPU time over wall time (100 = one core busy, as in
:mod:`perfmodel.metrics`); ``system_cpu_percent`` is the same for the whole machine (busy time of all
CPUs, so up to ``100 * ncpu``). ``max_rss_mb`` is the peak resident set so far (not a delta).
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass

from perfmodel.errors import PerfmodelError
from perfmodel.readings import Reading

SOURCE_RUSAGE = "getrusage(RUSAGE_SELF)"
SOURCE_PSUTIL = "psutil"


@dataclass(frozen=True)
class _Snap:
    wall: float
    ru: resource.struct_rusage
    sys_busy: float | None  # seconds of busy time summed over CPUs
    sys_total: float | None


def _system_times() -> tuple[float | None, float | None]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None, None
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t)
    # guest time is already included in user on Linux
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    return total - idle, total


def _vm_hwm_kib(status_path: str = "/proc/self/status") -> float | None:
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].isdigit():
                        return float(parts[1])
    except OSError:
        return None
    return None


def peak_rss(ru: resource.struct_rusage, status_path: str = "/proc/self/status") -> Reading:
    """Peak resident set of this process (MiB).

    ``/proc/self/status`` VmHWM first: Linux carries ``ru_maxrss`` across fork + exec, so a worker started
    by a big parent reports the parent's peak (seen: 7.9 GiB for every cell of a campaign whose parent had
    exported models). ``ru_maxrss`` (KiB on Linux) only where /proc is missing, marked as an upper bound.
    """
    hwm = _vm_hwm_kib(status_path)
    if hwm is not None:
        return Reading("max_rss_mb", hwm / 1024.0, "MiB", "/proc/self/status VmHWM", "software")
    return Reading("max_rss_mb", ru.ru_maxrss / 1024.0, "MiB",
                   f"{SOURCE_RUSAGE} ru_maxrss (upper bound: includes the parent's peak before exec)", "software")


class SoftwareCounters:
    """Per-interval CPU use, rusage faults and context switches of this process.

    ``system``: also record machine-wide CPU utilisation from psutil.
    """

    def __init__(self, system: bool = True):
        self.system = system
        self._prev: _Snap | None = None
        self._start: _Snap | None = None
        self.unavailable: dict[str, str] = {}

    def _snap(self) -> _Snap:
        busy, total = _system_times() if self.system else (None, None)
        return _Snap(time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), busy, total)

    def open(self) -> "SoftwareCounters":
        return self

    def start(self) -> None:
        """Take the reference snapshot."""
        self._prev = self._start = self._snap()

    enable = start

    def read(self) -> dict[str, Reading]:
        """Figures since the previous :meth:`read` (or :meth:`start`)."""
        if self._prev is None:
            raise PerfmodelError("software counters not started; call start() first")
        now = self._snap()
        out = self.delta(self._prev, now)
        self._prev = now
        return out

    def read_total(self) -> dict[str, Reading]:
        if self._start is None:
            raise PerfmodelError("software counters not started; call start() first")
        return self.delta(self._start, self._snap())

    def delta(self, a: _Snap, b: _Snap) -> dict[str, Reading]:
        wall = b.wall - a.wall
        utime = b.ru.ru_utime - a.ru.ru_utime
        stime = b.ru.ru_stime - a.ru.ru_stime
        ru = SOURCE_RUSAGE
        out: dict[str, Reading] = {
            "user_time_ms": Reading("user_time_ms", utime * 1e3, "ms", ru, "software"),
            "system_time_ms": Reading("system_time_ms", stime * 1e3, "ms", ru, "software"),
            "minor_faults": Reading("minor_faults", float(b.ru.ru_minflt - a.ru.ru_minflt), "count", ru, "software"),
            "major_faults": Reading("major_faults", float(b.ru.ru_majflt - a.ru.ru_majflt), "count", ru, "software"),
            "voluntary_context_switches": Reading("voluntary_context_switches",
                                                  float(b.ru.ru_nvcsw - a.ru.ru_nvcsw), "count", ru, "software"),
            "involuntary_context_switches": Reading("involuntary_context_switches",
                                                    float(b.ru.ru_nivcsw - a.ru.ru_nivcsw), "count", ru, "software"),
            "context_switches": Reading("context_switches",
                                        float(b.ru.ru_nvcsw - a.ru.ru_nvcsw + b.ru.ru_nivcsw - a.ru.ru_nivcsw),
                                        "count", ru, "software"),
            "max_rss_mb": peak_rss(b.ru),
        }
        if wall > 0:
            out["cpu_percent"] = Reading("cpu_percent", 100.0 * (utime + stime) / wall, "%",
                                         f"{ru} / wall clock", "software")
        else:
            out["cpu_percent"] = Reading.missing("cpu_percent", "zero-length interval", "%", ru)
        if self.system:
            if a.sys_busy is None or b.sys_busy is None:
                out["system_cpu_percent"] = Reading.missing("system_cpu_percent", "psutil not available", "%")
            elif wall > 0:
                out["system_cpu_percent"] = busy_percent(b.sys_busy - a.sys_busy, wall,
                                                         f"{SOURCE_PSUTIL}.cpu_times (all CPUs)")
            else:
                out["system_cpu_percent"] = Reading.missing("system_cpu_percent", "zero-length interval",
                                                            "%", SOURCE_PSUTIL)
        return out

    def disable(self) -> None:
        """Nothing to stop: figures are snapshots taken at each read."""

    stop = disable

    def close(self) -> None:
        self._prev = self._start = None

    def __enter__(self) -> "SoftwareCounters":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def busy_percent(busy_s: float, wall_s: float, source: str) -> Reading:
    """``system_cpu_percent`` from a busy-time difference. psutil's busy time is total - idle of float
    sums, so an idle interval can come out a few nanoseconds negative: rounding below 1 us is read as 0;
    a real step backwards (a counter reset) is NaN with the reason, never a negative percentage."""
    if busy_s < 0:
        if busy_s > -1e-6:
            busy_s = 0.0
        else:
            return Reading.missing("system_cpu_percent", f"system busy time went backwards by {-busy_s:.3g} s",
                                   "%", source)
    return Reading("system_cpu_percent", 100.0 * busy_s / wall_s, "%", source, "software")


def process_cpu_percent(interval: float = 0.1) -> float:
    """psutil's CPU utilisation of this process over ``interval`` s (100 = one core). NaN on failure."""
    try:
        import psutil

        return float(psutil.Process().cpu_percent(interval=interval))
    except Exception:  # pragma: no cover - psutil errors are environment specific
        return math.nan
