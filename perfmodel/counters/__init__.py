"""Per-image event counters: hardware PMU, software events, simulation, OS figures.

Sources, best first:

* :mod:`.perf_event` - ``perf_event_open`` in process: real PMU events (``provenance="real"``) and
  kernel software events (``"software"``), one group read per image.
* :mod:`.perf_stat` - ``perf stat`` around a whole command (two-phase method of the study).
* :mod:`.valgrind` - callgrind cache/branch simulation, one run per workload with per-image dumps
  (``"simulated"``).
* :mod:`.software` - psutil and getrusage (``"software"``).

Every counter session has ``start()``, ``read() -> dict[str, Reading]`` (figures since the previous
read) and ``close()``, and is a context manager. :func:`available_sources` tells ``perfmodel doctor``
what works here and why the rest does not.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence

from perfmodel.errors import PerfmodelError, check_choice
from perfmodel.readings import COUNTER_SOURCES, Reading

from .perf_event import PerfEventCounters, default_events, probe
from .perf_stat import parse_perf_stat, perf_binary, run_perf_stat, two_phase
from .software import SoftwareCounters
from .valgrind import CacheGeometry, CallgrindMarker, WorkloadSpec, simulate, valgrind_available

SOURCES = COUNTER_SOURCES  #: the counter sources (one list: collect names cells after them, data.cells reads them)

__all__ = [
    "SOURCES", "CounterSet", "CallgrindSession", "PerfEventCounters", "SoftwareCounters", "CacheGeometry",
    "WorkloadSpec", "available_sources", "open_counters", "probe", "default_events", "simulate",
    "run_perf_stat", "parse_perf_stat", "two_phase",
]


class CounterSet:
    """Several counter sessions read together; for a name given by more than one, the first wins."""

    def __init__(self, sessions: Sequence[object]):
        if not sessions:
            raise PerfmodelError("no counter sessions")
        self.sessions = list(sessions)

    def open(self) -> "CounterSet":
        for s in self.sessions:
            s.open()
        return self

    def start(self) -> None:
        for s in self.sessions:
            s.start()

    enable = start

    def read(self) -> dict[str, Reading]:
        out: dict[str, Reading] = {}
        for s in self.sessions:
            for name, r in s.read().items():
                if name not in out or (not out[name].available and r.available):
                    out[name] = r
        return out

    def disable(self) -> None:
        for s in self.sessions:
            s.disable()

    stop = disable

    @property
    def unavailable(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for s in self.sessions:
            out.update(getattr(s, "unavailable", {}))
        return out

    def close(self) -> None:
        for s in self.sessions:
            s.close()

    def __enter__(self) -> "CounterSet":
        self.open()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CallgrindSession:
    """Image boundaries for a worker running under callgrind (see :func:`.valgrind.simulate`).

    ``start()`` starts instrumentation and opens image 0; each ``read()`` closes the current image
    (a per-image dump) and opens the next. The counts themselves are in the dump files that
    :func:`.valgrind.simulate` parses after the run, so ``read()`` returns an empty dict.
    """

    def __init__(self, marker: CallgrindMarker | None = None):
        self.marker = marker or CallgrindMarker()
        if not self.marker.on_valgrind:
            raise PerfmodelError("not running under valgrind: simulated counters come from "
                                 "perfmodel.counters.valgrind.simulate(), which runs the worker under callgrind")
        self._image = 0
        self.unavailable: dict[str, str] = {}

    def open(self) -> "CallgrindSession":
        return self

    def start(self) -> None:
        self.marker.start()
        self.marker.begin_image()

    enable = start

    def read(self) -> dict[str, Reading]:
        self.marker.end_image(f"image {self._image}")
        self._image += 1
        self.marker.begin_image()
        return {}

    def disable(self) -> None:
        pass

    stop = disable

    def close(self) -> None:
        pass

    def __enter__(self) -> "CallgrindSession":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_counters(source: str = "auto", events: Iterable[str] | None = None, *, inherit: bool = True):
    """An opened (not yet started) counter session.

    ``"perf"``: :class:`PerfEventCounters` (``events`` perf or canonical names; unsupported ones read as
    missing with the reason). ``"software"``: :class:`SoftwareCounters`. ``"valgrind"``:
    :class:`CallgrindSession` (inside a worker run by :func:`simulate`). ``"auto"``: perf events plus
    the software counters when ``perf_event_open`` works here, else the software counters alone.
    """
    check_choice("counter source", source, SOURCES)
    if source == "software":
        return SoftwareCounters().open()
    if source == "valgrind":
        return CallgrindSession()
    if source == "perf":
        return PerfEventCounters(events, inherit=inherit).open()
    try:
        pc = PerfEventCounters(events, inherit=inherit).open()
    except (OSError, PerfmodelError):
        return SoftwareCounters().open()
    if not pc.available:
        pc.close()
        return SoftwareCounters().open()
    return CounterSet([pc, SoftwareCounters()]).open()


def _perf_cli_status() -> tuple[bool, str, list[str]]:
    exe = perf_binary()
    if exe is None:
        return False, "perf not installed (linux-perf / linux-tools)", []
    try:
        res = run_perf_stat(["true"], ["task-clock", "instructions"], timeout=30)
    except (PerfmodelError, OSError) as exc:
        return False, f"perf stat does not run: {exc}", []
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "perf"
    counted = [n for n, r in res.readings().items() if r.available]
    hw = res.readings().get("instructions")
    note = "" if hw is None or hw.available else f"; hardware events {hw.reason}"
    return True, f"{version}{note}", counted


def available_sources() -> list[dict]:
    """Every counter source with ``name``, ``available``, ``reason`` and the ``events`` it gives here."""
    out: list[dict] = []
    try:
        results = probe()
    except (OSError, PerfmodelError) as exc:
        results = []
        reason = f"perf_event_open unusable: {exc}"
        out.append({"name": "hardware events (perf_event_open)", "available": False, "reason": reason, "events": []})
        out.append({"name": "software events (perf_event_open)", "available": False, "reason": reason, "events": []})
    if results:
        for label, sw in (("hardware events (perf_event_open)", False), ("software events (perf_event_open)", True)):
            mine = [r for r in results if (r.type == "software") == sw and r.type != "none"]
            ok = sorted({r.name for r in mine if r.available})
            reasons = sorted({r.reason for r in mine if not r.available and r.reason})
            out.append({"name": label, "available": bool(ok),
                        "reason": "ok" if ok and not reasons else
                        (f"partly: {'; '.join(reasons)}" if ok else "; ".join(reasons) or "no events"),
                        "events": ok})
    ok, reason, events = _perf_cli_status()
    out.append({"name": "perf CLI (perf stat)", "available": ok, "reason": reason, "events": events})
    ok, reason = valgrind_available()
    from .valgrind import CANONICAL_FROM_CALLGRIND

    out.append({"name": "simulated events (valgrind callgrind)", "available": ok, "reason": reason,
                "events": sorted(CANONICAL_FROM_CALLGRIND) if ok else []})
    try:
        import psutil

        out.append({"name": "OS counters (psutil, getrusage)", "available": True,
                    "reason": f"psutil {psutil.__version__}",
                    "events": ["cpu_percent", "system_cpu_percent", "user_time_ms", "system_time_ms",
                               "minor_faults", "major_faults", "context_switches", "max_rss_mb"]})
    except ImportError:
        out.append({"name": "OS counters (psutil, getrusage)", "available": False,
                    "reason": "psutil not installed", "events": []})
    return out
