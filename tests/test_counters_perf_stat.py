"""perf stat CSV parser (recorded and documented fixtures, fuzzing), runner, two-phase method."""

from __future__ import annotations

import math
import re
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfmodel.counters.perf_stat import (
    StatResult,
    canonical_name,
    parse_line,
    parse_perf_stat,
    read_perf_stat_file,
    run_perf_stat,
    split_event,
    two_phase,
    two_phase_from_results,
)
from perfmodel.errors import InputFileError, PerfmodelError

DATA = Path(__file__).parent / "data" / "perf"


# ---------------------------------------------------------------------------------- recorded output


def test_recorded_software_events():
    res = read_perf_stat_file(DATA / "sw_events.txt")
    assert not res.skipped and res.comments[0].startswith("# started on")
    r = res.readings()
    assert r["task_clock_ms"].value == 124.65 and r["task_clock_ms"].unit == "ms"
    assert r["page_faults"].value == 8537 and r["page_faults"].provenance == "software"
    assert r["context_switches"].value == 92
    row = res.totals()["task-clock"]
    assert row.run_time_ns == 124647218 and row.percent_running == 100.0
    assert row.metric_value == 0.983 and row.metric_unit == "CPUs utilized"
    assert not row.multiplexed


def test_recorded_hardware_events_not_supported():
    res = read_perf_stat_file(DATA / "hw_not_supported.txt")
    rows = res.totals()
    assert rows["cycles"].status == "not supported" and math.isnan(rows["cycles"].value)
    assert rows["cycles"].run_time_ns == 0 and rows["cycles"].percent_running == 100.0  # kept
    r = res.readings()
    for name in ("cycles", "instructions", "l1d_refills", "llc_misses", "dtlb_refills", "branch_misses"):
        assert not r[name].available and "not supported" in r[name].reason
    assert r["task_clock_ms"].available


def test_recorded_interval_mode():
    res = read_perf_stat_file(DATA / "sw_interval.txt")
    assert res.interval_mode
    ivals = res.intervals()
    assert len(ivals) == 5 and ivals[0][0] == pytest.approx(0.053064930)
    assert {r.event for r in ivals[0][1]} == {"task-clock", "page-faults", "context-switches", "instructions"}
    tot = res.totals()
    assert tot["page-faults"].value == 7430 + 1149 + 0 + 0 + 6
    assert tot["instructions"].status == "not supported"


def test_recorded_repeat_with_variance_and_modifier():
    res = read_perf_stat_file(DATA / "sw_repeat.txt")
    row = res.totals()["task-clock"]
    assert row.variance_percent == 1.69 and row.run_time_ns == 95395726 and row.percent_running == 100.0
    assert res.readings()["instructions"].reason.startswith("not supported")


# ---------------------------------------------------------------------------------- documented format


def test_documented_arm_multiplexed_and_not_counted():
    res = read_perf_stat_file(DATA / "doc_arm_a53.txt", machine="aarch64")
    tot = res.totals()
    assert tot["cycles"].multiplexed and tot["cycles"].percent_running == 67.08
    assert tot["cycles"].value == 1702334561  # perf already scaled it: kept as is
    assert tot["r05"].status == "not counted"
    r = res.readings()
    assert r["l2d_accesses"].value == 40123998 and r["l2d_accesses"].provenance == "real"
    assert r["l2d_refills"].value == 3001245
    assert r["l1d_accesses"].value == 412008331  # armv8_pmuv3_0/l1d_cache/
    assert r["l1d_refills"].value == 9087123
    assert not r["dtlb_refills"].available and "not counted" in r["dtlb_refills"].reason
    assert not r["llc_accesses"].available


def test_documented_interval_hardware():
    res = read_perf_stat_file(DATA / "doc_interval_hw.txt", machine="aarch64")
    tot = res.totals()
    assert tot["instructions"].value == 120034512 + 118990001
    assert tot["r17"].value == 301202  # one interval not counted: only the counted one
    assert tot["r16"].percent_running == 50.0 and tot["r16"].multiplexed


