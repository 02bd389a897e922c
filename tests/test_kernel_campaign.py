"""Profiling units (perfmodel.zoo.units) and the kernel campaign (perfmodel.collect.kernel_campaign): sampled
configurations stay within their caps and their MACs agree with the kernels detected on their graphs; a small
campaign writes its rows, resumes without repeating them, keeps a failed item's error, and feeds the
operator-level fit."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from perfmodel.zoo import units as U

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _prior():
    base = {"h": 28, "w": 28, "c_in": 64, "c_out": 64, "k": 3, "s": 1, "n": 2, "pad": 1}
    return {t: [dict(base, k=1 if t in ("fc", "softmax") else 3)] for t in U.TYPES}


def test_sampled_units_are_capped_unique_and_reproducible():
    a = U.sample_units(200, seed=3, prior=_prior())
    b = U.sample_units(200, seed=3, prior=_prior())
    assert [u.id for u in a] == [u.id for u in b]
    assert len({u.id for u in a}) == 200
    for u in a:
        assert u.macs() <= U.MAX_MACS and u.weight_bytes() <= U.MAX_WEIGHT_BYTES
        assert min(u.out_hw()) >= 1
    assert {u.type for u in a} >= {"conv", "dwconv", "fc", "maxpool", "add", "concat"}
    near = U.units_near(a[:5], 10, seed=1)
    assert len(near) == 10 and [u.type for u in near] == [a[i % 5].type for i in range(10)]


def test_unit_macs_and_inputs_agree_with_its_graph():
    from perfmodel.zoo.kernels import detect_kernels

    for u in [U.Unit("conv", 17, 17, 24, 40, 3, 2, pre_pad=1, act="relu"),
              U.Unit("conv", 9, 9, 16, 32, 1, 1, act="relu6", fused_add=True),
              U.Unit("dwconv", 14, 14, 32, 32, 3, 1, act="relu6"), U.Unit("fc", c_in=300, c_out=70),
              U.Unit("maxpool", 15, 15, 8, 8, 3, 2, same=False), U.Unit("concat", 6, 6, 24, n_inputs=3)]:
        g = U.unit_graph(u)
        ks = detect_kernels(g, "onnxruntime")
        assert sum(k.macs for k in ks) == u.macs(), u
        assert sorted(g.inputs.values()) == sorted(tuple(s) if len(s) == 3 else (1, 1, s[0])
                                                   for s in U._input_hwc(u)), u
    conv = U.Unit("conv", 9, 9, 16, 32, 1, 1, act="relu", fused_add=True)
    ort = [" ".join(k.ops) for k in detect_kernels(U.unit_graph(conv), "onnxruntime")]
    assert ort == ["conv bias add relu"]  # ORT fuses the residual add: one kernel, as in ResNet


def test_small_campaign_resumes_and_fits(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from perfmodel.collect import kernel_campaign as KC
    from perfmodel.data.kernelset import read_kernelset
    from perfmodel.model.operator import OperatorModel

    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(KC, "DEFAULT_TIMING", {"unit": {"warmup": 1, "min_reps": 3, "min_time_s": 0.0,
                                                        "max_reps": 3}})
    units = U.sample_units(12, seed=0, prior=_prior(), weights={"conv": 1, "maxpool": 1, "add": 1})
    folder = tmp_path / "ks"
    lines = []
    KC.run_kernel_campaign(folder, units, networks=[], frameworks=["onnxruntime"], threads=[1], rounds=2,
                           say=lines.append)
    rows = list(csv.DictReader(open(folder / "timings.csv")))
    assert len(rows) == 12 and all(not r["error"] and float(r["median_ms"]) > 0 for r in rows)
    assert {r["round"] for r in rows} == {"0", "1"}
    recs = [json.loads(x) for x in (folder / "units.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == [u.id for u in units] and all(r["kernels"]["onnxruntime"] for r in recs)
    meta = json.loads((folder / "kernelset.json").read_text())
    assert meta["format"] == "perfmodel-kernelset" and not (folder / "dataset.json").exists()
    assert [c["at"] for c in meta["calibrations"]] == ["start", "end"] and meta["calls"][0]["wall_s"] >= 0
    # resume: nothing timed again
    lines.clear()
    KC.run_kernel_campaign(folder, units, networks=[], frameworks=["onnxruntime"], threads=[1], rounds=2,
                           say=lines.append)
    assert not any("block" in x for x in lines)
    assert len(list(csv.DictReader(open(folder / "timings.csv")))) == 12
    kset = read_kernelset(folder)
    m = OperatorModel(type_scheme="base").fit(kset)
    assert m.cell("onnxruntime", 1).n_units == 12


def test_a_failing_item_is_recorded_and_the_block_goes_on(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from perfmodel.collect import kernel_campaign as KC

    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(KC, "DEFAULT_TIMING", {"unit": {"warmup": 1, "min_reps": 2, "min_time_s": 0.0,
                                                        "max_reps": 2}})
    good = U.Unit("relu", 8, 8, 8, 8)
    bad = U.Unit("relu", 9, 9, 8, 8)
    files = {good.id: {"onnx": str(U.export_unit(good, "onnx"))}, bad.id: {"onnx": str(tmp_path / "gone.onnx")}}
    items = [{"kind": "unit", "item": u.id, "unit": u.as_dict(), "files": files[u.id], "key": f"0|ort|{u.id}"}
             for u in (bad, good)]
    folder = tmp_path / "ks"
    folder.mkdir()
    KC._run_block(folder, "onnxruntime", 1, 0, items, 300, lambda m: None)
    rows = {r["item"]: r for r in csv.DictReader(open(folder / "timings.csv"))}
    assert rows[bad.id]["error"] and rows[bad.id]["reps"] == "0"
    assert not rows[good.id]["error"] and float(rows[good.id]["median_ms"]) > 0
    assert np.isnan(float(rows[bad.id]["median_ms"]))


@pytest.mark.parametrize("framework", ["onnxruntime", "opencv"])
def test_network_profiles_map_onto_the_detected_kernels(framework):
    """A zoo network's per-node profile: every timed node becomes a kernel of the graph's detection (ONNX
    Runtime from the node's shapes, OpenCV by layer name), except the framework's own layout / output nodes."""
    pytest.importorskip(framework if framework != "opencv" else "cv2")
    from perfmodel.collect.kernel_worker import _Framework
    from perfmodel.data.kernelset import ort_node_kernel
    from perfmodel.zoo.kernels import detect_kernels, read_graph

    nodes = _Framework(framework, 1).profile_network("squeezenet1_1", warmup=1, runs=2)
    assert nodes and all(n["ms"] >= 0 and n["n"] == 2 for n in nodes)
    kernels = [n.get("kernel") or ort_node_kernel(n) for n in nodes]
    unmapped = [n["op"] for n, k in zip(nodes, kernels) if k is None]
    assert set(unmapped) <= {"ReorderInput", "ReorderOutput", "Transpose", "Identity"}, unmapped
    detected = detect_kernels(read_graph("squeezenet1_1"), framework)
    convs = sum(1 for k in detected if k.type == "conv")
    assert sum(1 for k in kernels if k and k["type"] == "conv") == convs
    # ONNX Runtime pads the classifier's 1000 channels to 1008 (NCHWc blocks): its MACs are 0.2 % more
    assert sum(k["macs"] for k in kernels if k) == pytest.approx(sum(k.macs for k in detected), rel=0.005)


def test_a_block_its_worker_refuses_is_an_error_not_a_loop(tmp_path):
    from perfmodel.collect import kernel_campaign as KC
    from perfmodel.errors import PerfmodelError

    items = [{"kind": "unit", "item": f"u{i}", "unit": U.Unit("relu", 8, 8, 8, 8).as_dict(), "files": {},
              "key": f"0|nope|u{i}"} for i in range(3)]
    (tmp_path / "ks").mkdir()
    with pytest.raises(PerfmodelError, match="kernels nope x1: unknown framework 'nope'"):
        KC._run_block(tmp_path / "ks", "nope", 1, 0, items, 120, lambda m: None)
    assert not (tmp_path / "ks" / "timings.csv").exists()


def _fake_items(n):
    return [{"kind": "unit", "item": f"u{i}", "unit": U.Unit("relu", 8, 8, 8, 8).as_dict(), "files": {},
             "key": f"0|ort|1|unit|u{i}"} for i in range(n)]


def _fake_worker(script):
    """A stand-in for run_worker: each call does the next step of ``script`` (rows to write, the item it dies
    on, the exception) in the request's workdir."""
    from perfmodel.collect import kernel_campaign as KC

    calls = iter(script)

    def run(argv, request, *, workdir, **kw):
        done, current, exc = next(calls)
        with open(Path(workdir) / "rows.jsonl", "a") as f:
            for it in request["items"][:done]:
                f.write(json.dumps({"key": it["key"], "kind": it["kind"], "item": it["item"], "median_ms": 1.0,
                                    "min_ms": 1.0, "reps": 5, "error": ""}) + "\n")
            if exc is KeyboardInterrupt:
                f.write('{"key": "cut')  # a line cut by the interrupt
        if current is not None:
            (Path(workdir) / KC.CURRENT_FILE).write_text(request["items"][current]["key"])
        if exc is not None:
            raise exc() if exc is KeyboardInterrupt else exc
    return run


def test_a_worker_that_dies_blames_its_item_and_the_rest_goes_on(tmp_path, monkeypatch):
    from perfmodel.collect import kernel_campaign as KC
    from perfmodel.workerproto import WorkerCrashed

    crash = WorkerCrashed("kernels ort x1", -11, ["Segmentation fault"])
    monkeypatch.setattr(KC, "run_worker", _fake_worker([(2, 2, crash), (2, None, None)]))
    (tmp_path / "ks").mkdir()
    KC._run_block(tmp_path / "ks", "onnxruntime", 1, 0, _fake_items(5), 60, lambda m: None)
    rows = list(csv.DictReader(open(tmp_path / "ks" / "timings.csv")))
    assert [r["item"] for r in rows] == ["u0", "u1", "u2", "u3", "u4"]  # each once, in order
    assert rows[2]["error"].startswith("kernels ort x1: worker process was killed by signal 11")
    assert not any(r["error"] for i, r in enumerate(rows) if i != 2)


def test_a_worker_that_dies_before_any_item_is_not_an_item_error(tmp_path, monkeypatch):
    from perfmodel.collect import kernel_campaign as KC
    from perfmodel.errors import PerfmodelError
    from perfmodel.workerproto import WorkerCrashed

    crash = WorkerCrashed("kernels ort x1", 1, ["ImportError: libfoo.so"])
    monkeypatch.setattr(KC, "run_worker", _fake_worker([(0, None, crash), (0, None, crash)]))
    (tmp_path / "ks").mkdir()
    with pytest.raises(PerfmodelError, match="died twice before timing anything"):
        KC._run_block(tmp_path / "ks", "onnxruntime", 1, 0, _fake_items(3), 60, lambda m: None)
    assert not (tmp_path / "ks" / "timings.csv").exists()


def test_ctrl_c_keeps_the_finished_rows(tmp_path, monkeypatch):
    from perfmodel.collect import kernel_campaign as KC

    monkeypatch.setattr(KC, "run_worker", _fake_worker([(2, 2, KeyboardInterrupt)]))
    (tmp_path / "ks").mkdir()
    with pytest.raises(KeyboardInterrupt):
        KC._run_block(tmp_path / "ks", "onnxruntime", 1, 0, _fake_items(4), 60, lambda m: None)
    rows = list(csv.DictReader(open(tmp_path / "ks" / "timings.csv")))
    assert [r["item"] for r in rows] == ["u0", "u1"] and KC.done_keys(tmp_path / "ks") == {r["key"] for r in rows}
