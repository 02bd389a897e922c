"""Power-analyzer logs: formats, alignment by clock offset, and fuzzed text parsers."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel.errors import InputFileError
from perfmodel.sensors import Sampler, read_sensors
from perfmodel.sensors.base import (
    parse_int,
    parse_vcgencmd_clock,
    parse_vcgencmd_temp,
    parse_vcgencmd_throttled,
)
from perfmodel.sensors.frequency import parse_cpu_list, parse_hex
from perfmodel.sensors.powerlog import load_power_log, parse_power_log_text


def test_generic_time_power():
    log = parse_power_log_text("time_s,power_w\n0,2.0\n1,4.0\n2,4.0\n")
    assert log.provenance["power_w"] == "external"
    assert log.at(0.5)["power_w"].value == pytest.approx(3.0)
    # time-weighted mean over [0, 2]: (3*1 + 4*1) / 2
    assert log.mean(0.0, 2.0)["power_w"].value == pytest.approx(3.5)


def test_timestamp_current_voltage_derives_power_and_units():
    log = parse_power_log_text("timestamp,current_ma,voltage_v\n10.0,500,5.0\n10.5,700,5.0\n")
    r = log.at(10.0)
    assert r["power_w"].value == pytest.approx(2.5) and r["power_w"].provenance == "derived"
    assert r["current_a"].value == pytest.approx(0.5) and r["current_a"].provenance == "external"


def test_otii_export():
    text = "Timestamp (s),Main current (A),Main voltage (V)\n0.000,0.40,5.1\n0.001,0.42,5.1\n0.002,0.44,5.1\n"
    log = parse_power_log_text(text, "otii.csv")
    assert log.at(0.001)["power_w"].value == pytest.approx(0.42 * 5.1)
    assert log.source == "power log otii.csv"


def test_keysight_datalog_with_sample_interval():
    text = ("Keysight N6705C datalog\nSample interval (ms),100\nStart time,2024-01-01 10:00:00\n\n"
            "Sample,Curr avg 1,Volt avg 1\n0,0.5,5.0\n1,0.6,5.0\n2,0.7,5.0\n")
    log = parse_power_log_text(text)
    assert list(log.t) == pytest.approx([0.0, 0.1, 0.2])
    assert log.at(0.1)["power_w"].value == pytest.approx(3.0)
    assert "interval" in log.fmt


def test_semicolon_and_iso_times():
    text = "time;power (mW)\n2024-01-01T00:00:00+00:00;1500\n2024-01-01T00:00:01+00:00;2500\n"
    log = parse_power_log_text(text)
    t0 = log.t[0]
    assert log.at(t0 + 0.5)["power_w"].value == pytest.approx(2.0)


def test_offset_alignment_and_outside_is_nan():
    log = parse_power_log_text("time_s,power_w\n100,1\n101,3\n")
    # our time 0.5 is log time 100.5
    assert log.at(0.5, offset_s=100.0)["power_w"].value == pytest.approx(2.0)
    r = log.at(5.0, offset_s=100.0)["power_w"]
    assert not r.available and "outside the power log" in r.reason
    r = log.mean(0.5, 1.5, offset_s=100.0)["power_w"]  # partly outside: not a number
    assert not r.available


def test_garbled_cells_are_missing_and_rows_without_time_dropped():
    log = parse_power_log_text("time_s,power_w\n0,1\nxx,5\n1,oops\n2,3\n")
    assert len(log.t) == 3 and any("dropped" in n for n in log.notes)
    assert log.at(1.0)["power_w"].value == pytest.approx(2.0)  # between the two readable samples


@pytest.mark.parametrize("text", ["", "a,b\n1,2\n", "power_w\n1\n2\n", "time_s,power_w\n", "time_s,power_w\n2,1\n1,1\n"])
def test_unusable_logs_raise_input_file_error(text):
    with pytest.raises(InputFileError):
        parse_power_log_text(text)


def test_load_missing_file(tmp_path):
    with pytest.raises(InputFileError):
        load_power_log(tmp_path / "nope.csv")


def test_read_sensors_and_sampler_with_log(tmp_path):
    now = time.monotonic()
    lines = ["time_s,power_w"] + [f"{now - 5 + i * 0.01:.4f},{2.0 + (i % 2)}" for i in range(2000)]
    p = tmp_path / "log.csv"
    p.write_text("\n".join(lines) + "\n")
    snap = read_sensors(tmp_path, power_log=p)
    assert snap["power_w"].available and snap["power_w"].provenance == "external"
    assert 2.0 <= snap["power_w"].value <= 3.0
    with Sampler(0.02, root=tmp_path, power_log=p) as s:
        time.sleep(0.1)
    ts = [t for t, _ in s.samples()]
    r = s.window(ts[0], ts[-1])["power_w"]
    assert r.value == pytest.approx(2.5, abs=0.1)
    # an offset that moves us off the log: NaN + reason
    snap = read_sensors(tmp_path, power_log=p, power_log_offset_s=1e6)
    assert not snap["power_w"].available and "outside" in snap["power_w"].reason


# --- fuzz: the text parsers never raise and never make up a value ----------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_small_parsers(text):
    v, reason = parse_int(text)
    assert (v is None) != (reason is None)
    if v is not None:
        assert str(v) in text
    for fn in (parse_vcgencmd_temp, parse_vcgencmd_clock, parse_vcgencmd_throttled, parse_hex):
        v, reason = fn(text)
        assert (v is None) != (reason is None)
        if v is not None:
            assert isinstance(v, (int, float)) and math.isfinite(v)
    cpus = parse_cpu_list(text)
    assert cpus is None or all(isinstance(c, int) and c >= 0 for c in cpus)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.text(max_size=8), st.floats(allow_nan=True).map(str)), max_size=4),
                max_size=8),
       st.sampled_from(["time_s,power_w", "timestamp,current_a,voltage_v", "Sample,Curr avg 1,Volt avg 1", ""]))
def test_fuzz_power_log(rows, header):
    text = header + "\n" + "\n".join(",".join(r) for r in rows)
    try:
        log = parse_power_log_text(text)
    except InputFileError:
        return
    numbers = set()
    for r in rows:
        for c in r:
            try:
                numbers.add(float(c))
            except ValueError:
                pass
    for m, arr in log.columns.items():
        for v in arr:
            if math.isnan(v) or m == "power_w" and log.provenance[m] == "derived":
                continue
            assert any(math.isclose(v, n * s, rel_tol=1e-9) for n in numbers for s in (1, 1e-3, 1e-6))
    r = log.at(float(log.t[0]))
    assert set(r) == set(log.columns)


# --- a bad log is refused up front; inside a worker it never costs the other sensors --------------------


def test_campaign_spec_refuses_a_malformed_power_log_with_the_parsers_message(tmp_path):
    from perfmodel.collect.spec import CampaignSpec

    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    with pytest.raises(InputFileError, match="no power log header"):
        CampaignSpec(frameworks=["onnxruntime"], power_log=str(bad)).validate()
    good = tmp_path / "good.csv"
    good.write_text("time_s,power_w\n0,1\n1,1\n")
    CampaignSpec(frameworks=["onnxruntime"], power_log=str(good)).validate()


@pytest.mark.parametrize("offset", [math.nan, math.inf, -math.inf])
def test_campaign_spec_refuses_a_non_finite_power_log_offset(tmp_path, offset):
    from perfmodel.collect.spec import CampaignSpec
    from perfmodel.errors import PerfmodelError

    with pytest.raises(PerfmodelError, match="power-log offset"):
        CampaignSpec(frameworks=["onnxruntime"], power_log_offset_s=offset).validate()


def test_trace_refuses_a_malformed_power_log_before_measuring(tmp_path):
    from perfmodel.collect import run_trace

    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    with pytest.raises(InputFileError, match="no power log header"):
        run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=1, period_s=0.5, power_log=str(bad),
                  progress=False)
    from perfmodel.errors import PerfmodelError

    with pytest.raises(PerfmodelError, match="power-log offset"):
        run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=1, period_s=0.5, power_log_offset_s=math.nan,
                  progress=False)


def test_sensor_window_with_an_unusable_log_keeps_temperature_and_frequency(tmp_path):
    """The worker's SensorWindow: a log that does not parse costs power (NaN + the parser's reason), never
    the machine's own temperature and frequency sensors."""
    from perfmodel.collect.meta import SensorWindow
    from perfmodel.sensors import read_sensors as read_here

    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    sw = SensorWindow(0.02, str(bad)).start()
    try:
        s0 = sw.snapshot()
        time.sleep(0.05)
        got = sw.window(s0, time.monotonic())
    finally:
        sw.stop()
    here = read_here()
    for m in ("temperature_c", "freq_mhz"):
        assert got[m].available == here[m].available, (m, got[m], here[m])
        if not got[m].available:
            assert "sampler unavailable" not in got[m].reason
    assert not got["power_w"].available and "no power log header" in got["power_w"].reason
    assert "power log" in (sw.status()["reason"] or "")


