"""Throughput model pieces on synthetic data: simulated-count join, term sets, reference checks, fitting."""

from __future__ import annotations

import platform

import numpy as np
import pandas as pd
import pytest

from perfmodel.data import wide_per_cell, write_dataset
from perfmodel.model import fit_model
from perfmodel.model.features import (FeatureError, additive_throughput_terms, attach_macs, join_simulated,
                                      throughput_terms)
from perfmodel.model.synthetic import synthetic_throughput_records
from perfmodel.sysinfo import library_versions

NETS = ("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50")


@pytest.fixture(scope="module")
def records():
    return synthetic_throughput_records(networks=NETS, frameworks=("litert", "onnxruntime"), threads=(1, 2), seed=3)


def _ref_metadata(**versions):
    v = dict(library_versions())
    v.update(versions)
    return {"versions": v, "system": {"arch": platform.machine()}}


def test_join_attaches_simulated_counts_to_every_thread_count(records):
    wide = wide_per_cell(records)
    table = join_simulated(wide)
    joined = table.frame
    assert not joined["cell_id"].str.endswith("__valgrind").any()
    assert len(joined) == len(NETS) * 2 * 2
    sim = wide.frame[wide.frame["counter_source"] == "valgrind"].set_index(["framework", "network"])
    for _, r in joined.iterrows():
        assert r["instructions_per_image"] == pytest.approx(sim.loc[(r["framework"], r["network"]), "instructions_per_image"])
    assert table.provenance.get("instructions_per_image") == "simulated"
    assert table.meta["join_simulated_events"][0] == "instructions"
    # per-second rates come from the simulated counts and each cell's own latency
    r = joined.iloc[0]
    assert r["instructions_per_s"] == pytest.approx(r["instructions_per_image"] / (r["latency_ms"] / 1000))


def test_join_leaves_unmatched_cells_nan(records):
    drop = records["cell_id"] == "litert__resnet50__t1__r0__valgrind"
    table = join_simulated(wide_per_cell(records[~drop]))
    joined = table.frame
    gone = joined[(joined["framework"] == "litert") & (joined["network"] == "resnet50")]
    assert len(gone) == 2 and gone["instructions_per_image"].isna().all()
    assert table.meta["join_unmatched"] == 2
    with pytest.raises(FeatureError, match="no simulated"):
        join_simulated(wide_per_cell(records[~records["cell_id"].str.endswith("__valgrind")]))


def test_throughput_term_sets(records):
    df = join_simulated(wide_per_cell(records)).frame
    log_terms = throughput_terms(df)
    assert log_terms == ["log(instructions_per_image)", "framework=onnxruntime", "log(threads)",
                         "log(threads)*framework=onnxruntime"]
    levels = throughput_terms(df, threads_model="levels")
    assert levels[-2:] == ["threads=2*framework=litert", "threads=2*framework=onnxruntime"]
    one_thread = df[df["threads"] == 1]
    assert throughput_terms(one_thread) == ["log(instructions_per_image)", "framework=onnxruntime"]
    with pytest.raises(FeatureError):
        throughput_terms(df, work="not_a_column")
    with pytest.raises(FeatureError):
        throughput_terms(df, threads_model="cubic")


def test_simulated_model_beats_macs_baseline_on_its_ground_truth(records):
    df = join_simulated(wide_per_cell(records))
    model = fit_model(df, "throughput_fps", throughput_terms(df.frame), kind="loglinear", groups="lono", select="fixed")
    rows = {r["model"]: r for r in model.cv["results"]}
    assert model.cv["scheme"] == "leave-one-network-out"
    assert model.column_provenance["instructions_per_image"] == ["simulated"]
    # the synthetic truth is fps ~ 1 / instructions: the instruction model must do better than MACs
    assert rows["loglinear"]["mape"] < rows["baseline: MACs-only"]["mape"]
    assert rows["loglinear"]["mape"] < rows["baseline: mean"]["mape"]
    # the fitted elasticity of fps to instructions is close to -1 (work doubles -> fps halves)
    coef = model.coefficients().set_index("term")["coef"]
    assert coef["log(instructions_per_image)"] == pytest.approx(-1.0, abs=0.15)


