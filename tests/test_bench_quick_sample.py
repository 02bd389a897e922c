"""benchmarks/bench_quick_sample.py: option checks and the paired --compare-seconds mode (no measurement:
the sample and the trace are stand-ins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bench():
    from conftest import load_benchmark

    return load_benchmark("bench_quick_sample")


MODEL = str(ROOT / "trained" / "throughput_reference.json")


@pytest.mark.parametrize("argv, why", [
    (["--compare-seconds", "3", "--trace", "x"], "--compare-seconds goes with --fresh-trace"),
    (["--fresh-trace", "30", "--compare-seconds", "3", "--seconds", "2"], "--compare-seconds goes with"),
    (["--fresh-trace", "30", "--seconds", "0"], "--seconds must be more than 0"),
    (["--fresh-trace", "30", "--compare-seconds", "11"], "--compare-seconds must be more than 0"),
])
def test_refuses_bad_options(bench, capsys, argv, why):
    assert bench.main(["--model", MODEL, *argv]) == 2
    assert why in capsys.readouterr().out


def test_compare_seconds_scores_both_samples_against_one_long_run(bench, tmp_path, monkeypatch):
    calls = []

    def estimate(model, args, fw, net, thr, seconds=None):
        calls.append((net, seconds))
        quick = 110.0 if seconds is None else 102.0
        return {"pred": {"pred": 95.0, "lo": 90.0, "hi": 120.0}, "quick_fps": quick,
                "from_sample": {"pred": quick * 0.98, "lo": quick * 0.9, "hi": quick * 1.05, "ratio": 0.98,
                                "traces_from": "fake traces"},
                "note": "fake counts", "counted_images": 10 if seconds is None else 300}

    def fresh_long_run(fw, net, thr, args, rnd):
        calls.append((net, "trace"))
        return {"framework": fw, "network": net, "threads": thr, "cell_id": f"{fw}__{net}", "long_run_fps": 100.0}

    monkeypatch.setattr(bench, "estimate", estimate)
    monkeypatch.setattr(bench, "fresh_long_run", fresh_long_run)
    out = tmp_path / "rows.json"
    rc = bench.main(["--model", MODEL, "--fresh-trace", "30", "--compare-seconds", "3", "--rounds", "2",
                     "--cell", "onnxruntime:googlenet:1", "--json", str(out)])
    assert rc == 0
    # both samples come before the trace, in alternating order by round
    assert calls == [("googlenet", None), ("googlenet", 3.0), ("googlenet", "trace"),
                     ("googlenet", 3.0), ("googlenet", None), ("googlenet", "trace")]
    doc = json.loads(out.read_text())
    assert doc["compare_seconds"] == 3.0 and len(doc["rows"]) == 2
    r = doc["rows"][0]
    assert r["naive_error_pct"] == pytest.approx(10.0) and r["timed_naive_error_pct"] == pytest.approx(2.0)
    assert r["from_sample_error_pct"] == pytest.approx(7.8) and r["timed_from_sample_error_pct"] == pytest.approx(-0.04)
    assert r["counted_images"] == 10 and r["timed_counted_images"] == 300
    assert [x["sample_order"] for x in doc["rows"]] == ["images first", "timed first"]