# --- the whole log is validated when read (before any cell is measured), naming the first bad line -------


@pytest.mark.parametrize("text, message", [
    ("# analyzer export\ntime_s,power_w\n0,1.5\n\n1,-0.2\n2,-3\n", "line 5: power value '-0.2' is negative"),
    ("time_s,power_w\n0,1.5\n1,inf\n", "line 3: power value 'inf' is not a finite number"),
    ("time_s,current_a,voltage_v\n0,0.5,5\n1,0.5,-5\n", "line 3: voltage value '-5' is negative"),
    ("time_s,power_w\n0,1\n1,1\n2,1\n0,1\n1,1\n", "line 5: time 0 s goes backwards"),
    ("time_s,power_w\n0,\n1,n/a\n", "no usable power value"),
])
def test_a_log_with_impossible_values_is_refused_naming_the_line(text, message):
    with pytest.raises(InputFileError, match=message):
        parse_power_log_text(text, "pm.csv")


def test_cli_collect_refuses_a_negative_power_log_before_measuring(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    log = tmp_path / "pm.csv"
    log.write_text("time_s,power_w\n" + "".join(f"{i},{2.0 if i != 7 else -2.0}\n" for i in range(100)))
    out = tmp_path / "ds"
    proc = subprocess.run([sys.executable, "-m", "perfmodel", "collect", "-o", str(out), "--frameworks", "onnxruntime",
                           "--power-log", str(log)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and "line 9: power value '-2.0' is negative" in proc.stderr
    assert not out.exists()  # nothing measured, nothing created
