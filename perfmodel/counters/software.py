"""OS-level counters per image: CPU utilisation (psutil), rusage (CPU times, faults, context switches).

These work everywhere (no PMU, no perf permission needed) and are recorded with
``provenance="software"``. :meth:`SoftwareCounters.read` returns the change since the previous read, so
one read per image gives per-image figures, like :class:`~perfmodel.counters.perf_event.PerfEventCounters`.

Conventions: ``cpu_percent`` is this process's CPU time over wall time (100 = one core busy, as in
:mod:`perfmodel.metrics`); ``system_cpu_percent`` is the same for the whole machine (busy time of all
CPUs, so up to ``100 * ncpu``). ``max_rss_mb`` is the peak resident set so far (not a delta).

``system_cpu_percent`` comes from ``psutil.cpu_times()`` (``/proc/stat``), which counts in clock ticks
(``1 / SC_CLK_TCK`` s, 10 ms at the usual USER_HZ=100): it is busy ticks over *all* ticks of the interval
(busy + idle of every CPU) x 100 x ncpu, so it can never exceed ``100 * ncpu``, and an interval shorter
than :data:`MIN_TICKS` ticks (a ~7 ms image) is NaN with the reason instead of a quantised figure
(1 tick in 7 ms would read 143 %).
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass

from perfmodel.errors import PerfmodelError
from perfmodel.readings import Reading

SOURCE_RUSAGE = "getrusage(RUSAGE_SELF)"
SOURCE_PSUTIL = "psutil"
#: intervals shorter than this many clock ticks give ``system_cpu_percent`` NaN: psutil.cpu_times counts
#: whole ticks per CPU, so over 10 ticks the figure is within about +-10 % of the interval's busy share
MIN_TICKS = 10


def clock_tick_s() -> float:
    """The resolution of ``psutil.cpu_times`` on Linux: one clock tick (``1 / SC_CLK_TCK``, usually 10 ms)."""
    try:
        hz = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        hz = 100
    return 1.0 / hz if hz and hz > 0 else 0.01


def cpu_count() -> int | None:
    """CPUs counted by ``psutil.cpu_times`` (the online CPUs of ``/proc/stat``), None if unknown."""
    try:
        import psutil

        return psutil.cpu_count(logical=True) or None
    except Exception:  # noqa: BLE001 - psutil errors are environment specific
        return os.cpu_count()


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
            else:
                out["system_cpu_percent"] = system_cpu_between((a.sys_busy, a.sys_total),
                                                               (b.sys_busy, b.sys_total), wall)
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


def busy_percent(busy_s: float, wall_s: float, source: str, *, total_s: float, ncpu: int | None = None,
                 tick_s: float | None = None) -> Reading:
    """``system_cpu_percent`` from the busy-time and total-time differences (all CPUs) of an interval.

    ``100 * ncpu * busy_s / total_s``: busy over all ticks counted in the interval, so never above
    ``100 * ncpu`` however the ticks fall (busy / wall of quantised ticks gave 387 % on 2 CPUs).
    An interval shorter than :data:`MIN_TICKS` clock ticks (``tick_s``, default :func:`clock_tick_s`) is NaN
    with the reason: its ticks cannot resolve it. psutil's busy time is total - idle of float sums, so an
    idle interval can come out a few nanoseconds negative: rounding below 1 us is read as 0; a real step
    backwards (a counter reset) is NaN with the reason, never a negative percentage.
    """
    name = "system_cpu_percent"
    tick = clock_tick_s() if tick_s is None else float(tick_s)
    if not wall_s > 0:
        return Reading.missing(name, "zero-length interval", "%", source)
    if wall_s < MIN_TICKS * tick:
        return Reading.missing(name, f"interval of {wall_s * 1e3:.3g} ms too short to resolve: psutil.cpu_times "
                               f"counts {tick * 1e3:g} ms clock ticks (NaN below {MIN_TICKS} ticks)", "%", source)
    if busy_s < 0:
        if busy_s > -1e-6:
            busy_s = 0.0
        else:
            return Reading.missing(name, f"system busy time went backwards by {-busy_s:.3g} s", "%", source)
    n = ncpu if ncpu is not None else cpu_count()
    if not n:
        return Reading.missing(name, "number of CPUs unknown", "%", source)
    if not total_s > 0:
        return Reading.missing(name, "no clock tick counted in the interval (psutil.cpu_times did not advance)",
                               "%", source)
    return Reading(name, 100.0 * n * min(busy_s, total_s) / total_s, "%", source, "software")


def system_cpu_between(a: tuple[float | None, float | None] | None, b: tuple[float | None, float | None] | None,
                       wall_s: float, *, ncpu: int | None = None) -> Reading:
    """``system_cpu_percent`` between two ``(busy_s, total_s)`` snapshots of :func:`_system_times` taken
    ``wall_s`` apart (the per-cell figure of a campaign worker; :func:`busy_percent` for the rules)."""
    source = f"{SOURCE_PSUTIL}.cpu_times (all CPUs)"
    if a is None or b is None or None in (a[0], a[1], b[0], b[1]):
        return Reading.missing("system_cpu_percent", "psutil not available", "%", source)
    return busy_percent(b[0] - a[0], wall_s, source, total_s=b[1] - a[1], ncpu=ncpu)


def process_cpu_percent(interval: float = 0.1) -> float:
    """psutil's CPU utilisation of this process over ``interval`` s (100 = one core). NaN on failure."""
    try:
        import psutil

        return float(psutil.Process().cpu_percent(interval=interval))
    except Exception:  # pragma: no cover - psutil errors are environment specific
        return math.nan