def test_documented_quirks():
    res = read_perf_stat_file(DATA / "doc_quirks.txt")
    by_event = {r.event: r for r in res.rows}
    assert by_event["cpu_core/instructions/"].value == 812345678
    assert by_event["cpu_atom/instructions/"].status == "not counted"
    assert by_event["cpu/event=0xd1,umask=0x20/u"].value == 7741
    assert by_event["cpu/event=0xd1,umask=0x20/u"].percent_running == 83.25
    extra = by_event["instructions:u"]
    assert extra.value == 1234 and extra.percent_running == 100.0 and math.isnan(extra.metric_value)
    truncated = by_event["branch-misses"]
    assert truncated.value == 999 and math.isnan(truncated.run_time_ns) and math.isnan(truncated.percent_running)
    assert by_event["L1-dcache-load-misses"].run_time_ns == 4000
    assert math.isnan(by_event["L1-dcache-load-misses"].percent_running)
    assert [no for no, _ in res.skipped] == [10]


def test_hybrid_events_are_summed_over_core_types():
    text = "100,,cpu_core/instructions/,10,100.00,,\n50,,cpu_atom/instructions/,10,100.00,,\n"
    r = parse_perf_stat(text).readings()
    assert r["instructions"].value == 150
    text = "<not counted>,,cpu_core/cycles/,0,0.00,,\n<not counted>,,cpu_atom/cycles/,0,0.00,,\n"
    assert not parse_perf_stat(text).readings()["cycles"].available


def test_split_event_and_canonical_names():
    assert split_event("instructions:u") == ("", "instructions", "u")
    assert split_event("cpu_core/instructions/") == ("cpu_core", "instructions", "")
    assert split_event("cpu/event=0x16,umask=0x1/uk") == ("cpu", "event=0x16,umask=0x1", "uk")
    assert canonical_name("armv8_pmuv3_0/l2d_cache_refill/") == "l2d_refills"
    assert canonical_name("r16", machine="aarch64") == "l2d_accesses"
    assert canonical_name("r16", machine="x86_64") == "r16"
    assert canonical_name("armv8_pmuv3/event=0x16/", machine="aarch64") == "l2d_accesses"
    assert canonical_name("cache-misses", machine="aarch64") == "l1d_refills"


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputFileError):
        read_perf_stat_file(tmp_path / "nope.txt")


def test_other_separator():
    row = parse_line("12;msec;task-clock;100;100.00;;", sep=";")
    assert row.value == 12 and row.unit == "msec"


# ---------------------------------------------------------------------------------- fuzzing

_NUM_IN_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _numbers_in(text: str) -> set[float]:
    out = set()
    for m in _NUM_IN_TEXT.finditer(text):
        try:
            out.add(float(m.group()))
        except (ValueError, OverflowError):
            pass
    return out


def _assert_no_made_up_values(text: str, res: StatResult) -> None:
    allowed = _numbers_in(text)
    for row in res.rows:
        for v in (row.value, row.run_time_ns, row.percent_running, row.variance_percent, row.metric_value,
                  row.timestamp_s):
            assert math.isnan(v) or v in allowed, (v, text)
        assert row.event and row.event in text
        if row.status != "ok":
            assert math.isnan(row.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("0123456789.,-+e<>#/:%_ \nabcdefghilmnorstuvxCPU")), max_size=300))
def test_fuzz_text_never_raises_never_invents(text):
    res = parse_perf_stat(text)
    _assert_no_made_up_values(text, res)
    res.totals()
    res.readings()


_value = st.one_of(
    st.integers(min_value=0, max_value=10**15).map(str),
    st.floats(min_value=0, max_value=1e12, allow_nan=False).map(lambda f: f"{f:.2f}"),
    st.sampled_from(["<not supported>", "<not counted>", "", "abc", "1e5"]),
)
_event = st.sampled_from(["instructions", "cycles", "instructions:u", "cpu_core/instructions/", "r16",
                          "armv8_pmuv3_0/l2d_cache/", "cpu/event=0x16,umask=0x1/", "task-clock", "L1-dcache-load-misses",
                          "", "page-faults"])
_row = st.tuples(
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e5, allow_nan=False).map(lambda f: f"{f:14.9f}")),
    _value, st.sampled_from(["", "msec"]), _event,
    st.lists(st.one_of(st.integers(0, 10**12).map(str), st.sampled_from(["100.00", "66.67", "0.00", "", "1.5%",
                                                                          "CPUs utilized", "insn per cycle"])),
             max_size=7),
    st.integers(min_value=0, max_value=80),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_row, max_size=12), st.booleans())
