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
    t_a = time.perf_counter()
    with SoftwareCounters() as sc:
        t_b = time.perf_counter()
        _burn(0.1)
        t_c = time.perf_counter()
        busy = sc.read()
        t_d = time.perf_counter()
        time.sleep(0.1)
        idle = sc.read()
    cpu_ms = busy["user_time_ms"].value + busy["system_time_ms"].value
    assert cpu_ms >= 90
    # CPU % = CPU time / wall time of the counters' interval, which began between t_a and t_b and ended
    # between t_c and t_d: bracketed, so a preemption anywhere (a loaded machine) cannot break the check
    lo, hi = 100 * cpu_ms / ((t_d - t_a) * 1e3), 100 * cpu_ms / ((t_c - t_b) * 1e3)
    assert lo * 0.99 <= busy["cpu_percent"].value <= hi * 1.01, (lo, busy["cpu_percent"].value, hi)
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


def test_busy_percent_rounding_is_zero_but_a_real_step_back_is_missing():
    from perfmodel.counters.software import busy_percent

    # psutil busy time = total - idle of float sums: an idle interval can be -2.6e-9 s (seen in a campaign)
    r = busy_percent(-2.59e-9, 0.2, "psutil", total_s=0.4, ncpu=2)
    assert r.value == 0.0 and r.reason is None
    r = busy_percent(0.1, 0.2, "psutil", total_s=0.4, ncpu=2)
    assert r.value == 50.0
    back = busy_percent(-0.5, 0.2, "psutil", total_s=0.4, ncpu=2)
    assert back.value != back.value and "backwards" in back.reason


def test_peak_rss_prefers_vm_hwm_over_inherited_ru_maxrss(tmp_path):
    import resource

    from perfmodel.counters.software import peak_rss

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  999999 kB\nVmHWM:\t   204800 kB\nVmRSS:\t  100000 kB\n")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    r = peak_rss(ru, str(status))
    assert r.value == 200.0 and "VmHWM" in r.source
    fallback = peak_rss(ru, str(tmp_path / "absent"))
    assert fallback.value == ru.ru_maxrss / 1024.0 and "upper bound" in fallback.source


# --- system_cpu_percent: psutil.cpu_times counts in clock ticks (10 ms at USER_HZ=100) ---------------------


def test_system_cpu_percent_is_bounded_by_the_machine_and_nan_when_too_short():
    """A 7-ms image with 2 busy ticks gave 285 % on a 2-CPU machine (busy / wall of quantised ticks): an
    interval shorter than MIN_TICKS clock ticks is NaN + reason, and a long one is busy / total of all CPUs
    x 100 x ncpu, so it can never exceed 100 x ncpu."""
    import math

    from perfmodel.counters.software import MIN_TICKS, busy_percent, clock_tick_s

    tick = clock_tick_s()
    short = busy_percent(0.02, 0.007, "psutil", total_s=0.02, ncpu=2)
    assert math.isnan(short.value) and "too short" in short.reason and "tick" in short.reason
    wall = MIN_TICKS * tick
    # quantised: 2 x wall of busy ticks counted (+ one tick too many) -> busy / wall would be 220 %
    r = busy_percent(2 * wall + tick, wall, "psutil", total_s=2 * wall + tick, ncpu=2)
    assert r.value == pytest.approx(200.0) and r.provenance == "software"
    r = busy_percent(wall, wall, "psutil", total_s=2 * wall, ncpu=2)
    assert r.value == pytest.approx(100.0)
    nothing = busy_percent(0.0, wall, "psutil", total_s=0.0, ncpu=2)
    assert math.isnan(nothing.value) and nothing.reason


def test_system_cpu_percent_per_image_reads_never_exceed_100_x_ncpu():
    """Per-image reads of a few ms (the campaign's per-image counter reads)."""
    import math

    import psutil

    ncpu = psutil.cpu_count() or 1
    sc = SoftwareCounters()
    sc.start()
    values = []
    for _ in range(40):
        _burn(0.007)
        r = sc.read()["system_cpu_percent"]
        assert r.available or r.reason
        values.append(r.value)
    got = [v for v in values if not math.isnan(v)]
    assert all(0 <= v <= 100 * ncpu for v in got), got
    # and a long interval is measured
    _burn(0.3)
    long = sc.read()["system_cpu_percent"]
    assert long.available and 0 < long.value <= 100 * ncpu


def test_system_cpu_between_snapshots_for_a_cell():
    """The cell-level figure (worker) uses the same rule: busy / total, NaN for a cell too short to resolve."""
    import math

    from perfmodel.counters.software import MIN_TICKS, clock_tick_s, system_cpu_between

    tick = clock_tick_s()
    wall = 2 * MIN_TICKS * tick
    r = system_cpu_between((10.0, 20.0), (10.0 + 2 * wall + 2 * tick, 20.0 + 2 * wall + 2 * tick), wall, ncpu=2)
    assert r.value == pytest.approx(200.0)
    short = system_cpu_between((10.0, 20.0), (10.02, 20.02), 0.021, ncpu=2)
    assert math.isnan(short.value) and "too short" in short.reason
    none = system_cpu_between(None, (1.0, 2.0), wall)
    assert math.isnan(none.value) and "psutil" in none.reason
