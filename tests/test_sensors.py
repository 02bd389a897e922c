"""Sensor sources on fake sysfs trees (thermal, cpufreq, hwmon INA219/INA3221, RAPL) and a fake vcgencmd."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.sensors import Sampler, SensorSet, decode_throttled, discover, read_sensors
from perfmodel.sensors.base import SysfsFile
from perfmodel.sensors.power import energy_delta_uj


def w(root: Path, rel: str, text: str) -> Path:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def pi_tree(root: Path) -> Path:
    """A Raspberry Pi 3-like tree: one CPU thermal zone, one cpufreq policy for 4 CPUs, an INA219."""
    w(root, "/sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    w(root, "/sys/class/thermal/thermal_zone0/temp", "48312\n")
    pol = "/sys/devices/system/cpu/cpufreq/policy0"
    w(root, f"{pol}/scaling_cur_freq", "1200000\n")
    w(root, f"{pol}/affected_cpus", "0 1 2 3\n")
    w(root, f"{pol}/scaling_governor", "ondemand\n")
    w(root, f"{pol}/scaling_min_freq", "600000\n")
    w(root, f"{pol}/scaling_max_freq", "1200000\n")
    hw = "/sys/class/hwmon/hwmon0"
    w(root, f"{hw}/name", "ina219\n")
    w(root, f"{hw}/in0_input", "12\n")      # shunt voltage (mV)
    w(root, f"{hw}/in1_input", "5100\n")    # bus voltage (mV)
    w(root, f"{hw}/curr1_input", "500\n")   # mA
    w(root, f"{hw}/power1_input", "2550000\n")  # uW
    return root


def no_cmd(argv):
    raise FileNotFoundError(argv[0])


def test_pi_tree_snapshot(tmp_path):
    root = pi_tree(tmp_path)
    snap = read_sensors(root, runner=no_cmd)
    assert snap["temperature_c"].value == pytest.approx(48.312)
    assert snap["temperature_c"].provenance == "real"
    assert "thermal_zone0" in snap["temperature_c"].source
    assert snap["freq_mhz"].value == pytest.approx(1200.0)
    assert "mean of 4 CPUs" in snap["freq_mhz"].source
    assert snap["power_w"].value == pytest.approx(2.55)
    assert snap["power_w"].provenance == "real"
    assert snap["voltage_v"].value == pytest.approx(5.1)
    assert snap["current_a"].value == pytest.approx(0.5)
    # vcgencmd "exists" (a runner was given) but fails: throttled present, NaN with the reason
    assert not snap["throttled"].available and "vcgencmd failed" in snap["throttled"].reason


def test_empty_tree_gives_nan_with_reasons(tmp_path):
    snap = read_sensors(tmp_path)
    for key in ("temperature_c", "freq_mhz", "power_w"):
        assert math.isnan(snap[key].value) and snap[key].reason
    assert "no thermal zone" in snap["temperature_c"].reason
    entries = discover(tmp_path)
    assert {e["kind"] for e in entries} == {"temperature", "frequency", "power", "throttle"}
    assert all(set(e) == {"kind", "name", "source", "available", "reason", "path_or_command"} for e in entries)
    assert not any(e["available"] for e in entries)
    assert all(e["reason"] for e in entries)


@pytest.mark.parametrize("content", ["", "\n", "48x12\n", "4831", "48.3\n", "\x00\x00", "123 456\n", "\xff"])
def test_garbled_sysfs_files_are_nan_never_numbers(tmp_path, content):
    root = pi_tree(tmp_path)
    # replace every value file with the garbled content
    for rel in ("sys/class/thermal/thermal_zone0/temp", "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq",
                "sys/class/hwmon/hwmon0/power1_input", "sys/class/hwmon/hwmon0/in1_input",
                "sys/class/hwmon/hwmon0/curr1_input"):
        (root / rel).write_bytes(content.encode("latin-1"))
    snap = SensorSet(root).read()
    if content == "4831":  # a plausible integer without newline: a value
        assert snap["temperature_c"].value == pytest.approx(4.831)
        return
    for key in ("temperature_c", "freq_mhz", "power_w", "voltage_v", "current_a"):
        assert math.isnan(snap[key].value), (key, snap[key])
        assert snap[key].reason


def test_sensor_that_fails_later_becomes_nan_then_recovers(tmp_path):
    root = pi_tree(tmp_path)
    sset = SensorSet(root)
    temp = root / "sys/class/thermal/thermal_zone0/temp"
    assert sset.read()["temperature_c"].available
    temp.write_text("")  # truncated
    r = sset.read()["temperature_c"]
    assert not r.available and "empty" in r.reason
    temp.write_text("50000\n")
    assert sset.read()["temperature_c"].value == pytest.approx(50.0)
    sset.close()


def test_hwmon_temperature_fallback_and_cpu_chip_first(tmp_path):
    w(tmp_path, "/sys/class/hwmon/hwmon0/name", "nvme\n")
    w(tmp_path, "/sys/class/hwmon/hwmon0/temp1_input", "30000\n")
    w(tmp_path, "/sys/class/hwmon/hwmon1/name", "coretemp\n")
    w(tmp_path, "/sys/class/hwmon/hwmon1/temp1_input", "garbage")
    w(tmp_path, "/sys/class/hwmon/hwmon1/temp2_input", "61000\n")
    w(tmp_path, "/sys/class/hwmon/hwmon1/temp2_label", "Core 0\n")
    r = read_sensors(tmp_path)["temperature_c"]
    assert r.value == pytest.approx(61.0) and "coretemp" in r.source and "Core 0" in r.source


def test_ina3221_channels_derive_power_from_same_channel(tmp_path):
    hw = "/sys/class/hwmon/hwmon2"
    w(tmp_path, f"{hw}/name", "ina3221\n")
    for ch, label, mv, ma in ((1, "VDD_GPU", 5000, 100), (2, "VDD_CPU", 5000, 300), (3, "VDD_IN", 5080, 900)):
        w(tmp_path, f"{hw}/in{ch}_label", f"{label}\n")
        w(tmp_path, f"{hw}/in{ch}_input", f"{mv}\n")
        w(tmp_path, f"{hw}/curr{ch}_input", f"{ma}\n")
    for ch in (4, 5, 6):  # shunt voltages: no current on these channels -> not power channels
        w(tmp_path, f"{hw}/in{ch}_input", "40\n")
    snap = read_sensors(tmp_path)
    # the board-input channel is preferred; power = V*I of that same channel, marked derived
    assert snap["power_w"].value == pytest.approx(5.08 * 0.9)
    assert snap["power_w"].provenance == "derived" and "VDD_IN" in snap["power_w"].source
    assert snap["voltage_v"].value == pytest.approx(5.08)
    assert snap["current_a"].value == pytest.approx(0.9)
    entries = [e for e in discover(tmp_path) if e["kind"] == "power" and e["available"]]
    assert len(entries) == 3


def test_current_without_voltage_gives_no_power(tmp_path):
    hw = "/sys/class/hwmon/hwmon0"
    w(tmp_path, f"{hw}/name", "ina3221\n")
    w(tmp_path, f"{hw}/curr1_input", "250\n")
    w(tmp_path, f"{hw}/in2_input", "5000\n")  # another channel's voltage: must not be paired
    snap = read_sensors(tmp_path)
    assert snap["current_a"].value == pytest.approx(0.25)
    assert not snap["power_w"].available
    assert "voltage_v" not in snap or not snap["voltage_v"].available


def test_rapl_two_samples_and_wraparound(tmp_path):
    z = "/sys/class/powercap/intel-rapl:0"
    w(tmp_path, f"{z}/name", "package-0\n")
    w(tmp_path, f"{z}/max_energy_range_uj", "1000000\n")
    energy = w(tmp_path, f"{z}/energy_uj", "900000\n")
    w(tmp_path, "/sys/class/powercap/intel-rapl:0:0/energy_uj", "5\n")  # subzone: not summed
    t = [100.0]
    sset = SensorSet(tmp_path, clock=lambda: t[0])  # discovery read = first sample
    energy.write_text("100000\n")  # wrapped: 900000 -> 1000000 -> 100000 = 200000 uJ
    t[0] = 102.0
    r = sset.read()["power_w"]
    assert r.value == pytest.approx(0.2 / 2.0) and r.provenance == "real"
    sset.close()
    sset = SensorSet(tmp_path, clock=lambda: t[0])
    sset.sources[0]._last = None
    r = sset.read()["power_w"]
    assert not r.available and "needs two samples" in r.reason
    sset.close()


def test_energy_delta_rules():
    assert energy_delta_uj(10, 30, 100) == (20, None)
    assert energy_delta_uj(90, 10, 100) == (20, None)
    assert energy_delta_uj(90, 10, None)[0] is None
    assert energy_delta_uj(200, 10, 100)[0] is None


def test_read_sensors_rapl_takes_two_reads(tmp_path):
    z = "/sys/class/powercap/intel-rapl:0"
    w(tmp_path, f"{z}/max_energy_range_uj", "262143328850\n")
    w(tmp_path, f"{z}/energy_uj", "1000\n")
    r = read_sensors(tmp_path, rapl_gap_s=0.1)["power_w"]
    # two reads were taken (not "needs two samples"); the counter did not move in 100 ms, which a real
    # package never does (a precaution: a hypervisor can expose an energy counter that never counts, as the
    # lent VM's perf power/energy-psys did): NaN + reason, not 0 W
    assert not r.available and math.isnan(r.value)
    assert "did not move" in r.reason and "intel-rapl:0" in r.reason and "needs two samples" not in r.reason


def test_rapl_counter_that_moves_after_a_stuck_interval(tmp_path):
    z = "/sys/class/powercap/intel-rapl:0"
    w(tmp_path, f"{z}/max_energy_range_uj", "262143328850\n")
    energy = w(tmp_path, f"{z}/energy_uj", "5000\n")
    t = [10.0]
    sset = SensorSet(tmp_path, clock=lambda: t[0])
    t[0] = 10.5
    assert "did not move in 500 ms" in sset.read()["power_w"].reason
    energy.write_text("1505000\n")
    t[0] = 11.0
    assert sset.read()["power_w"].value == pytest.approx(1.5 / 0.5)
    # a gap shorter than RAPL's update step: not judged, and the older baseline is kept for the next read
    t[0] = 11.01
    r = sset.read()["power_w"]
    assert not r.available and "may not have ticked yet" in r.reason
    energy.write_text("1705000\n")
    t[0] = 11.1
    assert sset.read()["power_w"].value == pytest.approx(0.2 / 0.1)  # from 11.0, not from 11.01
    sset.close()


def test_rapl_one_stuck_zone_is_not_hidden_in_the_sum(tmp_path):
    for n, e in ((0, "1000"), (1, "5000")):
        w(tmp_path, f"/sys/class/powercap/intel-rapl:{n}/name", f"package-{n}\n")
        w(tmp_path, f"/sys/class/powercap/intel-rapl:{n}/max_energy_range_uj", "262143328850\n")
    e0 = w(tmp_path, "/sys/class/powercap/intel-rapl:0/energy_uj", "1000\n")
    w(tmp_path, "/sys/class/powercap/intel-rapl:1/energy_uj", "5000\n")  # never moves
    t = [1.0]
    sset = SensorSet(tmp_path, clock=lambda: t[0])
    e0.write_text("2001000\n")
    t[0] = 2.0
    r = sset.read()["power_w"]
    assert not r.available and "package-1" in r.reason and "package-0" not in r.reason
    sset.close()


class FakeVcgencmd:
    def __init__(self, outputs):
        self.outputs = outputs
        self.calls = []

    def __call__(self, argv):
        self.calls.append(tuple(argv))
        out = self.outputs[tuple(argv[1:])]
        if isinstance(out, Exception):
            raise out
        return out


def test_vcgencmd_sources(tmp_path):
    vc = FakeVcgencmd({("measure_temp",): "temp=51.5'C\n", ("measure_clock", "arm"): "frequency(48)=1200000000\n",
                       ("get_throttled",): "throttled=0x50005\n"})
    snap = read_sensors(tmp_path, runner=vc)
    assert snap["temperature_c"].value == pytest.approx(51.5)
    assert snap["freq_mhz"].value == pytest.approx(1200.0)
    assert int(snap["throttled"].value) == 0x50005
    assert decode_throttled(0x50005) == ["under-voltage detected", "currently throttled",
                                         "under-voltage has occurred", "throttling has occurred"]
    assert decode_throttled(0) == []


@pytest.mark.parametrize("out", ["", "temp=abc'C", "frequency(48)=0", "error=2 error_msg=\"x\"", "throttled=0xZZ"])
def test_vcgencmd_garbage_is_nan(tmp_path, out):
    vc = FakeVcgencmd({("measure_temp",): out, ("measure_clock", "arm"): out, ("get_throttled",): out})
    snap = read_sensors(tmp_path, runner=vc)
    for key in ("temperature_c", "freq_mhz", "throttled"):
        assert not snap[key].available and snap[key].reason


def test_firmware_throttled_file_preferred(tmp_path):
    w(tmp_path, "/sys/devices/platform/soc/soc:firmware/get_throttled", "50000\n")
    vc = FakeVcgencmd({("measure_temp",): "", ("measure_clock", "arm"): "", ("get_throttled",): "throttled=0x1\n"})
    r = read_sensors(tmp_path, runner=vc)["throttled"]
    assert int(r.value) == 0x50000 and r.source == "firmware get_throttled"


def test_cpufreq_per_cpu_dirs_and_partial_failure(tmp_path):
    for cpu, khz in ((0, "600000\n"), (1, "1200000\n"), (2, "bad\n")):
        w(tmp_path, f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", khz)
    r = read_sensors(tmp_path)["freq_mhz"]
    assert r.value == pytest.approx(900.0)
    assert "2 CPUs" in r.source and "unreadable" in r.source


def test_psutil_source_labels_its_origin(tmp_path):
    from collections import namedtuple

    F = namedtuple("F", "current min max")
    w(tmp_path, "/proc/cpuinfo", "processor\t: 0\ncpu MHz\t\t: 2600.000\n")
    r = read_sensors(tmp_path, cpu_freq=lambda: F(2600.0, 0.0, 0.0))["freq_mhz"]
    assert r.value == 2600.0 and r.provenance == "software" and "/proc/cpuinfo" in r.source
    r = read_sensors(tmp_path, cpu_freq=lambda: None)["freq_mhz"]
    assert not r.available and r.reason


def test_sysfs_file_keeps_descriptor_and_rereads(tmp_path):
    p = w(tmp_path, "x", "1\n")
    f = SysfsFile(p)
    assert f.read_int() == (1, None)
    fd = f._fd
    p.write_text("22\n")
    assert f.read_int() == (22, None) and f._fd == fd
    p.unlink()
    assert f.read_int() == (22, None)  # still the open inode
    f.close()
    value, reason = f.read_int()
    assert value is None and "missing" in reason


def test_sampler_collects_and_windows(tmp_path):
    root = pi_tree(tmp_path)
    temp = root / "sys/class/thermal/thermal_zone0/temp"
    with Sampler(0.01, root=root) as s:
        assert s.running
        time.sleep(0.15)
        t_mid = time.monotonic()
        temp.write_text("60000\n")
        time.sleep(0.15)
    assert not s.running and s._thread is None
    samples = s.samples()
    assert len(samples) >= 6
    ts = [t for t, _ in samples]
    assert ts == sorted(ts)
    first = s.window(ts[0], t_mid - 0.02)["temperature_c"]
    second = s.window(t_mid + 0.05, ts[-1])["temperature_c"]
    assert first.value == pytest.approx(48.312) and second.value == pytest.approx(60.0)
    both = s.window(ts[0], ts[-1])["temperature_c"]
    assert 48.312 < both.value < 60.0
    assert s.window(ts[-1] + 10, ts[-1] + 11)["power_w"].reason.startswith("no sensor sample")
    rows = s.rows()
    assert {r["metric"] for r in rows} >= {"temperature_c", "freq_mhz", "power_w", "voltage_v", "current_a"}
    assert set(rows[0]) == {"t_s", "metric", "value", "unit", "source", "provenance", "reason"}
    count = len(s.samples())
    time.sleep(0.05)
    assert len(s.samples()) == count  # stopped: no more samples


def test_sampler_window_missing_metric_keeps_reason(tmp_path):
    root = pi_tree(tmp_path)
    with Sampler(0.02, root=root) as s:
        time.sleep(0.05)
    ts = [t for t, _ in s.samples()]
    r = s.window(ts[0], ts[-1])["throttled"] if "throttled" in s.samples()[0][1] else None
    assert r is None  # no throttle source under this root without a runner
    r = s.window(ts[0], ts[-1])["power_w"]
    assert r.available


def test_sampler_throttled_window_is_or_of_masks(tmp_path):
    f = w(tmp_path, "/sys/devices/platform/soc/soc:firmware/get_throttled", "1\n")
    t = [0.0]
    s = Sampler(0.01, root=tmp_path, clock=lambda: t[0])
    s.start()
    s._stop.set()  # manual sampling below, deterministic
    s._thread.join()
    for i, v in enumerate(("4\n", "10000\n")):
        t[0] = i + 1.0
        f.write_text(v)
        s._sample()
    s._thread = None
    s._set.close()
    r = s.window(0.5, 2.5)["throttled"]
    assert int(r.value) == 0x10004


@pytest.mark.parametrize("period", [0.001, 0.0, -1, 11, "x"])
def test_sampler_period_validated(period):
    with pytest.raises(PerfmodelError):
        Sampler(period)


def test_sampler_survives_a_raising_source(tmp_path):
    root = pi_tree(tmp_path)
    s = Sampler(0.01, root=root)
    s.start()

    def boom():
        raise RuntimeError("sensor exploded")

    s._set.sources[0].read = boom
    time.sleep(0.06)
    s.stop()
    last = s.samples()[-1][1]
    assert not last["temperature_c"].available and "sensor exploded" in last["temperature_c"].reason
    assert last["freq_mhz"].available


# --- short windows: snapshots at the edges; a sensor that does not exist says so ----------------------------


def test_sampler_snapshot_covers_a_window_shorter_than_the_period(tmp_path):
    """A 3-image cell lasts ~20 ms, far less than the 0.1 s period: snapshots taken right before and right
    after it (``snapshot()``), counted with ``margin_s``, give it the readings that exist."""
    root = pi_tree(tmp_path)
    with Sampler(10.0, root=root) as s:  # the thread will not sample during the test
        s0 = s.snapshot()
        t0 = time.monotonic()
        time.sleep(0.02)
        t1 = time.monotonic()
        s1 = s.snapshot()
        assert s0 <= t0 and s1 >= t1
        plain = s.window(t0, t1)
        edged = s.window(t0, t1, margin_s=max(t0 - s0, s1 - t1))
    assert not plain["temperature_c"].available and plain["temperature_c"].reason.startswith("no sensor sample")
    assert edged["temperature_c"].value == pytest.approx(48.312)
    assert edged["freq_mhz"].value == pytest.approx(1200.0)


def test_sampler_window_without_a_sample_gives_an_absent_sensor_its_own_reason(tmp_path):
    """No thermal zone at all: the reason is that, not the window's timing."""
    from perfmodel.sensors import ABSENT

    w(tmp_path, "/sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "1200000\n")
    with Sampler(10.0, root=tmp_path) as s:
        t = time.monotonic()
    r = s.window(t + 100, t + 101)
    assert r["temperature_c"].reason == ABSENT["temperature_c"]
    assert r["power_w"].reason == ABSENT["power_w"]
    assert r["freq_mhz"].reason.startswith("no sensor sample")  # the source exists: the window missed it
    edged = s.window(t - 1, t + 1)  # samples in the window: an absent sensor still reads as absent
    assert edged["temperature_c"].reason == ABSENT["temperature_c"]


def test_one_sensor_kind_failing_to_discover_costs_no_other(tmp_path, monkeypatch):
    import perfmodel.sensors as sensors

    root = pi_tree(tmp_path)

    def broken(_root):
        raise OSError("thermal zone listing failed")

    monkeypatch.setattr(sensors, "thermal_zones", broken)
    snap = read_sensors(root, runner=no_cmd)
    assert not snap["temperature_c"].available and "thermal zone listing failed" in snap["temperature_c"].reason
    assert snap["freq_mhz"].value == pytest.approx(1200.0)
    assert snap["power_w"].available
    entries = discover(root, runner=no_cmd)
    assert any("thermal zone listing failed" in e["reason"] and not e["available"] for e in entries)
