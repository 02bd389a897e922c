"""Retraining on a new platform (perfmodel.model.adapt, perfmodel.workflows.retrain, ``perfmodel retrain``).

A synthetic "new platform" multiplies the known per-kernel costs of tests/test_operator_model.py by a factor per
kernel type; the adaptation must recover the factors from a few networks' per-node profiles (``scale``), from
their end-to-end times alone (``global``), start a thread count the model lacks from the nearest one, price a
kernel type the base cell never had, keep its size correction inside the sample's range, and record what it
was adapted from and with what. Then the workflow and the CLI on a kernel data set written to disk, their
refusals, and one real measurement (ONNX Runtime, one small network)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from test_operator_model import _io, _kernel, _random_kernel, _true_ms, synthetic_set

from perfmodel.errors import PerfmodelError
from perfmodel.model.adapt import (CellSample, adapt_operator_model, base_cell, choose_networks,
                                   sample_from_kernelset)
from perfmodel.model.operator import OperatorModel, _corrected, load_operator_model, type_key

FACTOR = {"conv:1x1": 2.0, "conv:3x3s1": 0.5, "conv:other": 1.5, "maxpool": 1.0, "relu": 1.0, "fc": 3.0}


def _new_ms(k, factor=FACTOR):
    return _true_ms(k) * factor.get(type_key(k, "split"), 1.0)


def _fitted():
    kset, nets, overhead = synthetic_set()
    return OperatorModel().fit(kset, nets), nets, overhead


def _sample(nets, names, factor=FACTOR, profiles=True, overhead=0.4):
    s = CellSample()
    for n in names:
        ks = nets[n]["onnxruntime"]
        s.networks[n] = sum(_new_ms(k, factor) for k in ks) + 0.05 + 0.3 * _io(ks) + overhead
        if profiles:
            s.profiles[n] = [(k, _new_ms(k, factor)) for k in ks]
    return s


def _growing_sample(model, nets):
    """A platform where large kernels slowed down more than small ones (the ratio grows with the kernel's
    predicted time), profiled on four networks."""
    cm = model.cell("onnxruntime", 1)

    def grow(k):
        return _true_ms(k) * (1 + 0.5 * math.log1p(model.kernel_ms(cm, k).ms))

    s = CellSample()
    for n in ("net0", "net1", "net2", "net3"):
        ks = nets[n]["onnxruntime"]
        s.profiles[n] = [(k, grow(k)) for k in ks]
        s.networks[n] = sum(grow(k) for k in ks) + 0.05 + 0.3 * _io(ks) + 0.4
    return s


def _err(model, fw, t, ks, factor=FACTOR, overhead=0.4):
    meas = sum(_new_ms(k, factor) for k in ks) + 0.05 + 0.3 * _io(ks) + overhead
    return (model.predict_kernels(fw, t, ks)["ms"] - meas) / meas


def test_per_type_scales_are_recovered_from_a_few_profiled_networks():
    model, nets, _ = _fitted()
    new, rep = adapt_operator_model(model, {("onnxruntime", 1): _sample(nets, ["net0", "net1", "net2"])}, nets,
                                    method="scale")
    r = rep[0]
    assert r.method == "scale" and r.base == ("onnxruntime", 1) and r.networks == ["net0", "net1", "net2"]
    for t in ("conv:1x1", "conv:3x3s1", "fc"):
        if t in r.type_scales:  # shrunk towards the global scale with few kernels, but on the right side of 1
            assert (r.type_scales[t] - 1) * (FACTOR[t] - 1) > 0, t
    # held-out networks: the adapted model is far closer than the original
    for n in ("net3", "net4", "net5"):
        ks = nets[n]["onnxruntime"]
        assert abs(_err(new, "onnxruntime", 1, ks)) < 0.1
        assert abs(_err(new, "onnxruntime", 1, ks)) < abs(_err(model, "onnxruntime", 1, ks))
    assert new.cell("onnxruntime", 1).source == "adapted from onnxruntime x1 (scale)"


def test_one_uniform_speed_change_is_one_global_scale_from_end_to_end_times():
    model, nets, overhead = _fitted()
    uniform = {t: 1.7 for t in FACTOR}
    s = _sample(nets, ["net0", "net1", "net2"], uniform, profiles=False, overhead=overhead * 1.7)
    new, rep = adapt_operator_model(model, {("onnxruntime", 1): s}, nets)
    assert rep[0].method in ("global", "none") and rep[0].global_scale == pytest.approx(1.7, rel=0.03)
    assert set(rep[0].lono_mape) == {"global", "none"}  # no profile: no per-type candidate
    for n in ("net3", "net4", "net5"):
        ks = nets[n]["onnxruntime"]
        assert abs(_err(new, "onnxruntime", 1, ks, uniform, overhead * 1.7)) < 0.03


def test_the_sample_decides_the_method_and_the_interval_widens_to_its_error():
    model, nets, _ = _fitted()
    new, rep = adapt_operator_model(model, {("onnxruntime", 1): _sample(nets, ["net0", "net1", "net2", "net3",
                                                                           "net4"])}, nets)
    r = rep[0]
    assert set(r.lono_mape) == {"size", "scale", "global", "none", "refit"}
    assert r.method == min(r.lono_mape, key=r.lono_mape.get)
    assert new.cell("onnxruntime", 1).network_rel_sigma == pytest.approx(max(model.cell("onnxruntime", 1).network_rel_sigma or 0, r.lono_mape[r.method] / 100), abs=1e-4)


def test_a_thread_count_the_model_lacks_starts_from_the_nearest_and_other_cells_are_kept():
    model, nets, _ = _fitted()
    assert base_cell(model, "onnxruntime", 4) == ("onnxruntime", 1)
    with pytest.raises(PerfmodelError, match="no litert predictors"):
        base_cell(model, "litert", 1)
    new, rep = adapt_operator_model(model, {("onnxruntime", 4): _sample(nets, ["net0", "net1"])}, nets)
    assert rep[0].base == ("onnxruntime", 1) and "none" not in rep[0].lono_mape
    assert new.cells == [("onnxruntime", 1), ("onnxruntime", 4)]
    assert new.cell("onnxruntime", 1).types == model.cell("onnxruntime", 1).types  # untouched
    only, _ = adapt_operator_model(model, {("onnxruntime", 4): _sample(nets, ["net0"])}, nets,
                                   keep_other_cells=False)
    assert only.cells == [("onnxruntime", 4)]


def test_a_kernel_type_new_to_the_platform_is_fitted_from_its_profiled_kernels_and_rules_are_recorded():
    model, nets, _ = _fitted()
    rng = np.random.default_rng(5)
    # the new release runs a "pad" layer of its own (the base cell never priced one): 0.4 ms per input MB
    new_nets = {}
    for n, d in nets.items():
        pads = [{**_kernel("relu", int(rng.integers(8, 40)), int(rng.integers(8, 64)), 0), "type": "pad",
                 "ops": ["pad"]} for _ in range(4)]
        new_nets[n] = {"onnxruntime": d["onnxruntime"], "ort-new": d["onnxruntime"] + pads}
    pad_ms = lambda k: 0.4 * k["input_bytes"] / 1e6 + 0.4 * k["output_bytes"] / 1e6  # noqa: E731
    s = CellSample()
    for n in ("net0", "net1", "net2"):
        ks = new_nets[n]["ort-new"]
        prof = [(k, pad_ms(k) if k["type"] == "pad" else _true_ms(k)) for k in ks]
        s.profiles[n] = prof
        s.networks[n] = sum(ms for _, ms in prof) + 0.05 + 0.3 * _io(ks) + 0.4
    new, rep = adapt_operator_model(model, {("onnxruntime", 1): s}, new_nets, method="scale",
                                    rules={("onnxruntime", 1): "ort-new"})
    cm = new.cell("onnxruntime", 1)
    assert cm.rules == "ort-new" and new.kernel_rules("onnxruntime", 1) == "ort-new" and rep[0].rules == "ort-new"
    assert "pad" in cm.types and "pad" not in model.cell("onnxruntime", 1).types
    k = {**_kernel("relu", 30, 48, 0), "type": "pad", "ops": ["pad"]}
    assert new.kernel_ms(cm, k).ms == pytest.approx(pad_ms(k), rel=0.05)
    assert model.kernel_rules("onnxruntime", 1) == "onnxruntime"


def test_the_size_correction_is_flat_outside_the_sample_range():
    corr = {"b": 0.5, "ref": 0.0, "lo": -1.0, "hi": 1.0}
    assert _corrected(corr, 1.0) == pytest.approx(1.0)
    assert _corrected(corr, math.e) == pytest.approx(math.e * math.exp(0.5))
    far = math.exp(5.0)  # beyond hi: the trend stops at hi
    assert _corrected(corr, far) == pytest.approx(far * math.exp(0.5))
    assert _corrected(None, 3.0) == 3.0


def test_the_size_trend_follows_a_ratio_that_grows_with_kernel_size():
    model, nets, _ = _fitted()
    s = _growing_sample(model, nets)
    _, rep_scale = adapt_operator_model(model, {("onnxruntime", 1): s}, nets, method="scale")
    size, rep = adapt_operator_model(model, {("onnxruntime", 1): s}, nets, method="size")
    assert any(d.get("correction", {}).get("b", 0) > 0 for d in size.cell("onnxruntime", 1).types.values())
    assert rep[0].lono_mape["size"] < rep_scale[0].lono_mape["scale"]


def test_choose_networks_covers_the_types_and_skips_siblings():
    model, nets, _ = _fitted()
    picked = choose_networks(model, nets, [("onnxruntime", 1)], k=3, siblings={"net0": {"net1"}, "net1": {"net0"}})
    assert len(picked) == 3 == len(set(picked))
    assert not {"net0", "net1"} <= set(picked)
    assert len(choose_networks(model, nets, [("onnxruntime", 1)], k=20)) == len(nets)


def test_an_adapted_model_file_round_trips_with_its_corrections_and_rules(tmp_path):
    model, nets, _ = _fitted()
    new, _ = adapt_operator_model(model, {("onnxruntime", 2): _sample(nets, ["net0", "net1", "net2"])}, nets,
                                  method="size", rules={("onnxruntime", 2): "ort-new"})
    new.source_ = {**model.source_, "adaptation": {"from": {"model": "m.json"}}}
    path = new.save(tmp_path / "a.json")
    back = load_operator_model(path)
    assert back.kernel_rules("onnxruntime", 2) == "ort-new"
    ks = nets["net4"]["onnxruntime"]
    assert back.predict_kernels("onnxruntime", 2, ks)["ms"] == pytest.approx(new.predict_kernels(
        "onnxruntime", 2, ks)["ms"], rel=1e-12)
    assert back.source_["adaptation"]["from"]["model"] == "m.json"
    doc = json.loads(path.read_text())
    doc["cells"][0]["types"]["conv:1x1"]["correction"] = "x"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match="invalid"):
        load_operator_model(tmp_path / "bad.json")


# --------------------------------------------------------------------------------------------- workflow + CLI


def _write_kernelset(folder: Path, nets, factor=FACTOR, versions=None):
    """A kernel data set on disk with the networks' times and per-node profiles (synthetic, onnxruntime x1)."""
    from perfmodel.collect.kernel_campaign import TIMING_COLUMNS
    from perfmodel.data.kernelset import KERNELSET_FILE, KERNELSET_FORMAT

    folder.mkdir(parents=True)
    (folder / "units.jsonl").write_text("")
    meta = {"format": KERNELSET_FORMAT, "version": 1, "calibrations": [], "machine": {"cpu_model": "Board X"},
            "calls": [{"versions": versions or {"onnxruntime": "9.9"}, "note": "synthetic board"}]}
    (folder / KERNELSET_FILE).write_text(json.dumps(meta))
    with open(folder / "timings.csv", "w", newline="") as f, open(folder / "profiles.jsonl", "w") as pf:
        w = csv.DictWriter(f, fieldnames=TIMING_COLUMNS)
        w.writeheader()
        for n, d in nets.items():
            ks = d["onnxruntime"]
            ms = sum(_new_ms(k, factor) for k in ks) + 0.05 + 0.3 * _io(ks) + 0.4
            w.writerow({"key": f"0|onnxruntime|1|network|{n}", "round": 0, "framework": "onnxruntime",
                        "threads": 1, "kind": "network", "item": n, "median_ms": ms, "min_ms": ms, "reps": 7,
                        "error": "", "wall_s": 1.5, "t_unix": 0})
            key = f"0|onnxruntime|1|profile|{n}"
            w.writerow({"key": key, "round": 0, "framework": "onnxruntime", "threads": 1, "kind": "profile",
                        "item": n, "median_ms": ms, "min_ms": "nan", "reps": 5, "error": "", "wall_s": 2.0,
                        "t_unix": 0})
            nodes = [{"name": f"{n}/{i}", "op": k["type"], "ms": _new_ms(k, factor), "kernel": k}
                     for i, k in enumerate(ks)]
            pf.write(json.dumps({"key": key, "round": 0, "framework": "onnxruntime", "threads": 1, "network": n,
                                 "nodes": nodes}) + "\n")