def test_reference_mismatch_and_records(records, tmp_path):
    from perfmodel.versions import counts_applicability
    from perfmodel.workflows.quick import reference_simulated_records

    def reference_mismatch(ref_meta, frameworks):
        return counts_applicability(ref_meta, frameworks).reasons()

    assert reference_mismatch(_ref_metadata(), "onnxruntime") == []
    why = reference_mismatch(_ref_metadata(onnxruntime="0.0.1"), "onnxruntime")
    assert len(why) == 1 and "onnxruntime 0.0.1" in why[0]
    # another framework's library does not matter
    assert reference_mismatch(_ref_metadata(onnxruntime="0.0.1"), "litert") == []
    other_arch = dict(_ref_metadata(), system={"arch": "not-" + platform.machine()})
    assert any("architecture" in w for w in reference_mismatch(other_arch, "litert"))
    assert any("does not record" in w for w in reference_mismatch({"versions": {}}, "litert"))

    ok = tmp_path / "ref"
    write_dataset(ok, records, _ref_metadata())
    got, note = reference_simulated_records(ok, "onnxruntime", "googlenet")
    assert got is not None and "same onnxruntime version and architecture" in note
    assert set(got["cell_id"]) == {"onnxruntime__googlenet__t1__r0__valgrind"}
    got, note = reference_simulated_records(ok, "tensorflow", "googlenet")
    assert got is None and "no finished valgrind cell" in note
    bad = tmp_path / "ref_old"
    write_dataset(bad, records, _ref_metadata(onnxruntime="0.0.1"))
    got, note = reference_simulated_records(bad, "onnxruntime", "googlenet")
    assert got is None and "does not apply here" in note
    got, note = reference_simulated_records(tmp_path / "nothing", "onnxruntime", "googlenet")
    assert got is None and "no reference data set" in note


def test_drop_incomplete_and_named_terms(records):
    from perfmodel.workflows.fit import drop_incomplete, named_terms

    df = join_simulated(wide_per_cell(records[records["cell_id"] != "litert__googlenet__t1__r0__valgrind"]))
    df2, feats = named_terms(df, "throughput")
    assert feats == throughput_terms(df.frame)
    kept, dropped = drop_incomplete(df2, "throughput_fps", feats)
    assert sorted(dropped) == ["litert__googlenet__t1__r0__software", "litert__googlenet__t2__r0__software"]
    assert len(kept) == len(df) - 2 and np.isfinite(kept.frame["instructions_per_image"]).all()
    assert kept.provenance.get("instructions_per_image") == "simulated"
    df3, macs_terms = named_terms(df, "throughput-macs")
    assert macs_terms[0] == "log(macs)" and (df3.frame["macs"] > 0).all()
    assert attach_macs(df3) is df3
    from perfmodel.errors import PerfmodelError

    with pytest.raises(PerfmodelError):
        named_terms(df, "power")


def test_levels_model_predicts_unseen_network_within_tolerance(records):
    df = join_simulated(wide_per_cell(records))
    train = df.rows(df.frame["network"] != "googlenet", reset_index=True)
    test = df.rows(df.frame["network"] == "googlenet", reset_index=True)
    model = fit_model(train, "throughput_fps", throughput_terms(train.frame, threads_model="levels"), kind="loglinear",
                      groups="lono", select="fixed", baselines=False, statistics=False)
    pred = model.predict_frame(test)
    fps = test.frame["throughput_fps"]
    rel = np.abs(pred["pred"] - fps) / fps
    assert (rel < 0.15).all()
    assert ((pred["lo"] <= fps) & (fps <= pred["hi"])).mean() >= 0.75
    assert isinstance(pred, pd.DataFrame)


def test_overhead_model_uses_training_overhead_only_and_round_trips(tmp_path):
    """overhead-loglinear: overhead = training rows' mean read + pre-process ms (never the held-out rows'),
    exact on its own ground truth where a plain log-linear model is biased, saved and reloaded bit-exactly."""
    from perfmodel.model import load_model, save_model
    from perfmodel.model.cv import FeatureModel, cross_validate, make_splits
    from perfmodel.model.estimators import make_estimator

    recs = synthetic_throughput_records(networks=NETS, frameworks=("litert", "onnxruntime"), threads=(1,),
                                        seed=2, noise=0.0, overhead_ms=300.0)
    table = join_simulated(wide_per_cell(recs))
    df = table.frame
    assert {"read_ms", "preprocess_ms"} <= set(df.columns)
    terms = throughput_terms(df)
    fm = FeatureModel(make_estimator("overhead-loglinear"), terms)
    train = df[df["network"] != "resnet50"]
    fm.fit(train, train["throughput_fps"].to_numpy())
    assert fm.estimator_.overhead == pytest.approx((train["read_ms"] + train["preprocess_ms"]).mean(), rel=1e-12)
    assert fm.estimator_.overhead == pytest.approx(300.0, rel=1e-9)  # ~ the inference time of small nets
    splits = make_splits(df, group="network")
    y = df["throughput_fps"]
    over = cross_validate(fm, df, "throughput_fps", splits, name="o", group="network")
    plain = cross_validate(FeatureModel(make_estimator("loglinear"), terms), df, "throughput_fps", splits,
                           name="p", group="network")
    assert over.metrics["mape"] < plain.metrics["mape"]
    # the synthetic ground truth has an LLC term the features lack: close, not exact
    assert over.metrics["mape"] < 3.0

    model = fit_model(table, "throughput_fps", terms, kind="overhead-loglinear", groups="lono", select="fixed")
    assert model.params.overhead == pytest.approx(300.0, rel=1e-9) and model.params.rate_scale == 1000.0
    path = save_model(model, tmp_path / "m.json")
    d = __import__("json").loads(path.read_text())
    assert d["schema_version"] >= 2 and d["transforms"]["rate"]["overhead"] == float.hex(model.params.overhead)
    back = load_model(path)
    p1, p2 = model.predict_frame(table), back.predict_frame(table)
    assert p1.to_numpy().tobytes() == p2.to_numpy().tobytes()
    assert (p1["lo"] < p1["pred"]).all() and (p1["pred"] < p1["hi"]).all()
    assert np.allclose(p1["pred"], y, rtol=0.05)


