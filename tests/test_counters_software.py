"""OS counters (psutil, getrusage), the counter-source listing for doctor, open_counters."""

from __future__ import annotations

import time

import numpy as np
import pytest

from perfmodel.counters import CounterSet, SoftwareCounters, available_sources, open_counters
from perfmodel.errors import PerfmodelError, UnknownNameError
from perfmodel.readings import Reading


def _burn(seconds: float) -> None:
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        pass


def test_software_counters_per_interval():
    with SoftwareCounters() as sc:
        _burn(0.1)
        busy = sc.read()
        time.sleep(0.1)
        idle = sc.read()
    assert busy["user_time_ms"].value + busy["system_time_ms"].value >= 90
    assert busy["cpu_percent"].value > 50
    assert idle["cpu_percent"].value < busy["cpu_percent"].value
    assert busy["system_cpu_percent"].value > 0
    for r in busy.values():
        assert r.provenance == "software" and r.available
    assert busy["max_rss_mb"].value > 1
    assert busy["context_switches"].value == (busy["voluntary_context_switches"].value
                                              + busy["involuntary_context_switches"].value)


def test_minor_faults_when_touching_new_memory():
    sc = SoftwareCounters(system=False)
    sc.start()
    sc.read()
    a = np.ones(32 * 1024 * 1024 // 8)
    r = sc.read()
    assert a.sum() > 0
    assert r["minor_faults"].value >= 8
    assert "system_cpu_percent" not in r


def test_read_before_start_is_an_error():
    with pytest.raises(PerfmodelError):
        SoftwareCounters().read()


def test_available_sources_lists_every_source_with_a_reason():
    sources = available_sources()
    names = [s["name"] for s in sources]
    assert any("hardware events" in n for n in names)
    assert any("software events" in n for n in names)
    assert any("perf CLI" in n for n in names)
    assert any("valgrind" in n for n in names)
    assert any("psutil" in n for n in names)
    for s in sources:
        assert set(s) == {"name", "available", "reason", "events"}
        assert isinstance(s["available"], bool) and s["reason"]
        if not s["available"]:
            assert s["events"] == []
    from perfmodel.counters.perf_event import core_pmus

    hw = next(s for s in sources if s["name"].startswith("hardware events"))
    if not core_pmus():
        assert not hw["available"] and "no PMU exposed to this VM" in hw["reason"]


def test_open_counters():
    with pytest.raises(UnknownNameError):
        open_counters("bogus")
    sw = open_counters("software")
    assert isinstance(sw, SoftwareCounters)
    with pytest.raises(PerfmodelError, match="not running under valgrind"):
        open_counters("valgrind")
    auto = open_counters("auto", ["task-clock", "instructions"])
    try:
        auto.start()
        _burn(0.02)
        r = auto.read()
    finally:
        auto.close()
    assert all(isinstance(v, Reading) for v in r.values())
    assert r["cpu_percent"].available
    if isinstance(auto, CounterSet):  # perf_event_open works here
        assert r["task_clock_ms"].available and r["task_clock_ms"].value >= 15
        assert "instructions" in r  # counted or missing with its reason
        assert r["instructions"].available or r["instructions"].reason
