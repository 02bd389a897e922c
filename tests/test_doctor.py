"""``perfmodel doctor`` on this machine."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from perfmodel.cli.app import app



def test_doctor_json_and_table():
    runner = CliRunner()
    res = runner.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert set(report) >= {"system", "libraries", "frameworks", "counters", "sensors", "sensor_readings"}
    assert {f["framework"] for f in report["frameworks"]} == {"tensorflow", "litert", "onnxruntime", "opencv"}
    for f in report["frameworks"]:
        assert f["reason"]
        if f["importable"]:
            assert f["version"]
    hw = [c for c in report["counters"] if c["name"].startswith("hardware events")]
    assert hw and all(c["reason"] for c in hw)
    from perfmodel.sysinfo import system_info

    if system_info()["virtualised"]:  # this VM exposes no PMU: reported unavailable, with the reason
        assert not any(c["available"] for c in hw)
    kinds = {s["kind"] for s in report["sensors"]}
    assert kinds == {"temperature", "frequency", "power", "throttle"}
    assert all(s["reason"] for s in report["sensors"])
    for name in ("temperature_c", "freq_mhz", "power_w"):
        r = report["sensor_readings"][name]
        assert r["value"] is not None or r["reason"]

    res = runner.invoke(app, ["doctor"])
    assert res.exit_code == 0
    for title in ("frameworks", "counter sources", "sensor sources", "system"):
        assert title in res.stdout


def test_doctor_help():
    res = CliRunner().invoke(app, ["doctor", "--help"])
    assert res.exit_code == 0 and "--json" in res.stdout and "framework" in res.stdout.lower()
