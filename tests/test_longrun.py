"""Long-run throughput from a quick sample: the long-run / start ratio of traces."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from perfmodel.data import records_from_readings, validate, write_dataset
from perfmodel.errors import PerfmodelError
from perfmodel.model.longrun import LongRunRatio, trace_ratios
from perfmodel.readings import Reading as R


def _trace(cell: str, network: str, fps: list[float], framework: str = "onnxruntime", threads: int = 1):
    """Trace records of one cell: 1-s intervals with fps[i] images each."""
    parts = [records_from_readings([R("images", float(f), "count", "loop", "real")], run_id="r1", board="kvm",
                                   threads=threads, repeat=0, cell_id=cell, framework=framework, network=network,
                                   workload=f"{framework}/{network}", phase="trace", t_start_s=100.0 + i,
                                   t_end_s=101.0 + i)
             for i, f in enumerate(fps)]
    return validate(pd.concat(parts, ignore_index=True))


def test_trace_ratios_known_answer():
    fps = [110.0, 110.0] + [105.0] * 8 + [100.0] * 20  # start 110/s, long run (t >= 10 s) 100/s
    recs = pd.concat([_trace("a", "squeezenet1_1", fps), _trace("b", "googlenet", [50.0] * 5)], ignore_index=True)
    t = trace_ratios(recs)
    assert list(t["cell_id"]) == ["a"]  # b is shorter than the 10 s skipped: no long run
    row = t.iloc[0]
    assert row["start_fps"] == pytest.approx(110.0) and row["long_run_fps"] == pytest.approx(100.0)
    assert row["ratio"] == pytest.approx(100 / 110) and row["trace_s"] == pytest.approx(30.0)
    assert trace_ratios(recs, window_s=5, skip_s=5).iloc[0]["start_fps"] == pytest.approx((220 + 3 * 105) / 5)
    with pytest.raises(PerfmodelError):
        trace_ratios(recs, window_s=20, skip_s=10)
    assert trace_ratios(recs.iloc[0:0]).empty


def test_long_run_ratio_interval_is_the_t_interval_of_log_ratios():
    table = pd.DataFrame({"framework": ["onnxruntime"] * 3 + ["litert"], "network": ["a", "b", "c", "a"],
                          "threads": [1, 1, 1, 2], "ratio": [0.95, 0.97, 0.93, 0.5]})
    lr = LongRunRatio.fit(table, framework="onnxruntime", threads=1)
    logs = np.log([0.95, 0.97, 0.93])
    assert lr.n == 3 and lr.ratio == pytest.approx(np.exp(logs.mean()))
    pred, lo, hi = lr.predict(200.0, alpha=0.1)
    half = stats.t.ppf(0.95, 2) * logs.std(ddof=1) * np.sqrt(1 + 1 / 3)
    assert pred == pytest.approx(200 * np.exp(logs.mean()))
    assert (lo, hi) == (pytest.approx(pred * np.exp(-half)), pytest.approx(pred * np.exp(half)))
    one = LongRunRatio.fit(table, exclude_network=["a", "b"])  # only c remains
    assert one.n == 1 and all(np.isnan(one.predict(100.0)[1:]))
    with pytest.raises(PerfmodelError, match="perfmodel trace"):
        LongRunRatio.fit(table, framework="opencv")
    with pytest.raises(PerfmodelError):
        lr.predict(0.0)
    assert json.dumps(lr.to_dict())


def test_long_run_from_sample_prefers_the_same_framework(tmp_path):
    from perfmodel.workflows.quick import long_run_from_sample

    long = [100.0] * 30
    for name, net, first, fw in (("t1", "squeezenet1_1", 104.0, "onnxruntime"), ("t2", "googlenet", 102.0, "onnxruntime"),
                                 ("t3", "resnet50", 200.0, "litert")):
        write_dataset(tmp_path / name, _trace(f"{fw}__{net}", net, [first, first] + long, framework=fw), {"board": "kvm"})
    paths = [tmp_path / n for n in ("t1", "t2", "t3")]
    out = long_run_from_sample(50.0, "onnxruntime", 1, paths)
    assert out["n_traces"] == 2 and "onnxruntime, 1 thread(s)" in out["traces_from"]
    assert out["pred"] == pytest.approx(50.0 * np.exp(np.mean(np.log([100 / 104, 100 / 102]))))
    assert out["lo"] < out["pred"] < out["hi"]
    # holding out squeezenet leaves one onnxruntime trace: all frameworks' traces are used, and said so
    held = long_run_from_sample(50.0, "onnxruntime", 1, paths, exclude_network=["squeezenet1_1"])
    assert held["n_traces"] == 2 and "any framework" in held["traces_from"]
    assert "reason" in long_run_from_sample(50.0, "onnxruntime", 1, [tmp_path / "t1"], exclude_network=["squeezenet1_1"])
    # a 4-s start window takes the first two seconds (104 or 102 images/s) and two of the long run (100)
    wide = long_run_from_sample(50.0, "onnxruntime", 1, paths, window_s=4.0)
    assert wide["pred"] == pytest.approx(50.0 * np.exp(np.mean(np.log([100 / 102, 100 / 101]))))
    assert "reason" in long_run_from_sample(50.0, "onnxruntime", 1, paths, window_s=20.0)  # past the 10 s skipped


def test_predict_quick_sample_reports_the_estimate_from_the_sample(tmp_path, monkeypatch):
    """The CLI prints the sample-based long-run estimate beside the model's (a fake sampler and model)."""
    from perfmodel.workflows.defaults import default_traces
    from perfmodel.cli.app import app
    from perfmodel.model.synthetic import synthetic_throughput_records

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=5)
    runner = CliRunner()
    write_dataset(tmp_path / "ds", recs, {"board": "synthetic"})
    r = runner.invoke(app, ["fit", str(tmp_path / "ds"), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "--terms", "throughput-macs", "-o", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    for name, first in (("t1", 104.0), ("t2", 102.0)):
        write_dataset(tmp_path / name, _trace(f"c{name}", name, [first, first] + [100.0] * 30, framework="litert"),
                      {"board": "kvm"})
    timing = recs[recs["cell_id"] == "litert__googlenet__t1__r0__software"].reset_index(drop=True)
    monkeypatch.setattr("perfmodel.collect.quick.quick_sample", lambda *a, **k: timing)
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--framework", "litert", "--network",
                            "googlenet", "--traces", str(tmp_path / "t1"), "--traces", str(tmp_path / "t2"), "--json"])
    assert r.exit_code == 0, r.output
    q = json.loads(r.stdout)["quick_sample"]
    fs = q["long_run_from_sample"]
    assert fs["n_traces"] == 2 and fs["pred"] == pytest.approx(q["measured_fps"] * fs["ratio"])
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--framework", "litert", "--network",
                            "googlenet", "--traces", str(tmp_path / "t1"), "--traces", str(tmp_path / "t2")])
    assert r.exit_code == 0 and "long-run from the sample:" in r.stdout
    assert default_traces() is not None