@pytest.fixture()
def patched_zoo(monkeypatch):
    """The workflow on the synthetic networks: the zoo's list and graphs replaced by them."""
    model, nets, _ = _fitted()
    import perfmodel.workflows.kernels as wk
    import perfmodel.zoo as zoo
    import perfmodel.zoo.networks as zn

    monkeypatch.setattr(zoo, "NETWORKS", {n: None for n in nets})
    monkeypatch.setattr(zn, "same_architecture", lambda n: set())
    monkeypatch.setattr(wk, "network_kernels", lambda names, fws: {n: nets[n] for n in names})
    return model, nets


def test_retrain_from_data_recorded_elsewhere_records_what_and_with_what(tmp_path, patched_zoo):
    from perfmodel.workflows.retrain import retrain

    model, nets = patched_zoo
    model.source_ = {"dataset": "synthetic"}
    model.save(tmp_path / "base.json")
    _write_kernelset(tmp_path / "board", nets)
    kset_sample = sample_from_kernelset(__import__("perfmodel.data.kernelset", fromlist=["x"]).read_kernelset(
        tmp_path / "board"), ["net0"])
    assert set(kset_sample[("onnxruntime", 1)].profiles) == {"net0"}
    res = retrain(tmp_path / "base.json", tmp_path / "adapted.json", data=tmp_path / "board", n_networks=3)
    assert len(res["networks"]) == 3 and res["cells"][0]["framework"] == "onnxruntime"
    m = load_operator_model(tmp_path / "adapted.json")
    rec = m.source_["adaptation"]
    import hashlib

    assert rec["from"]["sha256"] == hashlib.sha256((tmp_path / "base.json").read_bytes()).hexdigest()
    assert rec["from"]["fitted_on"] == "synthetic"
    assert rec["with"]["networks"] == res["networks"] and rec["with"]["measured_here"] is False
    assert rec["with"]["machine"] == "Board X" and rec["with"]["versions"] == {"onnxruntime": "9.9"}
    assert rec["with"]["note"] == "synthetic board"
    assert rec["with"]["measured_s"] == pytest.approx(3 * 3.5)  # the sampled rows' wall time
    held = [n for n in nets if n not in res["networks"]]
    for n in held:
        assert abs(_err(m, "onnxruntime", 1, nets[n]["onnxruntime"])) < 0.1


