"""perfmodel fit / evaluate / predict through typer's CliRunner on a small synthetic records file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perfmodel.cli.app import app
from perfmodel.errors import PerfmodelError
from perfmodel.data import write_records
from perfmodel.model.synthetic import synthetic_power_table, synthetic_throughput_records

runner = CliRunner()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "synth.parquet"
    write_records(path, synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                                     frameworks=("litert", "onnxruntime"), threads=(1, 2)))
    return path


def test_fit_evaluate_predict(records, tmp_path):
    model = tmp_path / "tp.json"
    r = runner.invoke(app, ["fit", str(records), "--target", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "-o", str(model), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert "log(instructions_per_image)" in out["features"] and out["cv"]["scheme"] == "leave-one-network-out"
    assert {x["model"] for x in out["results"]} >= {"loglinear", "baseline: mean", "baseline: MACs-only"}

    r = runner.invoke(app, ["evaluate", str(records), "-t", "throughput_fps", "--cv", "lono", "--json",
                            "--features", "log(instructions_per_image),framework=onnxruntime,log(threads)"])
    assert r.exit_code == 0, r.output
    rows = {x["model"]: x for x in json.loads(r.output)["results"]}
    assert {"linear", "loglinear", "ridge", "baseline: mean"} <= set(rows)
    assert rows["loglinear"]["mape"] < rows["baseline: mean"]["mape"]

    r = runner.invoke(app, ["predict", "--model", str(model), "--dataset", str(records), "--json"])
    assert r.exit_code == 0, r.output
    pred = json.loads(r.output)["rows"]
    assert len(pred) == 16 and all(p["lo"] <= p["pred"] <= p["hi"] for p in pred)
    assert all(abs(p["pred"] - p["measured"]) / p["measured"] < 0.2 for p in pred)

    r = runner.invoke(app, ["predict", "--model", str(model), "--dataset", str(records)])
    assert r.exit_code == 0 and "predicted throughput_fps" in r.output


def test_predict_csv_needs_provenance(tmp_path):
    df = synthetic_power_table(seed=1).frame
    csv = tmp_path / "p.csv"
    df.to_csv(csv, index=False)
    model = tmp_path / "p.json"
    r = runner.invoke(app, ["fit", str(csv), "-t", "power_w", "--cv", "lowo", "--provenance", "real", "-o", str(model),
                            "--features", "voltage_v,instructions_per_s*voltage_v^2"])
    assert r.exit_code == 0, r.output
    from perfmodel.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(model), "--csv", str(csv)])
    assert exc.value.code == 2
    r = runner.invoke(app, ["predict", "--model", str(model), "--csv", str(csv), "--provenance", "real", "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["rows"]) == len(df)
    # a sample far outside the training data is predicted, flagged and warned about
    far = df.head(2).copy()
    far["instructions_per_s"] *= 50
    far.to_csv(tmp_path / "far.csv", index=False)
    r = runner.invoke(app, ["predict", "--model", str(model), "--csv", str(tmp_path / "far.csv"), "--provenance",
                            "real", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert all("instructions_per_s*voltage_v^2" in row["outside_training"] for row in rows)
    assert "outside the model's training range" in r.output


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    from perfmodel.cli.app import main

    for argv in (["predict", "--model", str(tmp_path / "none.json"), "--csv", "x.csv"],
                 ["fit", str(tmp_path / "missing"), "-t", "power_w", "-o", str(tmp_path / "m.json")]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err


def test_help_explains_commands():
    for cmd in ("fit", "evaluate", "predict"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0 and "--json" in r.output


# -- fit --terms / --dropna and the quick-sample prediction path -----------------------------------


def _ref_metadata(**versions):
    import platform

    from perfmodel.sysinfo import library_versions

    v = dict(library_versions())
    v.update(versions)
    return {"versions": v, "system": {"arch": platform.machine()}}


@pytest.fixture(scope="module")
def tp_setup(tmp_path_factory):
    """A synthetic reference data set (versions of this machine), one with other versions, and a model."""
    from perfmodel.data import write_dataset

    d = tmp_path_factory.mktemp("quick")
    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=5)
    write_dataset(d / "ref", recs, _ref_metadata())
    write_dataset(d / "ref_old", recs, _ref_metadata(onnxruntime="0.0.1"))
    model = d / "tp.json"
    r = runner.invoke(app, ["fit", str(d / "ref"), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "--terms", "throughput", "-o", str(model), "--json"])
    assert r.exit_code == 0, r.output
    return d, recs, model


def _fake_sampler(calls, recs):
    """A stand-in for quick_sample: the synthetic records of one timing cell (and its valgrind cell when
    simulate) of the same generated board as the reference."""
    def sample(framework, network, threads=1, images=10, counters="auto", simulate=False, **kw):
        calls.append({"framework": framework, "network": network, "threads": threads, "images": images,
                      "simulate": simulate, **({"seconds": kw["seconds"]} if "seconds" in kw else {})})
        prefix = f"{framework}__{network}__"
        keep = recs["cell_id"].isin([f"{prefix}t{threads}__r0__software"] +
                                    ([f"{prefix}t1__r0__valgrind"] if simulate else []))
        return recs[keep].reset_index(drop=True)
    return sample


def test_fit_terms_fixed_and_dropna(tp_setup, tmp_path):
    d, recs, model = tp_setup
    from perfmodel.model import load_model

    m = load_model(model)
    assert m.features == ["log(instructions_per_image)", "framework=onnxruntime", "log(threads)",
                          "log(threads)*framework=onnxruntime"]
    assert m.selection["method"] == "fixed" and m.column_provenance["instructions_per_image"] == ["simulated"]
    # a timing cell whose valgrind cell is missing: an error without --dropna, listed and dropped with it
    part = tmp_path / "part.parquet"
    write_records(part, recs[recs["cell_id"] != "litert__googlenet__t1__r0__valgrind"])
    args = ["fit", str(part), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono", "--terms",
            "throughput-levels", "-o", str(tmp_path / "m.json")]
    r = runner.invoke(app, args)
    assert isinstance(r.exception, PerfmodelError) and "NaN" in str(r.exception)
    r = runner.invoke(app, args + ["--dropna", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert "threads=2*framework=litert" in out["features"]
    assert "litert__googlenet__t1__r0__software" in load_model(tmp_path / "m.json").metadata["dropped_rows"]
    r = runner.invoke(app, ["fit", str(part), "-t", "throughput_fps", "--terms", "bogus", "-o", str(tmp_path / "x.json")])
    assert isinstance(r.exception, PerfmodelError) and "bogus" in str(r.exception)


def test_predict_quick_sample_uses_matching_reference(tp_setup, monkeypatch):
    import perfmodel.collect.quick as quick

    d, recs, model = tp_setup
    calls = []
    monkeypatch.setattr(quick, "quick_sample", _fake_sampler(calls, recs))
    r = runner.invoke(app, ["predict", "--model", str(model), "--framework", "onnxruntime", "--network", "googlenet",
                            "--threads", "2", "--images", "4", "--simulated-from", str(d / "ref"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert calls == [{"framework": "onnxruntime", "network": "googlenet", "threads": 2, "images": 4, "simulate": False}]
    row, q = out["rows"][0], out["quick_sample"]
    assert row["lo"] <= row["pred"] <= row["hi"] and row["threads"] == 2
    assert "reference data set" in q["counts_from"] and str(d / "ref") in q["counts_from"]
    # the fake sample's own throughput is reported beside the prediction, and they agree roughly
    assert q["measured_fps"] == pytest.approx(row["measured"])
    assert abs(row["pred"] - q["measured_fps"]) / q["measured_fps"] < 0.25
    r = runner.invoke(app, ["predict", "--model", str(model), "--framework", "onnxruntime", "--network", "googlenet",
                            "--simulated-from", str(d / "ref")])
    assert r.exit_code == 0, r.output
    assert "predicted long-run throughput_fps" in r.output and "quick sample" in r.output
    assert "counts from: valgrind-simulated counts" in r.output


def test_predict_quick_sample_by_seconds(tp_setup, monkeypatch):
    import perfmodel.collect.quick as quick

    d, recs, model = tp_setup
    calls = []
    monkeypatch.setattr(quick, "quick_sample", _fake_sampler(calls, recs))
    r = runner.invoke(app, ["predict", "--model", str(model), "--framework", "onnxruntime", "--network", "googlenet",
                            "--seconds", "2.5", "--simulated-from", str(d / "ref"), "--json"])
    assert r.exit_code == 0, r.output
    assert [c.get("seconds") for c in calls] == [2.5]
    q = json.loads(r.output[r.output.index("{"):])["quick_sample"]
    cell = recs[(recs.cell_id == "onnxruntime__googlenet__t1__r0__software") & (recs.phase == "image")
                & (recs.metric == "latency_ms")]
    assert q["seconds"] == 2.5 and q["images"] == len(cell) > 0  # the images the sample counted, not --images
    r = runner.invoke(app, ["predict", "--model", str(model), "--framework", "onnxruntime", "--network", "googlenet",
                            "--seconds", "2.5", "--simulated-from", str(d / "ref")])
    assert r.exit_code == 0 and f"quick sample ({len(cell)} images in 2.5 s after warm-up)" in r.output, r.output
    for where in (["--dataset", str(d / "ref")], ["--network", "googlenet"]):  # (-- CMD: its own sample)
        r = runner.invoke(app, ["predict", "--model", str(model), "--seconds", "2", *where])
        assert isinstance(r.exception, PerfmodelError) and "--seconds applies to a quick sample" in str(r.exception)


def test_predict_quick_sample_refuses_or_simulates(tp_setup, monkeypatch):
    import perfmodel.collect.quick as quick
    from perfmodel.cli.app import main

    d, recs, model = tp_setup
    calls = []
    monkeypatch.setattr(quick, "quick_sample", _fake_sampler(calls, recs))
    argv = ["predict", "--model", str(model), "--framework", "onnxruntime", "--network", "googlenet",
            "--simulated-from", str(d / "ref_old")]
    r = runner.invoke(app, argv)
    assert isinstance(r.exception, PerfmodelError)
    assert "onnxruntime 0.0.1 (reference)" in str(r.exception) and "--simulate" in str(r.exception)
    assert calls == []  # refused before measuring anything
    r = runner.invoke(app, argv + ["--simulate", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert calls[-1]["simulate"] is True
    assert out["quick_sample"]["counts_from"].startswith("valgrind-simulated counts of this quick sample")
    # a network the reference has no valgrind cell of, without --simulate: exit 2, a message, no traceback
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(model), "--framework", "onnxruntime", "--network", "mobilenet_v1",
              "--simulated-from", str(d / "ref")])
    assert exc.value.code == 2


def test_predict_quick_sample_needs_no_reference_for_a_macs_model(tp_setup, tmp_path, monkeypatch):
    import perfmodel.collect.quick as quick

    d, recs, model = tp_setup
    macs_model = tmp_path / "macs.json"
    r = runner.invoke(app, ["fit", str(d / "ref"), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "--terms", "throughput-macs", "-o", str(macs_model)])
    assert r.exit_code == 0, r.output
    calls = []
    monkeypatch.setattr(quick, "quick_sample", _fake_sampler(calls, recs))
    r = runner.invoke(app, ["predict", "--model", str(macs_model), "--framework", "litert", "--network", "resnet50",
                            "--simulated-from", str(tmp_path / "none"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert "MACs" in out["quick_sample"]["counts_from"] and out["rows"][0]["pred"] > 0


def test_predict_real_quick_sample(tp_setup, tmp_path):
    """One real quick sample (onnxruntime, SqueezeNet v1.1, 3 images) through the CLI with a MACs model."""
    pytest.importorskip("onnxruntime")
    d, recs, model = tp_setup
    macs_model = tmp_path / "macs.json"
    r = runner.invoke(app, ["fit", str(d / "ref"), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "--terms", "throughput-macs", "-o", str(macs_model)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["predict", "--model", str(macs_model), "--framework", "onnxruntime", "--network",
                            "squeezenet1_1", "--images", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    q = out["quick_sample"]
    assert q["measured_fps"] > 0 and out["rows"][0]["pred"] > 0 and out["rows"][0]["measured"] == q["measured_fps"]


def test_fit_exclude_rows_and_refuse_unseen_framework(tp_setup, tmp_path, monkeypatch):
    import perfmodel.collect.quick as quick
    from perfmodel.model import load_model

    d, recs, model = tp_setup
    out = tmp_path / "no_litert.json"
    r = runner.invoke(app, ["fit", str(d / "ref"), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "--terms", "throughput", "--exclude", "framework=litert", "-o", str(out)])
    assert r.exit_code == 0, r.output
    m = load_model(out)
    assert m.preparation.to_json()["excluded"] == {"rules": ["framework=litert"], "rows": 8}
    assert m.training["n"] == 8 and not any("litert" in f for f in m.features)
    monkeypatch.setattr(quick, "quick_sample", _fake_sampler([], recs))
    r = runner.invoke(app, ["predict", "--model", str(out), "--framework", "litert", "--network", "googlenet",
                            "--simulated-from", str(d / "ref")])
    assert isinstance(r.exception, PerfmodelError) and "litert" in str(r.exception)
    other = tmp_path / "other.json"
    r = runner.invoke(app, ["fit", str(d / "ref"), "-t", "throughput_fps", "--exclude", "framework", "-o", str(other)])
    assert isinstance(r.exception, PerfmodelError) and "COLUMN=VALUE" in str(r.exception)
    # a rule that matches no row is a typo, not a silent no-op
    r = runner.invoke(app, ["fit", str(d / "ref"), "-t", "throughput_fps", "--exclude", "framework=litrt", "-o", str(other)])
    assert isinstance(r.exception, PerfmodelError) and "no row has framework=litrt" in str(r.exception)
    assert "litert" in str(r.exception) and not other.exists()


def test_fit_never_overwrites_silently(tp_setup, tmp_path):
    d, _, _ = tp_setup
    out = tmp_path / "m.json"
    out.write_text("precious")
    args = ["fit", str(d / "ref"), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono", "--terms", "throughput"]
    r = runner.invoke(app, args + ["-o", str(out)])
    assert isinstance(r.exception, PerfmodelError) and "--force" in str(r.exception)
    assert out.read_text() == "precious"
    r = runner.invoke(app, args + ["-o", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["target"] == "throughput_fps"
    # the data being fitted is never the output, even with --force
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    r = runner.invoke(app, ["fit", str(csv), "-t", "b", "--features", "a", "--provenance", "software", "-o", str(csv),
                            "--force"])
    assert isinstance(r.exception, PerfmodelError) and "the data being fitted" in str(r.exception)
    assert csv.read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("args, needle", [
    (["--framework", "pytorch", "--network", "squeezenet1_1"], "unknown framework 'pytorch'"),
    (["--framework", "onnxruntime", "--network", "vgg99"], "unknown network 'vgg99'"),
    (["--framework", "onnxruntime", "--network", "googlenet", "--threads", "3"], "knows threads 1, 2, not '3'"),
])
def test_quick_sample_refuses_before_sampling(tp_setup, monkeypatch, args, needle):
    import perfmodel.collect.quick as quick

    d, recs, model = tp_setup
    calls = []
    monkeypatch.setattr(quick, "quick_sample", _fake_sampler(calls, recs))
    from pathlib import Path

    trained = Path(__file__).resolve().parents[1] / "trained" / "throughput_reference.json"  # threads as levels
    r = runner.invoke(app, ["predict", "--model", str(trained), *args, "--simulated-from", str(d / "ref")])
    assert isinstance(r.exception, PerfmodelError) and needle in str(r.exception)
    assert calls == []  # refused before any sample


def test_predict_dataset_with_a_macs_model(tp_setup, tmp_path):
    d, _, _ = tp_setup
    macs_model = tmp_path / "macs.json"
    r = runner.invoke(app, ["fit", str(d / "ref"), "-t", "throughput_fps", "--kind", "loglinear", "--cv", "lono",
                            "--terms", "throughput-macs", "-o", str(macs_model)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["predict", "--model", str(macs_model), "--dataset", str(d / "ref"), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output[r.output.index("{"):])["rows"]
    assert rows and all(x["pred"] > 0 for x in rows)


def test_predict_dataset_keeps_the_rows_it_can_predict(tp_setup, tmp_path):
    """One row without its counts is reported as not evaluated; the others are predicted."""
    from perfmodel.data import read_dataset, write_records

    d, _, model = tp_setup
    recs = read_dataset(d / "ref")
    hit = (recs["cell_id"].astype(str).str.startswith("litert__googlenet__") & (recs["metric"] == "instructions")
           & recs["cell_id"].astype(str).str.endswith("valgrind"))
    assert hit.any()
    part = tmp_path / "part.parquet"
    write_records(part, recs.loc[~hit])
    r = runner.invoke(app, ["predict", "--model", str(model), "--dataset", str(part), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output[r.output.index("{"):])["rows"]
    bad = [x for x in rows if x["framework"] == "litert" and x["network"] == "googlenet"]
    good = [x for x in rows if not (x["framework"] == "litert" and x["network"] == "googlenet")]
    assert bad and all(x["pred"] is None and "instructions_per_image" in x["not_evaluated"] for x in bad)
    assert good and all(x["pred"] > 0 and x["not_evaluated"] == "" for x in good)


def test_csv_with_a_bad_thread_count_is_a_clear_error(tmp_path):
    import pandas as pd

    from perfmodel.model.prepare import with_stream_time

    df = pd.DataFrame({"framework": ["onnxruntime"] * 2, "network": ["alexnet"] * 2, "threads": [1, float("nan")]})
    with pytest.raises(PerfmodelError, match="whole thread count"):
        with_stream_time(df, None, {"1": 17.0, "2": 36.0})
    with pytest.raises(PerfmodelError, match="two"):
        with_stream_time(df.assign(threads=["1", "two"]), None, {"1": 17.0, "2": 36.0})


@pytest.mark.parametrize("args,needle", [
    (["evaluate", "{rec}", "-t", "throughput_fps", "--features", "nosuch"], "nosuch"),
    (["evaluate", "{rec}", "-t", "throughput_fps", "--folds", "1"], "--folds"),
    (["fit", "{rec}", "-t", "throughput_fps", "--jobs", "0", "-o", "{tmp}/m.json"], "--jobs"),
    (["fit", "{rec}", "-t", "throughput_fps", "--provenance", "foo", "-o", "{tmp}/m.json"], "provenance"),
    (["fit", "{rec}", "-t", "throughput_fps", "-o", "{tmp}"], "folder"),
])
def test_bad_options_are_clear_errors(records, tmp_path, args, needle):
    import subprocess
    import sys

    argv = [a.format(rec=records, tmp=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, "-m", "perfmodel", *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and needle in proc.stderr and "Traceback" not in proc.stderr


def test_predict_quick_sample_rescales_an_l2_model_to_the_speed_measured_now(tmp_path, monkeypatch):
    """A quick sample with an overhead-linear throughput-l2 model: the L2 column exists before the counts
    are rescaled (it is one of them), the ratio is training GEMM speed / the speed measured now."""
    import perfmodel.collect.calibrate as calibrate
    import perfmodel.collect.quick as quick
    from perfmodel.data import attach_calibration

    from perfmodel.data import write_dataset

    recs = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"),
                                        frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=5,
                                        overhead_ms=300.0)  # with read / pre-process times
    write_dataset(tmp_path / "ref", recs, _ref_metadata())
    cal = {"version": 1, "when": "2026-01-01T00:00:00Z", "stream_gbps": {"1": 16.0, "2": 30.0},
           "gemm_gflops": {"1": 100.0, "2": 180.0}, "errors": {}}
    attach_calibration(tmp_path / "ref", cal, note="test")
    model = tmp_path / "l2.json"
    r = runner.invoke(app, ["fit", str(tmp_path / "ref"), "-t", "throughput_fps", "--kind", "overhead-linear",
                            "--cv", "lono", "--terms", "throughput-l2", "--l2-kib", "2048", "-o", str(model), "--json"])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(quick, "quick_sample", _fake_sampler([], recs))
    argv = ["predict", "--model", str(model), "--framework", "onnxruntime", "--network", "resnet50",
            "--simulated-from", str(tmp_path / "ref"), "--json"]

    def run(gemm):
        monkeypatch.setattr(calibrate, "safe_calibration", lambda threads, **kw: {**cal, "gemm_gflops": gemm})
        r = runner.invoke(app, argv)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    same, slow, failed = run({"1": 100.0}), run({"1": 50.0}), run({})
    assert "priced at the speed measured now (x 1.000" in same["quick_sample"]["counts_from"]
    assert "priced at the speed measured now (x 2.000" in slow["quick_sample"]["counts_from"]
    assert "not rescaled" in failed["quick_sample"]["counts_from"] and "measured now" in failed["quick_sample"]["counts_from"]
    assert slow["rows"][0]["pred"] < same["rows"][0]["pred"] == pytest.approx(failed["rows"][0]["pred"], rel=1e-12)
    # the training-range check sees the counts as measured, not as priced (x 2 would leave ResNet-50's range)
    assert not slow["rows"][0].get("outside_training")
    # --l2-kib with terms that do not use it is refused, not ignored
    r = runner.invoke(app, ["fit", str(tmp_path / "ref"), "-t", "throughput_fps", "--kind", "overhead-linear",
                            "--terms", "throughput-stream", "--l2-kib", "2048", "-o", str(tmp_path / "x.json")])
    assert isinstance(r.exception, PerfmodelError) and "--l2-kib" in str(r.exception)


def test_with_speed_calibration_reasons_and_warning(tp_setup, tmp_path):
    import pandas as pd

    from perfmodel.model.prepare import with_speed_calibration
    from perfmodel.model import load_model
    from perfmodel.model.schema import Preparation

    d, _, loglinear = tp_setup
    df = pd.DataFrame({"framework": ["litert"], "network": ["resnet50"], "threads": [1],
                       "instructions_per_image": [1e9], "l2d_refills_per_image": [1e6]})
    m = load_model(loglinear)
    assert "not an additive time model" in with_speed_calibration(df, m)[1]["reason"]
    m.kind, m.preparation = "overhead-linear", Preparation(gemm_gflops={"1": 100.0})
    m.features = ["instructions_per_image*framework=litert*threads=1", "l2d_refills_per_image"]
    out, info = with_speed_calibration(df, m, now_gflops={"1": 25.0})
    assert info["ratio"] == {1: 4.0} and "another machine" in info["warning"]
    assert out["instructions_per_image"].iloc[0] == 4e9 and df["instructions_per_image"].iloc[0] == 1e9
    assert "no GEMM speed" in with_speed_calibration(df.assign(threads=2), m, now_gflops={"1": 90.0})[1]["reason"]
    assert "whole thread count" in with_speed_calibration(df.assign(threads=float("nan")), m, now_gflops={"1": 9.0})[1]["reason"]
    assert "calibration measured now" in with_speed_calibration(df, m, now_gflops={})[1]["reason"]
    m.features = ["fc_stream_ms*threads=1"]  # a fitted term on a known time: not rescaled, with the reason
    assert with_speed_calibration(df.assign(fc_stream_ms=1.0), m, now_gflops={"1": 90.0})[1]["applied"] is False


def test_command_problems_said_before_the_command_runs(tmp_path, monkeypatch):
    """A throughput model with per-framework x threads terms, a network's FC-stream time and simulated counts:
    a measured command must name its framework / network / threads (values the model knows) and run under
    valgrind; a power model needs sensors and keys a command does not record - all said before it runs."""
    from pathlib import Path

    from perfmodel.workflows.command import command_problems
    from perfmodel.model import load_model

    trained = Path(__file__).resolve().parents[1] / "trained"
    m = load_model(trained / "throughput_reference.json")
    probs = command_problems(m, framework=None, network=None, threads=None, counters="auto")
    assert len(probs) == 4, probs
    assert "per framework" in probs[0] and "--framework" in probs[0]
    assert "per threads" in probs[1] and "--threads" in probs[1]
    assert "fc_stream_ms" in probs[2] and "--network" in probs[2]
    assert "--counters valgrind" in probs[3] and "instructions_per_image" in probs[3]
    ok = dict(framework="onnxruntime", network="googlenet", threads=2, counters="valgrind")
    assert command_problems(m, **ok) == []
    assert "not a zoo network" in command_problems(m, **{**ok, "network": "mynet"})[0]
    assert command_problems(m, **{**ok, "threads": 4}) == ["the model knows threads 1, 2, not '4'"]
    assert "not 'onnx'" in command_problems(m, **{**ok, "framework": "onnx"})[0]
    # the power model: sensor readings and the cores / frequency keys cannot come from a command
    power = load_model(trained / "power_armpm_xu3_a15.json")
    probs = command_problems(power, framework=None, network=None, threads=None, counters="perf")
    assert len(probs) == 1 and "does not record" in probs[0]
    assert all(c in probs[0] for c in ("freq_mhz", "cores", "voltage_v", "temperature_c")) and "--dataset" in probs[0]
    assert "real (PMU)" in command_problems(power, framework=None, network=None, threads=None,
                                            counters="valgrind")[-1]

    # the model's terms cannot be supplied: the command's quick-sample estimate, and the model's refusal in
    # one line (not an error); the model's measurement (measure_command) is never run
    from perfmodel.collect.lines import LineSample

    called, sampled = [], []
    monkeypatch.setattr("perfmodel.collect.command.measure_command", lambda *a, **k: called.append(a))
    monkeypatch.setattr("perfmodel.collect.lines.sample_command", lambda argv, **k: sampled.append(argv) or
                        LineSample(10, 0.5, 20.0, 0.01, 3, 0.5, "images"))
    trace = str(trained.parent / "datasets" / "traces" / "squeezenet1_1")
    r = runner.invoke(app, ["predict", "--model", str(trained / "throughput_reference.json"), "--traces", trace,
                            "--", "true"])
    assert r.exit_code == 0, r.output
    refused = [line for line in r.output.splitlines() if "not applied" in line]
    assert len(refused) == 1 and "--framework" in refused[0] and "long-run estimate:" in r.output
    assert not called and sampled == [["true"]]
    # with a command, --framework/--network name what it runs (not a second input)
    r = runner.invoke(app, ["predict", "--model", str(trained / "throughput_reference.json"), "--framework",
                            "onnxruntime", "--network", "googlenet", "--threads", "1", "--traces", trace, "--json",
                            "--", "true"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["model"]["applied"] is False and "--counters valgrind" in out["model"]["reason"]
    assert "exactly one" not in out["model"]["reason"] and not called


def test_predict_command_labels_its_records(tmp_path, monkeypatch):
    """--framework/--network/--threads with a command label the measured records (the model's keys)."""
    seen = {}

    def fake_measure(argv, images, **kw):
        seen.update(kw, argv=list(argv), images=images)
        raise PerfmodelError("stop here")

    monkeypatch.setattr("perfmodel.collect.command.measure_command", fake_measure)
    from pathlib import Path

    r = runner.invoke(app, ["predict", "--model", str(Path(__file__).resolve().parents[1] / "trained" /
                                                      "throughput_reference.json"), "--framework", "onnxruntime",
                            "--network", "googlenet", "--threads", "2", "--counters", "valgrind", "--images", "3",
                            "--", "python3", "app.py"])
    assert isinstance(r.exception, PerfmodelError) and "stop here" in str(r.exception)
    assert seen["framework"] == "onnxruntime" and seen["network"] == "googlenet" and seen["threads"] == 2
    assert seen["counters"] == "valgrind" and seen["images"] == 3 and seen["argv"] == ["python3", "app.py"]


def test_stream_time_prefers_the_bandwidth_measured_now_and_says_when_it_failed():
    """A quick sample's calibration: its bandwidth when it covers the rows' thread counts; else the model's
    training figure, with the reason the one measured now was not used."""
    import pandas as pd

    from perfmodel.model.prepare import with_stream_time

    df = pd.DataFrame({"framework": ["onnxruntime"], "network": ["alexnet"], "threads": [1]})
    now, bw, src = with_stream_time(df, None, {"1": 17.0}, measured={1: 8.5})
    train, _, _ = with_stream_time(df, None, {"1": 17.0})
    assert bw == {1: 8.5} and src == "measured now (1 thr 8.5 GB/s)"
    assert now["fc_stream_ms"].iloc[0] == pytest.approx(2 * train["fc_stream_ms"].iloc[0])
    for measured in ({}, {2: 30.0}):
        _, bw, src = with_stream_time(df, None, {"1": 17.0}, measured=measured)
        assert bw == {1: 17.0} and "model's training calibration" in src
        assert "measuring it now gave no figure for thread count(s) 1" in src
    with pytest.raises(PerfmodelError, match="streaming bandwidth"):
        with_stream_time(df, None, None, measured={})


def test_counts_from_and_simulated_from_together_are_refused_by_fit_and_predict(records, tmp_path):
    from pathlib import Path

    trained = Path(__file__).resolve().parents[1] / "trained" / "throughput_reference.json"
    both = ["--counts-from", str(records), "--simulated-from", str(records)]
    for argv in (["fit", str(records), "-t", "throughput_fps", "-o", str(tmp_path / "m.json"), *both],
                 ["predict", "--model", str(trained), "--dataset", str(records), *both]):
        r = runner.invoke(app, argv)  # (the console entry point turns a PerfmodelError into exit 2)
        assert isinstance(r.exception, PerfmodelError) and "not both" in str(r.exception)
        assert not (tmp_path / "m.json").exists()