def test_overhead_model_refuses_targets_and_data_it_cannot_model(records, tmp_path):
    import json

    from perfmodel.errors import PerfmodelError
    from perfmodel.model import ModelFileError, load_model, save_model

    df = join_simulated(wide_per_cell(records))  # no read_ms / preprocess_ms
    terms = throughput_terms(df.frame)
    with pytest.raises(PerfmodelError, match="read_ms"):
        fit_model(df, "throughput_fps", terms, kind="overhead-loglinear", groups="lono", select="fixed")
    df = df.with_frame(df.frame.assign(read_ms=0.1, preprocess_ms=0.9, power_w=3.0))
    for target in ("power_w", "latency_ms"):  # a latency is the time itself, not a rate
        with pytest.raises(PerfmodelError, match="throughput target"):
            fit_model(df, target, terms, kind="overhead-loglinear", groups="lono", select="fixed")
    model = fit_model(df, "throughput_fps", terms, kind="overhead-loglinear", groups="lono",
                      select="fixed", baselines=False)
    d = json.loads(save_model(model, tmp_path / "m.json").read_text())
    d["schema_version"] = 1  # a version-1 reader would ignore the rate transform: refuse the combination
    body = {k: v for k, v in d.items() if k != "checksum"}
    from perfmodel.model.modelfile import _canonical

    d["checksum"] = "sha256:" + __import__("hashlib").sha256(_canonical(body)).hexdigest()
    (tmp_path / "v1.json").write_text(json.dumps(d))
    with pytest.raises(ModelFileError, match="schema_version >= 2"):
        load_model(tmp_path / "v1.json")


def test_additive_model_fits_files_and_refuses_non_rates(tmp_path):
    """overhead-linear on the additive terms: LONO beats the MACs baseline on its ground truth (an LLC
    term the log model lacks), round-trips bit-exactly with the 'linear' time transform."""
    from perfmodel.model import load_model, save_model
    from perfmodel.model.features import additive_throughput_terms

    recs = synthetic_throughput_records(networks=NETS, frameworks=("litert", "onnxruntime"), threads=(1, 2),
                                        seed=2, noise=0.01, overhead_ms=300.0)
    table = join_simulated(wide_per_cell(recs))
    df = table.frame
    terms = additive_throughput_terms(df, memory=("llc_misses_per_image",))
    assert terms == [f"instructions_per_image*framework={fw}*threads={t}" for fw in ("litert", "onnxruntime")
                     for t in (1, 2)] + ["llc_misses_per_image"]
    model = fit_model(table, "throughput_fps", terms, kind="overhead-linear", groups="lono", select="fixed")
    base = next(r for r in model.cv["results"] if r["model"].startswith("baseline: MACs"))
    assert model.cv["mape"] < 3.0 < base["mape"]
    d = __import__("json").loads(save_model(model, tmp_path / "m.json").read_text())
    assert d["transforms"]["rate"]["time"] == "linear"
    back = load_model(tmp_path / "m.json")
    assert back.params.rate_time == "linear"
    p1, p2 = model.predict_frame(table), back.predict_frame(table)
    assert p1.to_numpy().tobytes() == p2.to_numpy().tobytes()
    assert ((p1["lo"] <= df["throughput_fps"]) & (df["throughput_fps"] <= p1["hi"])).mean() >= 0.85


def test_default_throughput_candidates_never_restate_the_latency(records):
    """CPU time, cycles, rates and per-cycle ratios divide by (or are) the run's own time: not defaults."""
    from perfmodel.model.fit import default_candidates

    df = join_simulated(wide_per_cell(records)).frame
    lat = df["latency_ms"].to_numpy()
    df = df.assign(read_ms=0.1, preprocess_ms=0.9, task_clock_ms_per_image=lat, cycles_per_image=1.2e6 * lat,
                   instructions_per_cycle=df["instructions_per_image"] / (1.2e6 * lat))
    for kind in ("loglinear", "overhead-linear", "linear"):
        cands, always = default_candidates(df, "throughput_fps", kind)
        named = " ".join(cands + always)
        assert "task_clock" not in named and "cycles_per_image" not in named and "_per_s" not in named, kind
        assert "per_cycle" not in named, kind
        assert any("l1d_refills_per_image" in c for c in cands), kind
    cands, always = default_candidates(df, "throughput_fps", "overhead-linear")
    assert always == additive_throughput_terms(df, memory=()) and "llc_misses_per_image" in cands