def test_sample_noise_widens_the_interval():
    table = pd.DataFrame({"framework": ["onnxruntime"] * 2, "network": ["a", "b"], "threads": [1, 1],
                          "ratio": [0.95, 0.9501]})
    lr = LongRunRatio.fit(table)
    _, lo0, hi0 = lr.predict(100.0)
    pred, lo, hi = lr.predict(100.0, quick_rel_se=0.02)
    half = stats.t.ppf(0.975, 1) * np.sqrt(lr.log_sd**2 * 1.5 + 0.02**2)
    assert (lo, hi) == (pytest.approx(pred * np.exp(-half)), pytest.approx(pred * np.exp(half)))
    assert lo < lo0 and hi > hi0
    from perfmodel.workflows.quick import sample_rel_se

    df = pd.DataFrame({"latency_ms": [10.0], "latency_ms_std": [2.0], "latency_ms_n": [4]})
    assert sample_rel_se(df) == pytest.approx(0.1)
    assert sample_rel_se(df.assign(latency_ms_n=1)) == 0.0 and sample_rel_se(pd.DataFrame()) == 0.0


def test_trace_without_images_is_a_clear_error():
    recs = _trace("a", "squeezenet1_1", [100.0] * 12)
    recs = recs.assign(metric="cpu_percent")
    with pytest.raises(PerfmodelError, match="images"):
        trace_ratios(recs)