def test_retrain_refusals(tmp_path, patched_zoo):
    from perfmodel.workflows.retrain import retrain

    model, nets = patched_zoo
    model.source_ = {"dataset": "synthetic"}
    model.save(tmp_path / "base.json")
    _write_kernelset(tmp_path / "board", nets)
    with pytest.raises(PerfmodelError, match="no litert predictors"):
        retrain(tmp_path / "base.json", tmp_path / "o.json", frameworks=["litert"], data=tmp_path / "board")
    with pytest.raises(PerfmodelError, match="not both"):
        retrain(tmp_path / "base.json", tmp_path / "o.json", data=tmp_path / "board", measure_dir=tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PerfmodelError, match="neither a kernel data set"):
        retrain(tmp_path / "base.json", tmp_path / "o.json", data=tmp_path / "empty")
    with pytest.raises(PerfmodelError, match="no zoo network timed on every cell asked \\(onnxruntime x2\\)"):
        retrain(tmp_path / "base.json", tmp_path / "o.json", threads=[2], data=tmp_path / "board")
    with pytest.raises(PerfmodelError, match="no timing of net0 for onnxruntime x2"):
        retrain(tmp_path / "base.json", tmp_path / "o.json", threads=[2], networks=["net0"],
                data=tmp_path / "board")
    with pytest.raises(PerfmodelError, match="--python"):
        retrain(tmp_path / "base.json", tmp_path / "o.json", data=tmp_path / "board", python="/usr/bin/python3")
    assert not (tmp_path / "o.json").exists()


