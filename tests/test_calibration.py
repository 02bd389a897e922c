"""Machine calibration (streaming bandwidth) and the FC weight-streaming time it prices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from perfmodel.cli.app import app
from perfmodel.collect.calibrate import measure_calibration
from perfmodel.data import (Dataset, attach_calibration, dataset_calibrations, merge, stream_bandwidth,
                            write_dataset, write_records)
from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.model.estimators import OverheadLinearModel
from perfmodel.data.provenance import Provenance, Table
from perfmodel.model.features import FeatureError, attach_stream_time
from perfmodel.model.synthetic import synthetic_throughput_records

runner = CliRunner()


def _cal(one: float, two: float, when: str = "2026-01-01T00:00:00Z") -> dict:
    return {"version": 1, "when": when, "stream_gbps": {"1": one, "2": two}, "gemm_gflops": {"1": 1.0, "2": 2.0},
            "errors": {}}


def test_measure_calibration_small():
    cal = measure_calibration((2, 1), buffer_mib=4, seconds=0.05)
    json.dumps(cal)  # JSON-able as stored
    assert cal["version"] == 1 and cal["buffer_mib"] == 4.0 and not cal["errors"]
    assert set(cal["stream_gbps"]) == set(cal["gemm_gflops"]) == {"1", "2"}
    assert all(np.isfinite(v) and v > 0 for v in [*cal["stream_gbps"].values(), *cal["gemm_gflops"].values()])
    assert all(r["stream"] >= 3 and r["gemm"] >= 3 for r in cal["repeats"].values())
    for bad in ({"threads": ()}, {"threads": (0,)}, {"threads": ("x",)}, {"buffer_mib": 0}, {"seconds": 0}):
        with pytest.raises(ValueError):
            measure_calibration(**{"threads": (1,), "buffer_mib": 1, "seconds": 0.01, **bad})


def test_calibrations_of_a_data_set_attached_run_and_merged(tmp_path):
    recs = synthetic_throughput_records(networks=("squeezenet1_1",), frameworks=("onnxruntime",), threads=(1,))
    write_dataset(tmp_path / "a", recs, {"board": "b", "calibration": _cal(10.0, 20.0)})
    write_dataset(tmp_path / "b", recs.assign(cell_id=recs["cell_id"] + "x"), {"board": "b"})
    assert dataset_calibrations(tmp_path / "b") == []
    entry = attach_calibration(tmp_path / "b", _cal(14.0, 30.0, "2026-01-02T00:00:00Z"), note="after the campaign")
    assert entry["note"] == "after the campaign" and entry["attached"]
    assert [c["stream_gbps"]["1"] for c in dataset_calibrations(tmp_path / "b")] == [14.0]
    assert [c["stream_gbps"]["1"] for c in dataset_calibrations(tmp_path / "a")] == [10.0]
    merged = merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    cals = dataset_calibrations(merged.path)
    assert sorted(c["stream_gbps"]["1"] for c in cals) == [10.0, 14.0]  # each once
    assert stream_bandwidth(cals) == {1: 12.0, 2: 25.0}
    assert stream_bandwidth([]) == {}
    # a flat records file has none; a calibration cannot be attached to it
    write_records(tmp_path / "r.parquet", recs)
    assert dataset_calibrations(tmp_path / "r.parquet") == []
    with pytest.raises(InputFileError):
        attach_calibration(tmp_path / "r.parquet", _cal(1.0, 2.0))
    with pytest.raises(InputFileError):
        dataset_calibrations(tmp_path / "nothing")
    for bad, needle in ((["x"], "not a calibration"), ({**_cal(1, 2), "version": 9}, "version"),
                        ({**_cal(1, 2), "stream_gbps": {"1": -3}}, "GB/s > 0"), ({"version": 1}, "stream_gbps")):
        with pytest.raises(PerfmodelError, match=needle):
            attach_calibration(tmp_path / "b", bad)
    assert len(Dataset.open(tmp_path / "b").info["calibrations"]) == 1  # nothing stored by a refused one


def test_attach_stream_time_from_facts_and_bandwidth():
    df = pd.DataFrame({"network": ["alexnet", "alexnet", "squeezenet1_1", "resnet50"], "threads": [1, 2, 1, 2]})
    table = Table(df, Provenance({"network": "key"}))
    out = attach_stream_time(table, {"1": 16.0, 2: 32.0})
    expect = [4 * 58_631_144 / 16e6, 4 * 58_631_144 / 32e6, 0.0, 4 * 2_049_000 / 32e6]
    np.testing.assert_allclose(out.frame["fc_stream_ms"], expect, rtol=1e-12)
    assert "fc_stream_ms" not in df.columns and out.provenance.get("fc_stream_ms") == "derived"
    assert table.provenance.get("fc_stream_ms") is None  # the input's provenance is not changed
    np.testing.assert_allclose(attach_stream_time(df, {1: 16.0, 2: 32.0})["fc_stream_ms"], expect)  # a frame in, out
    with pytest.raises(FeatureError, match=r"no streaming bandwidth measured for \[2\]"):
        attach_stream_time(df, {1: 16.0})
    for bad in ({1: 0.0, 2: 1.0}, {1: float("nan"), 2: 1.0}, {"one": 1.0}):
        with pytest.raises(FeatureError):
            attach_stream_time(df, bad)
    with pytest.raises(FeatureError, match="vgg19"):
        attach_stream_time(df.assign(network="vgg19"), {1: 1.0, 2: 1.0})
    with pytest.raises(FeatureError, match="threads"):
        attach_stream_time(df.drop(columns="threads"), {1: 1.0})


def test_known_time_column_has_coefficient_one():
    """t = 2e-6 x + s, s a known time: the fitted cost of x is exact and s keeps coefficient 1."""
    rng = np.random.default_rng(0)
    x = rng.uniform(1e6, 5e6, 40)
    s = rng.choice([0.0, 3.0, 9.0], 40)
    t = 2e-6 * x + s
    y = 1000.0 / (1.5 + t)
    X = np.column_stack([x, s])
    m = OverheadLinearModel(overhead=1.5, known=(1,)).fit(X, y)
    c = m.params_.coef / m.params_.scaler_scale
    np.testing.assert_allclose(c, [2e-6, 1.0], rtol=1e-9)
    np.testing.assert_allclose(m.predict(X), y, rtol=1e-9)
    # fitted freely, the same column gets whatever the least squares give; known, the time is not refitted
    assert OverheadLinearModel(overhead=1.5).fit(np.column_stack([x, 2 * s]), y).params_.coef[1] > 0
    m2 = OverheadLinearModel(overhead=1.5, known=(1,)).fit(np.column_stack([x, 2 * s]), y)
    assert m2.params_.coef[1] / m2.params_.scaler_scale[1] == 1.0 and m2.params_.dof_resid == 39
    for bad in ((2,), (-1,), ("a",)):
        with pytest.raises(ValueError):
            OverheadLinearModel(overhead=1.5, known=bad).fit(X, y)


def test_feature_model_marks_known_time_features():
    from perfmodel.model.cv import FeatureModel
    from perfmodel.model.estimators import make_estimator

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.uniform(1, 2, 20), "fc_stream_ms": rng.uniform(0, 1, 20),
                       "read_ms": 0.1, "preprocess_ms": 0.4})
    y = 1000.0 / (0.5 + 3.0 * df["a"] + df["fc_stream_ms"])
    fm = FeatureModel(make_estimator("overhead-linear"), ["fc_stream_ms", "a"]).fit(df, y.to_numpy())
    assert fm.estimator_.known == (0,)
    np.testing.assert_allclose(fm.predict(df), y, rtol=1e-9)
    assert FeatureModel(make_estimator("loglinear"), ["a"]).fit(df, y.to_numpy()).estimator_.get_params().get("known") is None


def test_cli_calibrate_attach_and_fit_stream_terms(tmp_path):
    from perfmodel.model import load_model

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=4,
                                        overhead_ms=300.0)
    from perfmodel.collect.meta import system_info

    write_dataset(tmp_path / "ds", recs, {"board": system_info().get("board")})  # this machine's data set
    fit = ["fit", str(tmp_path / "ds"), "-t", "throughput_fps", "--kind", "overhead-linear", "--cv", "lono",
           "--terms", "throughput-stream", "-o", str(tmp_path / "m.json")]
    r = runner.invoke(app, fit)
    assert isinstance(r.exception, PerfmodelError) and "perfmodel calibrate --attach" in str(r.exception)
    r = runner.invoke(app, ["calibrate", "--note", "x"])
    assert isinstance(r.exception, PerfmodelError) and "--attach" in str(r.exception)
    r = runner.invoke(app, ["calibrate", "--threads", "1,2", "--buffer-mib", "2", "--seconds", "0.02", "--attach",
                            str(tmp_path / "ds"), "--note", "test", "--json"])
    assert r.exit_code == 0, r.output
    cal = json.loads(r.output)
    assert cal["note"] == "test" and set(cal["stream_gbps"]) == {"1", "2"}
    r = runner.invoke(app, fit + ["--json"])
    assert r.exit_code == 0, r.output
    m = load_model(tmp_path / "m.json")
    assert m.features[-1] == "fc_stream_ms" and m.preparation.terms == "throughput-stream"
    assert m.preparation.stream_bandwidth_gbps == {int(k): pytest.approx(v) for k, v in cal["stream_gbps"].items()}
    assert m.params.coef[-1] / m.params.scaler_scale[-1] == 1.0
    assert m.training["fixed_coefficients"] == {"fc_stream_ms": 1.0}
    # a known time beyond its training range is not an extrapolation of the fit; a fitted feature is
    from perfmodel.model.features import join_simulated as _join
    from perfmodel.data import read_dataset as _read, wide_per_cell as _wide

    w = attach_stream_time(_join(_wide(_read(tmp_path / "ds"))), {1: 1e-3, 2: 1e-3}).frame
    assert (m.out_of_range(w.assign(fc_stream_ms=1e9)) == "").all()
    assert (m.out_of_range(w.assign(instructions_per_image=1e15)) != "").all()
    # predicting from the data set uses its calibration; from a CSV without it, the model's (said so)
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--dataset", str(tmp_path / "ds"),
                            "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 16 and all(np.isfinite(x["pred"]) for x in rows)
    from perfmodel.data import read_dataset, wide_per_cell
    from perfmodel.model.features import join_simulated

    wide = join_simulated(wide_per_cell(read_dataset(tmp_path / "ds"))).frame
    cols = ["framework", "network", "threads", "instructions_per_image", "l2d_refills_per_image"]
    wide[[c for c in cols if c in wide.columns]].to_csv(tmp_path / "s.csv", index=False)
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--csv", str(tmp_path / "s.csv"),
                            "--provenance", "simulated", "--json"])
    assert r.exit_code == 0, r.output
    assert "the model's training calibration" in r.stderr
    preds = [x["pred"] for x in json.loads(r.stdout)["rows"]]
    np.testing.assert_allclose(preds, [x["pred"] for x in rows], rtol=1e-9)


def test_run_calibrations_of_a_resumed_data_set_survive_a_merge(tmp_path):
    ds = Dataset.create(tmp_path / "a", {"board": "b", "run_id": "r1"})
    ds.record_run_metadata("r1", "calibration", _cal(10.0, 20.0, "t1"))
    ds = Dataset.create(tmp_path / "a", {"board": "b", "run_id": "r2"}, exist_ok=True)
    with pytest.raises(PerfmodelError, match="not the run"):
        ds.record_run_metadata("r1", "calibration", _cal(1.0, 1.0))
    ds.record_run_metadata("r2", "calibration", _cal(12.0, 22.0, "t2"))
    back = Dataset.open(tmp_path / "a")
    assert back.metadata["calibration"]["when"] == "t1"  # the first run's, where it was created
    assert sorted(c["when"] for c in dataset_calibrations(tmp_path / "a")) == ["t1", "t2"]
    merged = merge([tmp_path / "a"], tmp_path / "m")
    assert sorted(c["when"] for c in dataset_calibrations(merged.path)) == ["t1", "t2"]
    # a malformed attached entry is an error, not skipped
    info = Dataset.open(tmp_path / "a").info
    info["calibrations"] = [{"version": 1}]
    from perfmodel.data.calibration import calibrations_of_info

    with pytest.raises(PerfmodelError, match="attached calibration 0"):
        calibrations_of_info(info)


def test_calibration_failures_are_recorded_not_raised(monkeypatch):
    import perfmodel.collect.calibrate as cal_mod

    monkeypatch.setattr(cal_mod, "measure_calibration", lambda *a, **k: (_ for _ in ()).throw(MemoryError("256 MiB")))
    out = cal_mod.safe_calibration([1, 2])
    assert out["stream_gbps"] == {} and "MemoryError" in out["errors"]["all"]
    assert stream_bandwidth([out]) == {}
    monkeypatch.undo()
    import threadpoolctl

    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [])
    out = measure_calibration((1, 2), buffer_mib=1, seconds=0.01)
    assert out["stream_gbps"] == {} and set(out["errors"]) == {"1", "2"} and "BLAS" in out["errors"]["1"]


def test_stream_time_needs_whole_thread_counts_and_known_time_may_exceed_the_time():
    df = pd.DataFrame({"network": ["alexnet"], "threads": [1.5]})
    with pytest.raises(FeatureError, match="whole thread counts"):
        attach_stream_time(df, {1: 1.0, 2: 1.0})
    # a known time larger than some measured times: the fitted costs stay >= 0, the fit does not fail
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    s = np.array([0.0, 0.0, 9.0, 0.0, 0.0])
    y = 1000.0 / (2.0 * x)
    m = OverheadLinearModel(known=(1,)).fit(np.column_stack([x, s]), y)
    assert (m.params_.coef >= 0).all() and np.isfinite(m.predict(np.column_stack([x, s]))).all()


def test_cli_calibrate_refuses_another_machines_data_set(tmp_path):
    recs = synthetic_throughput_records(networks=("squeezenet1_1",), frameworks=("onnxruntime",), threads=(1,))
    write_dataset(tmp_path / "ds", recs, {"board": "Raspberry Pi 3 Model B Rev 1.2", "cpu_model": "Cortex-A53"})
    args = ["calibrate", "--threads", "1", "--buffer-mib", "1", "--seconds", "0.01", "--attach", str(tmp_path / "ds")]
    r = runner.invoke(app, args)
    assert isinstance(r.exception, PerfmodelError) and "another machine" in str(r.exception)
    assert dataset_calibrations(tmp_path / "ds") == []
    r = runner.invoke(app, args + ["--force"])
    assert r.exit_code == 0, r.output
    assert len(dataset_calibrations(tmp_path / "ds")) == 1


def test_predict_from_a_data_set_without_calibration_says_whose_bandwidth(tmp_path):
    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=4,
                                        overhead_ms=300.0)
    write_dataset(tmp_path / "ds", recs, {"board": "synthetic"})
    write_dataset(tmp_path / "other", recs, {"board": "synthetic"})
    attach_calibration(tmp_path / "ds", _cal(16.0, 32.0))
    r = runner.invoke(app, ["fit", str(tmp_path / "ds"), "-t", "throughput_fps", "--kind", "overhead-linear",
                            "--cv", "lono", "--terms", "throughput-stream", "-o", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--dataset", str(tmp_path / "other"),
                            "--json"])
    assert r.exit_code == 0, r.output
    assert "the model's training calibration" in r.stderr
    assert "the model's training calibration" in json.loads(r.stdout)["stream_bandwidth_from"]
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--dataset", str(tmp_path / "ds"),
                            "--json"])
    assert r.exit_code == 0 and "note: streaming bandwidth" not in r.stderr
    assert json.loads(r.stdout)["stream_bandwidth_from"].startswith("calibrations of")
    assert json.loads(r.stdout)["speed_calibration"]["ratio"] == {"1": 1.0, "2": 1.0}  # its own calibration
    # a calibration that misses a thread count of the rows: the model's, and why (one policy with the pipeline)
    one = {"version": 1, "when": "2026-01-01T00:00:00Z", "stream_gbps": {"1": 15.0}, "gemm_gflops": {"1": 1.0},
           "errors": {}}
    attach_calibration(tmp_path / "other", one)
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--dataset", str(tmp_path / "other"),
                            "--json"])
    assert r.exit_code == 0, r.output
    assert "lack thread count(s) 2" in json.loads(r.stdout)["stream_bandwidth_from"]
    from perfmodel.model.prepare import with_stream_time
    from perfmodel.data import read_dataset, wide_per_cell

    other = wide_per_cell(read_dataset(tmp_path / "other"))
    with pytest.raises(PerfmodelError, match="2"):  # no fallback: the missing thread count is an error
        with_stream_time(other, tmp_path / "other")
    df, bw, _ = with_stream_time(other.rows(other.frame["threads"] == 1), tmp_path / "other", {"1": 99.0, "2": 99.0})
    assert bw == {1: 15.0}  # the data's own where it covers the rows


def test_attach_l2_overflow_counts_only_conv_layers_bigger_than_the_cache():
    from perfmodel.model.features import attach_l2_overflow, conv_weights_over

    df = pd.DataFrame({"network": ["resnet18", "alexnet", "squeezenet1_1"], "threads": [1, 2, 1]})
    table = Table(df, Provenance({"network": "key"}))
    out = attach_l2_overflow(table, 2 * 1024 * 1024)
    # ResNet-18: 512 x 512 x 3 x 3 convolutions (+ bias) are 9.44 MB each; layer4 has three of them and
    # one 256 -> 512 3x3 (4.72 MB), layer3 three 256 -> 256 3x3 (2.36 MB > 2 MiB); its 128 -> 256 3x3
    # (1.18 MB) fits; every layer of SqueezeNet v1.1 fits in 2 MiB, AlexNet's 3x3 384 -> 256 (3.54 MB),
    # 256 -> 256 (2.36 MB) and 192 -> 384 (2.65 MB) do not, its FC layers are not counted
    res = 4 * (3 * (512 * 512 * 9 + 512) + 256 * 512 * 9 + 512 + 3 * (256 * 256 * 9 + 256)) / 1e6
    alex = 4 * ((192 * 384 * 9 + 384) + (384 * 256 * 9 + 256) + (256 * 256 * 9 + 256)) / 1e6
    np.testing.assert_allclose(out.frame["conv_over_l2_mb"], [res, alex, 0.0], rtol=1e-12)
    assert out.provenance.get("conv_over_l2_mb") == "derived" and out.meta["l2_bytes"] == 2 * 1024 * 1024
    assert "conv_over_l2_mb" not in df.columns and "l2_bytes" not in table.meta
    assert conv_weights_over("resnet18", 1e12) == 0.0  # nothing is bigger than a huge cache
    assert conv_weights_over("resnet18", 1.0) > res  # every conv layer when the cache is tiny
    for bad in (0, -1, float("nan"), "x", None):
        with pytest.raises(FeatureError, match="L2 cache size"):
            attach_l2_overflow(df, bad)
    with pytest.raises(FeatureError, match="vgg19"):
        attach_l2_overflow(df.assign(network="vgg19"), 1e6)


def test_dataset_l2_bytes_sources(tmp_path):
    from perfmodel.data import dataset_l2_bytes

    recs = synthetic_throughput_records(networks=("squeezenet1_1",), frameworks=("litert",), threads=(1,), seed=1)
    here = {"cpu_model": "Cortex-A53", "arch": "aarch64", "l2_bytes": 524288,
            "l2_bytes_source": "/sys/devices/system/cpu/cpu0/cache/index2/size"}
    write_dataset(tmp_path / "old", recs, {"system": {"cpu_model": "Cortex-A53", "arch": "aarch64"}})
    write_dataset(tmp_path / "new", recs, {"system": {"cpu_model": "X", "arch": "x86_64", "l2_bytes": 1 << 20}})
    write_dataset(tmp_path / "other", recs, {"system": {"cpu_model": "X", "arch": "x86_64"}})
    assert dataset_l2_bytes(tmp_path / "new", here=here)[0] == 1 << 20  # recorded wins over this machine
    b, said = dataset_l2_bytes(tmp_path / "old", here=here)  # same CPU as here: this machine's figure, said
    assert b == 524288 and "this machine's" in said and "predate" in said
    b, said = dataset_l2_bytes(tmp_path / "other", here=here)
    assert b is None and "another CPU" in said and "by hand" in said
    assert dataset_l2_bytes(tmp_path / "other", explicit=4096.0, here=here) == (4096.0, "given: 4 KiB")
    with pytest.raises(PerfmodelError, match="> 0"):
        dataset_l2_bytes(tmp_path / "other", explicit=0, here=here)
    flat = tmp_path / "flat.parquet"
    write_records(flat, recs)
    assert dataset_l2_bytes(flat, here=here)[0] is None
    merge([tmp_path / "new", tmp_path / "other"], tmp_path / "mixed", allow_incompatible=True, on_duplicate="rename")
    assert dataset_l2_bytes(tmp_path / "mixed", here=here)[0] == 1 << 20  # one run said nothing
    write_dataset(tmp_path / "new2", recs, {"system": {"cpu_model": "X", "arch": "x86_64", "l2_bytes": 1 << 21}})
    merge([tmp_path / "new", tmp_path / "new2"], tmp_path / "two", allow_incompatible=True, on_duplicate="rename")
    with pytest.raises(PerfmodelError, match="different L2 sizes"):
        dataset_l2_bytes(tmp_path / "two", here=here)


def test_cli_fit_and_predict_with_the_l2_term(tmp_path):
    from perfmodel.model import load_model

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=4,
                                        overhead_ms=300.0)
    system = {"cpu_model": "Some CPU", "arch": "x86_64", "l2_bytes": 1 << 21}
    write_dataset(tmp_path / "ds", recs, {"board": "b", "system": system})
    attach_calibration(tmp_path / "ds", _cal(16.0, 30.0), note="test")
    fit = ["fit", str(tmp_path / "ds"), "-t", "throughput_fps", "--kind", "overhead-linear", "--cv", "lono",
           "--terms", "throughput-l2", "-o", str(tmp_path / "m.json"), "--json"]
    r = runner.invoke(app, fit)
    assert r.exit_code == 0, r.output
    m = load_model(tmp_path / "m.json")
    assert m.features[-2:] == ["conv_over_l2_mb*threads=1", "conv_over_l2_mb*threads=2"]
    assert m.preparation.l2_bytes == 1 << 21 and "recorded by the data set" in m.preparation.l2_bytes_source
    # --l2-kib wins over the record; the column changes with it (1 KiB: every conv layer counts)
    r = runner.invoke(app, fit[:-3] + ["-o", str(tmp_path / "m1.json"), "--l2-kib", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert load_model(tmp_path / "m1.json").preparation.l2_bytes == 1024.0
    # predicting uses the model's L2 size; a data set timed with another L2 gets a warning
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--dataset", str(tmp_path / "ds"), "--json"])
    assert r.exit_code == 0, r.output
    assert "cross-machine" not in r.stderr and all(np.isfinite(x["pred"]) for x in json.loads(r.stdout)["rows"])
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m1.json"), "--dataset", str(tmp_path / "ds"),
                            "--json"])
    assert r.exit_code == 0, r.output
    assert "cross-machine" in r.stderr
    # a data set that records no L2 size, on another CPU than this machine's: refused with what to give
    write_dataset(tmp_path / "old", recs, {"board": "b", "system": {"cpu_model": "Other CPU", "arch": "riscv"}})
    attach_calibration(tmp_path / "old", _cal(16.0, 30.0), note="test")
    r = runner.invoke(app, fit[:1] + [str(tmp_path / "old")] + fit[2:-3] + ["-o", str(tmp_path / "m_old.json")])
    assert isinstance(r.exception, PerfmodelError) and "--l2-kib" in str(r.exception)


def test_speed_scaled_scales_the_counts_of_fitted_terms_only():
    from perfmodel.model.features import speed_scaled

    df = pd.DataFrame({"framework": ["a", "b", "a"], "threads": [1, 2, 2], "instructions_per_image": [10.0, 20.0, 30.0],
                       "l2d_refills_per_image": [1.0, 2.0, 3.0], "fc_stream_ms": [5.0, 6.0, 7.0]})
    prov = Provenance({"fc_stream_ms": "derived"})
    feats = ["instructions_per_image*framework=a*threads=1", "instructions_per_image*framework=b*threads=2",
             "l2d_refills_per_image", "fc_stream_ms"]
    table, cols = speed_scaled(Table(df, prov), feats, {1: 2.0, 2: 0.5}, known=("fc_stream_ms",))
    out = table.frame
    assert cols == ["instructions_per_image", "l2d_refills_per_image"]
    assert out["instructions_per_image"].tolist() == [20.0, 10.0, 15.0]
    assert out["l2d_refills_per_image"].tolist() == [2.0, 1.0, 1.5]
    assert out["fc_stream_ms"].tolist() == [5.0, 6.0, 7.0] and out["threads"].tolist() == [1, 2, 2]
    assert df["instructions_per_image"].tolist() == [10.0, 20.0, 30.0] and table.provenance == prov
    with pytest.raises(FeatureError, match="no speed ratio for thread count"):
        speed_scaled(df, feats, {1: 2.0}, known=("fc_stream_ms",))
    for bad in ("log(instructions_per_image)", "instructions_per_image^2", "instructions_per_image*l2d_refills_per_image"):
        with pytest.raises(FeatureError, match="cannot be rescaled"):
            speed_scaled(df, [bad], {1: 1.0, 2: 1.0})
    with pytest.raises(FeatureError, match="not a count"):
        speed_scaled(df, ["threads"], {1: 1.0, 2: 1.0})


def test_cli_predict_prices_counts_at_the_speed_of_the_data(tmp_path):
    """A model fitted where GEMM ran at G predicts data calibrated at G / 2: its fitted time doubles, the
    known streaming time does not."""
    from perfmodel.model import load_model

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=4,
                                        overhead_ms=300.0)
    for name, gemm in (("fast", {"1": 100.0, "2": 180.0}), ("slow", {"1": 50.0, "2": 90.0}), ("none", None)):
        write_dataset(tmp_path / name, recs, {"board": "b"})
        attach_calibration(tmp_path / name, {**_cal(16.0, 30.0), "gemm_gflops": gemm or {}}, note="test")
    r = runner.invoke(app, ["fit", str(tmp_path / "fast"), "-t", "throughput_fps", "--kind", "overhead-linear",
                            "--cv", "lono", "--terms", "throughput-stream", "-o", str(tmp_path / "m.json"), "--json"])
    assert r.exit_code == 0, r.output
    m = load_model(tmp_path / "m.json")
    assert m.preparation.gemm_gflops == {1: 100.0, 2: 180.0}

    def predict(name):
        r = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.json"), "--dataset", str(tmp_path / name),
                                "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout), r.stderr

    same, _ = predict("fast")
    slow, said = predict("slow")
    assert same["speed_calibration"]["ratio"] == {"1": 1.0, "2": 1.0}
    assert slow["speed_calibration"]["applied"] and slow["speed_calibration"]["ratio"] == {"1": 2.0, "2": 2.0}
    assert "counts priced at the machine's speed now" in said
    from perfmodel.model.features import join_simulated
    from perfmodel.data import read_dataset, wide_per_cell

    w = attach_stream_time(join_simulated(wide_per_cell(read_dataset(tmp_path / "fast"))), {1: 16.0, 2: 30.0})
    known = w.frame["fc_stream_ms"].to_numpy()
    t_same = m.params.rate_scale / np.array([x["pred"] for x in same["rows"]])
    t_slow = m.params.rate_scale / np.array([x["pred"] for x in slow["rows"]])
    # fitted time doubles: t_slow - known - o = 2 (t_same - known - o)  =>  t_slow - 2 t_same = -(known + o)
    np.testing.assert_allclose(t_slow - 2 * t_same + known, -m.params.overhead, rtol=1e-6, atol=1e-9)
    none, said = predict("none")  # no GEMM figure in the data: not rescaled, and said so
    assert none["speed_calibration"]["applied"] is False and "as it was when the model was trained" in said
    np.testing.assert_allclose([x["pred"] for x in none["rows"]], [x["pred"] for x in same["rows"]], rtol=1e-12)


def test_calibrate_cli_refuses_a_buffer_larger_than_memory_and_endless_seconds():
    import psutil

    r = runner.invoke(app, ["calibrate", "--buffer-mib", "1000000000", "--threads", "1", "--seconds", "0.1"])
    assert r.exit_code != 0
    assert isinstance(r.exception, PerfmodelError) and "available memory" in str(r.exception)
    for bad in ("inf", "nan", "-1", "0"):
        r = runner.invoke(app, ["calibrate", "--threads", "1", "--buffer-mib", "2", "--seconds", bad])
        assert isinstance(r.exception, PerfmodelError) and "--seconds" in str(r.exception), (bad, r.output)
    r = runner.invoke(app, ["calibrate", "--threads", "1", "--buffer-mib", "2", "--seconds", "1e9"])
    assert isinstance(r.exception, PerfmodelError) and "--seconds" in str(r.exception)
    # the library refuses it too (a campaign records it as the calibration's error, never a traceback)
    from perfmodel.collect.calibrate import measure_calibration, safe_calibration

    huge = int(psutil.virtual_memory().total / 2**20) * 4
    with pytest.raises(PerfmodelError, match="available memory"):
        measure_calibration([1], buffer_mib=huge, seconds=0.01)
    assert "available memory" in safe_calibration([1], buffer_mib=huge, seconds=0.01)["errors"]["all"]


def test_calibrate_cli_bad_input_is_one_line_without_traceback():
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "perfmodel", "calibrate", "--buffer-mib", "1000000000",
                           "--threads", "1", "--seconds", "0.1"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