def test_fuzz_structured_rows(rows, comments):
    lines = []
    for ts, value, unit, event, rest, cut in rows:
        fields = ([ts] if ts is not None else []) + [value, unit, event] + rest
        line = ",".join(fields)
        if cut and cut < len(line):
            line = line[:cut]  # truncated line
        lines.append(line)
        if comments:
            lines.append("# comment 12,34")
            lines.append("")
    text = "\n".join(lines)
    res = parse_perf_stat(text)
    _assert_no_made_up_values(text, res)
    res.totals()
    res.readings()
    # well-formed, untruncated rows with a known event are parsed with the right value
    for ts, value, unit, event, rest, cut in rows:
        if event and value.replace(".", "", 1).isdigit() and not cut and ts is None and "," not in event:
            line = ",".join([value, unit, event] + rest)
            row = parse_line(line)
            assert row is not None and row.value == float(value) and row.event == event


# ---------------------------------------------------------------------------------- two-phase


def _stat(insn, task, pct=100.0):
    text = (f"{task},msec,task-clock,1000,100.00,,\n"
            + (f"{insn},,instructions,1000,{pct:.2f},,\n" if insn is not None else
               "<not supported>,,instructions,0,100.00,,\n"))
    return parse_perf_stat(text)


def test_two_phase_arithmetic():
    full = [_stat(1_100_000, 300.0), _stat(1_120_000, 310.0), _stat(1_090_000, 305.0, pct=80.0)]
    load = [_stat(100_000, 100.0), _stat(100_000, 100.0), _stat(110_000, 105.0)]
    res = two_phase_from_results(full, load, n_images=10)
    insn = res["instructions"]
    assert insn.per_image == (100_000.0, 102_000.0, 98_000.0)
    assert insn.mean == pytest.approx(100_000.0)
    assert insn.std == pytest.approx(2000.0)
    assert insn.multiplexed
    assert res["task_clock_ms"].per_image == (20.0, 21.0, 20.0)
    assert res["task_clock_ms"].reading().provenance == "software"
    reading = insn.reading()
    assert reading.value == pytest.approx(100_000.0) and reading.provenance == "real"


def test_two_phase_missing_event_stays_missing():
    res = two_phase_from_results([_stat(None, 300.0)], [_stat(None, 100.0)], n_images=4)
    assert math.isnan(res["instructions"].mean) and math.isnan(res["instructions"].std)
    reading = res["instructions"].reading()
    assert not reading.available and "not supported" in reading.reason
    assert res["task_clock_ms"].mean == pytest.approx(50.0)
    assert math.isnan(res["task_clock_ms"].std)  # one repeat: no std


def test_two_phase_rejects_bad_arguments():
    with pytest.raises(PerfmodelError):
        two_phase_from_results([_stat(1, 1)], [_stat(1, 1)], n_images=0)
    with pytest.raises(PerfmodelError):
        two_phase_from_results([_stat(1, 1)], [], n_images=1)


def test_two_phase_runner_alternates_full_and_load():
    calls = []

    def fake_runner(cmd, events, **kw):
        calls.append(cmd[0])
        return _stat(5000 if cmd[0] == "full" else 1000, 10.0)

    res = two_phase(["full"], ["load"], 4, ["instructions"], repeats=2, runner=fake_runner)
    assert calls == ["full", "load", "full", "load"]
    assert res["instructions"].mean == 1000.0


# ---------------------------------------------------------------------------------- real perf stat

needs_perf = pytest.mark.skipif(shutil.which("perf") is None, reason="perf not installed")


@needs_perf
def test_run_perf_stat_software_and_hardware():
    res = run_perf_stat([sys.executable, "-c", "sum(range(2_000_000))"], ["task_clock_ms", "page-faults",
                                                                          "instructions"])
    r = res.readings()
    assert res.returncode == 0
    assert r["task_clock_ms"].available and r["task_clock_ms"].value > 1.0
    assert r["page_faults"].value > 0
    assert r["instructions"].available or "not supported" in r["instructions"].reason


@needs_perf
def test_run_perf_stat_interval_mode():
    res = run_perf_stat([sys.executable, "-c", "import time; t=time.time()\nwhile time.time()-t<0.2: pass"],
                        ["task-clock"], interval_ms=50)
    assert res.interval_mode and len(res.intervals()) >= 2


def test_run_perf_stat_validates_arguments():
    if shutil.which("perf") is None:
        with pytest.raises(PerfmodelError, match="not found"):
            run_perf_stat(["true"], ["task-clock"])
        return
    with pytest.raises(PerfmodelError, match=">= 10 ms"):
        run_perf_stat(["true"], ["task-clock"], interval_ms=5)
    with pytest.raises(PerfmodelError):
        run_perf_stat([], ["task-clock"])
    with pytest.raises(PerfmodelError):
        run_perf_stat(["true"], ["task-clock"], perf="no-such-perf-binary")