def test_retrain_cli_prints_the_adapted_cells(tmp_path, patched_zoo):
    from perfmodel.cli.app import app

    model, nets = patched_zoo
    model.source_ = {"dataset": "synthetic"}
    model.save(tmp_path / "base.json")
    _write_kernelset(tmp_path / "board", nets)
    r = CliRunner().invoke(app, ["retrain", "--model", str(tmp_path / "base.json"), "--out",
                                 str(tmp_path / "a.json"), "--data", str(tmp_path / "board"), "--count", "2"])
    assert r.exit_code == 0, r.output
    assert "onnxruntime" in r.output and "in all" in r.output and "onnxruntime 9.9" in r.output
    r = CliRunner().invoke(app, ["retrain", "--model", str(tmp_path / "base.json"), "--out",
                                 str(tmp_path / "b.json"), "--data", str(tmp_path / "board"), "--json",
                                 "--networks", "net1,net2", "--method", "global"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["networks"] == ["net1", "net2"] and out["cells"][0]["method"] == "global"
    r = CliRunner().invoke(app, ["retrain", "--model", str(tmp_path / "base.json"), "--out",
                                 str(tmp_path / "c.json"), "--data", str(tmp_path / "board"), "--method", "magic"])
    assert r.exit_code != 0 and "--method 'magic'" in str(r.exception)
    assert "networks to" not in r.output  # refused before anything is chosen or measured


def test_retrain_measures_a_real_framework_here(tmp_path):
    """The measuring path end to end: the shipped model's ONNX Runtime x1 cell adapted from one small zoo
    network timed and profiled on this machine, in a worker of this interpreter named by --python."""
    import sys

    from perfmodel.workflows.retrain import retrain

    root = Path(__file__).resolve().parents[1]
    res = retrain(root / "trained" / "throughput_operator.json", tmp_path / "a.json", frameworks=["onnxruntime"],
                  threads=[1], networks=["squeezenet1_1"], python=sys.executable, note="test")
    cell = res["cells"][0]
    assert cell["framework"] == "onnxruntime" and cell["profiled_kernels"] > 10
    assert res["versions"]["onnxruntime"]
    m = load_operator_model(tmp_path / "a.json")
    assert m.source_["adaptation"]["with"]["measured_here"] is True
    assert (tmp_path / "a-sample" / "kernelset.json").is_file()
    assert m.source_["adaptation"]["seconds"]["measure"] > 0


def test_one_sampled_network_still_adapts():
    """With one network nothing can be left out but for "none" (which needs no data): it must not win by
    default, the sample's own correction is taken."""
    model, nets, overhead = _fitted()
    uniform = {t: 2.0 for t in FACTOR}
    s = _sample(nets, ["net0"], uniform, profiles=False, overhead=overhead * 2)
    new, rep = adapt_operator_model(model, {("onnxruntime", 1): s}, nets)
    assert rep[0].method == "global" and rep[0].global_scale == pytest.approx(2.0, rel=0.02)
    assert abs(_err(new, "onnxruntime", 1, nets["net3"]["onnxruntime"], uniform, overhead * 2)) < 0.03


# --------------------------------------------------------------------------------------------- network level


def test_a_time_scale_scales_a_rate_models_time_part_per_cell(tmp_path):
    import pandas as pd

    from perfmodel.model import load_model, save_model
    from perfmodel.model.modelfile import IncompatibleSampleError

    root = Path(__file__).resolve().parents[1]
    m = load_model(root / "trained" / "throughput_reference.json")
    p = m.params
    assert p.rate_scale > 0
    rows = pd.DataFrame({"framework": ["onnxruntime", "opencv"], "threads": [1, 1], "fps": [50.0, 20.0]})
    pred = np.array([50.0, 20.0])
    scaled = m.__class__._time_scaled
    m.preparation.time_scale = {"onnxruntime x1": 2.0}
    with pytest.raises(IncompatibleSampleError, match="opencv x1 was not adapted"):
        scaled(m, rows, pred, pred, pred)  # a cell the retrain did not measure is refused (row by row: its reason)
    out, lo, hi = scaled(m, rows.iloc[:1], pred[:1], pred[:1] * 0.9, pred[:1] * 1.1)
    t = p.rate_scale / 50.0 - p.overhead
    assert out[0] == pytest.approx(p.rate_scale / (p.overhead + 2 * t))
    assert lo[0] <= out[0] <= hi[0]
    with pytest.raises(IncompatibleSampleError, match="framework and threads"):
        scaled(m, rows.drop(columns=["threads"]), pred, pred, pred)
    save_model(m, tmp_path / "n.json")
    assert load_model(tmp_path / "n.json").preparation.time_scale == {"onnxruntime x1": 2.0}
    m.preparation.time_scale = None
    with pytest.raises(Exception):
        m.preparation.time_scale = {"onnxruntime": 2.0}  # keys are "framework xN"


def test_retrain_adapts_the_network_level_model_from_the_same_sample(tmp_path):
    """The shipped network-level model (fitted on an Intel Xeon) adapted from three zoo networks recorded on
    this project's retrain data set: the time factor per cell brings the sample's error down and is recorded."""
    from perfmodel.model import load_model
    from perfmodel.workflows.retrain import network_model_fps, retrain

    root = Path(__file__).resolve().parents[1]
    res = retrain(root / "trained" / "throughput_operator.json", tmp_path / "op.json", frameworks=["onnxruntime"],
                  threads=[1], networks=["squeezenet1_1", "resnet18", "googlenet"],
                  data=root / "datasets" / "retrain" / "upgrade" / "truth",
                  network_model=root / "trained" / "throughput_reference.json", network_out=tmp_path / "net.json")
    nm = res["network_model"]
    (cell,) = nm["cells"]
    assert cell["cell"] == "onnxruntime x1" and sorted(cell["networks"]) == ["googlenet", "resnet18", "squeezenet1_1"]
    m = load_model(tmp_path / "net.json")
    from perfmodel.data.kernelset import read_kernelset
    from perfmodel.model.adapt import rate_time_ms

    truth = read_kernelset(root / "datasets" / "retrain" / "upgrade" / "truth")
    sample = [("onnxruntime", 1, n) for n in cell["networks"]]
    fa = network_model_fps(m, sample)
    ratios = sorted(rate_time_ms(m, fa[k]) / truth.network_median(*k) for k in sample)
    assert ratios[1] == pytest.approx(1.0, rel=1e-6)  # the factor is the sample's median ratio
    assert cell["lono_mape"] > 0 and cell["before_mape"] > 0
    assert m.preparation.time_scale == {"onnxruntime x1": pytest.approx(cell["scale"])}
    assert m.metadata["adaptation"]["with"]["networks"] == ["squeezenet1_1", "resnet18", "googlenet"]
    before = load_model(root / "trained" / "throughput_reference.json")
    keys = [("onnxruntime", 1, "resnet50"), ("opencv", 1, "resnet50")]
    fb, fa = network_model_fps(before, keys), network_model_fps(m, keys)
    assert fa[keys[0]] != pytest.approx(fb[keys[0]])
    assert keys[1] not in fa  # not adapted: no prediction rather than the other platform's
    with pytest.raises(PerfmodelError, match="go together"):
        retrain(root / "trained" / "throughput_operator.json", tmp_path / "x.json",
                network_model=root / "trained" / "throughput_reference.json")
    with pytest.raises(PerfmodelError, match="retrain adapts throughput models"):
        retrain(root / "trained" / "throughput_operator.json", tmp_path / "x.json",
                network_model=root / "trained" / "power_armpm_xu3_a15.json", network_out=tmp_path / "y.json")


def test_adapting_an_adapted_cell_moves_its_size_trend_with_the_new_scale():
    model, nets, _ = _fitted()
    s = _growing_sample(model, nets)
    once, _ = adapt_operator_model(model, {("onnxruntime", 1): s}, nets, method="size")
    cm = once.cell("onnxruntime", 1)
    assert any(d.get("correction") for d in cm.types.values())
    ks = nets["net5"]["onnxruntime"]
    before = {id(k): once.kernel_ms(cm, k).ms for k in ks}
    # the platform then runs every kernel 1.5x slower: a second, uniform adaptation must give 1.5x each kernel
    from perfmodel.model.adapt import _scaled_cell

    twice = _scaled_cell(cm, "onnxruntime", 1, 1.5, {})
    for k in ks:
        assert once.kernel_ms(twice, k).ms == pytest.approx(1.5 * before[id(k)], rel=1e-9)


def test_an_explicit_method_that_cannot_apply_says_why():
    model, nets, overhead = _fitted()
    s = _sample(nets, ["net0", "net1"], profiles=False)
    with pytest.raises(PerfmodelError, match="--method scale cannot apply: no per-node profile"):
        adapt_operator_model(model, {("onnxruntime", 1): s}, nets, method="scale")
    with pytest.raises(PerfmodelError, match="--method none cannot apply: the base is another cell"):
        adapt_operator_model(model, {("onnxruntime", 3): s}, nets, method="none")


def test_a_sample_folder_is_resumed_only_on_its_own_platform(tmp_path):
    from perfmodel.workflows.retrain import _check_same_platform

    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "kernelset.json").write_text(json.dumps({"calls": [{"python": "/venv-a/bin/python", "note": None}]}))
    _check_same_platform(folder, "/venv-a/bin/python", None)
    with pytest.raises(PerfmodelError, match="measured with --python '/venv-a/bin/python'"):
        _check_same_platform(folder, "/venv-b/bin/python", None)
    with pytest.raises(PerfmodelError, match="another folder"):
        _check_same_platform(folder, "/venv-a/bin/python", "loaded")
    _check_same_platform(tmp_path / "new", "/x", None)  # nothing there yet


def test_a_cell_adapted_to_opencvs_new_engine_prices_the_stem_on_its_own():
    """Rules `opencv-new` (RULE_SCHEMES): the adapted cell takes the stem scheme; the stem starts from the base's
    conv:other predictor and gets its own scale from the sample's profiled stems (3x slower here, the others
    as before); the file keeps the cell's scheme."""
    from perfmodel.model.adapt import RULE_SCHEMES

    assert RULE_SCHEMES["opencv-new"] == "stem"
    model, nets, _ = _fitted()
    stems = {n: _kernel("conv", 64, 3, 32, 7, 2) for n in nets}
    new_nets = {n: {"onnxruntime": d["onnxruntime"], "opencv-new": [stems[n]] + d["onnxruntime"]}
                for n, d in nets.items()}
    slow = lambda k: _true_ms(k) * (3.0 if k["input_hwc"][2] <= 4 else 1.0)  # noqa: E731
    s = CellSample()
    for n in ("net0", "net1", "net2"):
        ks = new_nets[n]["opencv-new"]
        s.profiles[n] = [(k, slow(k)) for k in ks]
        s.networks[n] = sum(slow(k) for k in ks) + 0.05 + 0.3 * _io(ks) + 0.4
    new, _ = adapt_operator_model(model, {("onnxruntime", 1): s}, new_nets, method="scale",
                                  rules={("onnxruntime", 1): "opencv-new"})
    cm, base = new.cell("onnxruntime", 1), model.cell("onnxruntime", 1)
    assert cm.type_scheme == "stem" and base.type_scheme is None and "conv:stem" not in base.types
    stem = stems["net3"]
    other = dict(stem, input_hwc=[64, 64, 8])  # the same conv, not a stem: priced as conv:other
    ratio = new.kernel_ms(cm, stem).ms / new.kernel_ms(cm, other).ms
    assert 1.4 < ratio < 3.0  # 3 stems: shrunk towards the cell's global scale (without the scheme: 1.0)
    assert model.kernel_ms(base, stem).ms == pytest.approx(model.kernel_ms(base, other).ms)
    back = OperatorModel.from_dict(json.loads(json.dumps(new.to_dict())))
    assert back.cell("onnxruntime", 1).type_scheme == "stem"
    assert back.kernel_ms(back.cell("onnxruntime", 1), stem).ms == pytest.approx(new.kernel_ms(cm, stem).ms)


def test_a_stem_cell_adapted_back_to_the_classic_engine_drops_the_stem_scheme():
    from perfmodel.model.adapt import _with_rule_scheme

    model, _, _ = _fitted()
    base = model.cell("onnxruntime", 1)
    new_engine = _with_rule_scheme(model, base, "opencv-new")
    assert new_engine.type_scheme == "stem" and "conv:stem" in new_engine.types
    back = _with_rule_scheme(model, new_engine, "opencv")
    assert back.type_scheme is None and "conv:stem" not in back.types
    assert set(back.types) == set(base.types)
    assert _with_rule_scheme(model, base, "opencv") is base


def test_refit_learns_the_new_platform_from_the_sample_alone_and_needs_profiles():
    """`refit`: the kernel predictors refitted on the sampled networks' profiles and times predict a held-out
    network of the new platform; a type the sample lacks keeps the base's predictor at the global scale; no
    profile: refused with the reason."""
    model, nets, _ = _fitted()
    names = ["net0", "net1", "net2", "net3", "net4"]
    new, rep = adapt_operator_model(model, {("onnxruntime", 1): _sample(nets, names)}, nets, method="refit")
    cm = new.cell("onnxruntime", 1)
    assert rep[0].method == "refit" and cm.source.endswith("(refit)")
    assert abs(_err(new, "onnxruntime", 1, nets["net5"]["onnxruntime"])) < 0.05
    assert abs(_err(model, "onnxruntime", 1, nets["net5"]["onnxruntime"])) > 0.2  # the base is far off
    with pytest.raises(PerfmodelError, match="refit cannot apply: fewer than 4 profiled networks"):
        adapt_operator_model(model, {("onnxruntime", 1): _sample(nets, names, profiles=False)}, nets, method="refit")
    three = adapt_operator_model(model, {("onnxruntime", 1): _sample(nets, names[:3])}, nets)[1][0]
    assert "refit" not in three.lono_mape  # 2 networks per leave-one-out fit: no refit candidate
