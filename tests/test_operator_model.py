"""Operator-level model (perfmodel.model.operator) on synthetic kernel data sets whose times follow known
per-kernel costs: the fit recovers them, a network's prediction is the sum of its kernels + the envelope + the
overhead, trees are stored as arrays that predict as scikit-learn does, files are checked JSON; and the CLI
(predict --graph, select --graph, kernels fit) on a small kernel data set written to disk."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from perfmodel.data.kernelset import KernelSet, UnitRecord, read_kernelset
from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.model.operator import (OperatorModel, forest_predict, forest_to_arrays, load_operator_model,
                                      type_key)

#: ms per [call, MMAC, input MB, output MB, weight MB] by kernel type (the synthetic truth)
TRUE = {"conv:1x1": [0.01, 0.02, 0.05, 0.05, 0.1], "conv:3x3s1": [0.01, 0.015, 0.05, 0.05, 0.1],
        "conv:other": [0.02, 0.04, 0.05, 0.05, 0.1], "maxpool": [0.005, 0.0, 0.2, 0.1, 0.0],
        "relu": [0.002, 0.0, 0.1, 0.1, 0.0], "fc": [0.01, 0.01, 0.0, 0.0, 0.12]}
ENVELOPE = (0.05, 0.3)  # ms, ms per MB of model input + output


def _kernel(type_, h, c_in, c_out, k=1, s=1):
    oh = -(-h // s)
    macs = oh * oh * k * k * c_in * c_out if type_ == "conv" else (c_in * c_out if type_ == "fc" else 0)
    w = 4 * (k * k * c_in * c_out + c_out) if type_ in ("conv", "fc") else 0
    out_c = c_out if type_ in ("conv", "fc") else c_in
    if type_ == "fc":
        return {"type": "fc", "ops": ["fc", "bias"], "input_hwc": [1, 1, c_in], "output_hwc": [1, 1, c_out],
                "kernel_size": [1, 1], "stride": [1, 1], "padding": [0, 0, 0, 0], "groups": 1, "macs": macs,
                "input_bytes": 4 * c_in, "output_bytes": 4 * c_out, "weight_bytes": w, "layers": ["x"]}
    return {"type": type_, "ops": [type_], "input_hwc": [h, h, c_in], "output_hwc": [oh, oh, out_c],
            "kernel_size": [k, k], "stride": [s, s], "padding": [0, 0, 0, 0], "groups": 1, "macs": macs,
            "input_bytes": 4 * h * h * c_in, "output_bytes": 4 * oh * oh * out_c, "weight_bytes": w,
            "layers": ["x"]}


def _true_ms(k):
    c = TRUE[type_key(k, "split")]
    return c[0] + c[1] * k["macs"] / 1e6 + c[2] * k["input_bytes"] / 1e6 + c[3] * k["output_bytes"] / 1e6 + \
        c[4] * k["weight_bytes"] / 1e6


def _random_kernel(rng):
    t = rng.choice(["conv1", "conv3", "conv7", "maxpool", "relu", "fc"])
    h = int(rng.integers(4, 60))
    c_in, c_out = int(rng.integers(8, 256)), int(rng.integers(8, 256))
    if t == "conv1":
        return _kernel("conv", h, c_in, c_out, 1, 1)
    if t == "conv3":
        return _kernel("conv", h, c_in, c_out, 3, 1)
    if t == "conv7":
        return _kernel("conv", h, c_in, c_out, 7, 2)
    if t == "fc":
        return _kernel("fc", 1, int(rng.integers(64, 4096)), int(rng.integers(10, 2048)))
    return _kernel(str(t), h, c_in, c_in, 3 if t == "maxpool" else 1, 2 if t == "maxpool" else 1)


def _io(ks):
    return (ks[0]["input_bytes"] + ks[-1]["output_bytes"]) / 1e6


def synthetic_set(tmp: Path | None = None, n_units: int = 120, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    units, unit_ms = {}, {}
    for i in range(n_units):
        ks = [_random_kernel(rng)]
        if ks[0]["type"] == "conv" and rng.random() < 0.3:  # a unit of two kernels (conv + a separate relu)
            ks.append({**_kernel("relu", ks[0]["output_hwc"][0], ks[0]["output_hwc"][2], 0), "layers": ["r"]})
        uid = f"u{i}"
        units[uid] = UnitRecord(uid, {"type": ks[0]["type"], "fused_add": False}, {"onnxruntime": ks})
        ms = sum(_true_ms(k) for k in ks) + ENVELOPE[0] + ENVELOPE[1] * units[uid].io_bytes() / 1e6
        unit_ms[uid] = ms * (1 + noise * rng.standard_normal())
    nets = {}
    for j in range(6):
        nets[f"net{j}"] = {"onnxruntime": [_random_kernel(rng) for _ in range(int(rng.integers(10, 40)))]}
    overhead = 0.4
    network_ms = {("onnxruntime", 1): {n: [sum(_true_ms(k) for k in ks["onnxruntime"]) + ENVELOPE[0] +
                                           ENVELOPE[1] * _io(ks["onnxruntime"]) + overhead] * 2
                                       for n, ks in nets.items()}}
    kset = KernelSet(tmp or Path("synthetic"), {"calibrations": [{"gemm_gflops": {"1": 100.0}}]}, units,
                     {("onnxruntime", 1): unit_ms}, network_ms)
    return kset, nets, overhead


def test_nnls_recovers_the_kernel_costs_and_sums_a_network():
    kset, nets, overhead = synthetic_set()
    m = OperatorModel().fit(kset, nets)
    cm = m.cell("onnxruntime", 1)
    assert cm.envelope[0] == pytest.approx(ENVELOPE[0], abs=2e-3)
    for t in ("conv:1x1", "conv:3x3s1", "conv:other"):
        assert cm.types[t]["coef"][1] == pytest.approx(TRUE[t][1], rel=0.05), t
    # a dense layer's MACs and weight bytes are proportional: their split is not identifiable, their sum is
    fc = _kernel("fc", 1, 2048, 1000)
    assert m.kernel_ms(cm, fc).ms == pytest.approx(_true_ms(fc), rel=0.02)
    assert cm.overhead["a"] == pytest.approx(overhead, abs=0.02)
    for n, ks in nets.items():
        p = m.predict_kernels("onnxruntime", 1, ks["onnxruntime"])
        meas = kset.network_median("onnxruntime", 1, n)
        assert p["ms"] == pytest.approx(meas, rel=0.01)
        assert p["lo"] <= p["fps"] <= p["hi"]
    assert cm.unit_cv_mape < 1.0


def test_a_type_without_units_is_reported_not_invented():
    kset, nets, _ = synthetic_set()
    m = OperatorModel().fit(kset, nets)
    ks = nets["net0"]["onnxruntime"] + [{**_kernel("relu", 8, 8, 0), "type": "softmax"}]
    p = m.predict_kernels("onnxruntime", 1, ks)
    assert p["unmodelled_types"] == ["softmax"]
    with pytest.raises(PerfmodelError, match="no predictors for litert x1"):
        m.predict_kernels("litert", 1, ks)


def test_base_scheme_cannot_tell_conv_shapes_apart():
    """With conv's shape classes priced alike (V1), the 7x7/2 convs' higher cost per MAC is averaged away:
    the fit is worse than with the split scheme on the same units."""
    kset, nets, _ = synthetic_set()
    base = OperatorModel(type_scheme="base").fit(kset, nets).cell("onnxruntime", 1).unit_cv_mape
    split = OperatorModel(type_scheme="split").fit(kset, nets).cell("onnxruntime", 1).unit_cv_mape
    assert split < base


def test_forest_arrays_predict_as_scikit_learn():
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(1)
    X = rng.random((200, 4))
    y = X[:, 0] * 3 + np.sin(X[:, 1] * 6)
    rf = RandomForestRegressor(n_estimators=7, random_state=0).fit(X, y)
    trees = forest_to_arrays(rf)
    json.dumps(trees)  # plain JSON
    for x in X[:20]:
        assert forest_predict(trees, x) == pytest.approx(float(rf.predict(x[None])[0]), rel=1e-9)


@pytest.mark.parametrize("predictor", ["nnls", "ridge", "loglinear", "forest"])
def test_every_predictor_saves_and_loads_the_same(tmp_path, predictor):
    kset, nets, _ = synthetic_set(noise=0.02)
    m = OperatorModel(kernel_predictor=predictor).fit(kset, nets)
    m.cell("onnxruntime", 1).types["relu"]["rel_sigma"] = math.nan  # no unit with it as main kernel: null
    path = m.save(tmp_path / "op.json")
    back = load_operator_model(path)
    ks = nets["net1"]["onnxruntime"]
    a, b = m.predict_kernels("onnxruntime", 1, ks), back.predict_kernels("onnxruntime", 1, ks)
    assert b["ms"] == pytest.approx(a["ms"], rel=1e-12)
    assert b["lo"] == pytest.approx(a["lo"], rel=1e-9)
    assert math.isfinite(a["ms"]) and a["ms"] > 0


def test_model_file_is_checked(tmp_path):
    kset, nets, _ = synthetic_set()
    path = OperatorModel().fit(kset, nets).save(tmp_path / "op.json")
    doc = json.loads(path.read_text())
    doc["cells"][0]["code"] = "__import__('os')"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputFileError, match="invalid"):
        load_operator_model(bad)
    good = json.loads(path.read_text())
    for breaks in (lambda d: d["cells"][0]["types"]["fc"].pop("coef"),
                   lambda d: d["cells"][0]["overhead"].update(b=0.0),
                   lambda d: d["cells"][0].update(envelope=[0.1]),
                   lambda d: d.update(schema_version=99)):
        doc = json.loads(json.dumps(good))
        breaks(doc)
        bad.write_text(json.dumps(doc))
        with pytest.raises(InputFileError, match="invalid"):
            load_operator_model(bad)
    forest = OperatorModel(kernel_predictor="forest", n_trees=2).fit(kset, nets).save(tmp_path / "forest.json")
    doc = json.loads(forest.read_text())
    tree = next(iter(doc["cells"][0]["forest"].values()))["trees"][0]
    tree["left"][0] = 0  # a node that is its own child would loop forever
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputFileError, match="invalid"):
        load_operator_model(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "perfmodel-model"}))
    with pytest.raises(InputFileError, match="not an operator model"):
        load_operator_model(other)
    with pytest.raises(PerfmodelError, match="kernel_predictor"):
        OperatorModel(kernel_predictor="pickle").fit(kset, nets)


def _write_kernel_set(folder: Path, kset: KernelSet) -> None:
    folder.mkdir(parents=True)
    (folder / "kernelset.json").write_text(json.dumps({"format": "perfmodel-kernelset", "calibrations": [],
                                                      "calls": []}))
    with open(folder / "units.jsonl", "w") as f:
        for rec in kset.units.values():
            f.write(json.dumps({"id": rec.id, "unit": rec.unit, "kernels": rec.kernels}) + "\n")
    lines = ["key,round,framework,threads,kind,item,median_ms,min_ms,reps,error,wall_s,t_unix"]
    for (fw, t), d in kset.unit_ms.items():
        for u, ms in d.items():
            lines.append(f"0|{fw}|{t}|unit|{u},0,{fw},{t},unit,{u},{ms},{ms},5,,0.1,0")
    lines.append("0|onnxruntime|1|unit|broken,0,onnxruntime,1,unit,broken,nan,nan,0,RuntimeError: boom,0,0")
    (folder / "timings.csv").write_text("\n".join(lines) + "\n")


def test_kernel_set_round_trip_on_disk(tmp_path):
    kset, _, _ = synthetic_set()
    _write_kernel_set(tmp_path / "ks", kset)
    back = read_kernelset(tmp_path / "ks")
    assert back.unit_ms[("onnxruntime", 1)] == pytest.approx(kset.unit_ms[("onnxruntime", 1)])
    assert back.errors == [{"key": "0|onnxruntime|1|unit|broken", "error": "RuntimeError: boom"}]
    with pytest.raises(InputFileError, match="not a kernel data set"):
        read_kernelset(tmp_path)


def test_predict_and_select_from_a_graph_cli(tmp_path):
    """perfmodel predict --graph / select --graph on an ONNX file the model has never seen."""
    from typer.testing import CliRunner

    from perfmodel.cli.app import app

    kset, nets, _ = synthetic_set()
    model_path = OperatorModel().fit(kset, nets).save(tmp_path / "op.json")
    path = _tiny_onnx(tmp_path / "tiny.onnx")
    r = CliRunner().invoke(app, ["predict", "--model", str(model_path), "--graph", str(path), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["framework"], x["threads"]) for x in rows] == [("onnxruntime", 1)]
    assert rows[0]["lo"] < rows[0]["fps"] < rows[0]["hi"] and rows[0]["kernels"] == 2
    r = CliRunner().invoke(app, ["predict", "--model", str(model_path), "--graph", str(path), "--threads", "2"])
    assert isinstance(r.exception, PerfmodelError) and "no predictors for threads [2]" in str(r.exception)
    r = CliRunner().invoke(app, ["select", "--graph", str(path), "--model", str(model_path), "--min-fps", "1"])
    assert r.exit_code == 0, r.output
    assert "choice: onnxruntime x1" in r.stdout
    r = CliRunner().invoke(app, ["select", "--graph", str(path), "--model", str(model_path), "--max-power", "3"])
    assert r.exit_code == 1 and "not evaluable: --max-power 3" in r.stdout


def test_profiled_kernels_fit_without_an_envelope_and_hold_out_a_network():
    """Kernels timed inside their networks (a framework's per-node profile): fitted on the other networks'
    nodes only, the held-out network is predicted from its graph."""
    kset, nets, overhead = synthetic_set()
    kset.profiles = {("onnxruntime", 1): {n: [(k, _true_ms(k)) for k in ks["onnxruntime"]] for n, ks in nets.items()}}
    # the held-out network's own profile and timing are 5x off: any use of them would show
    kset.profiles[("onnxruntime", 1)]["net0"] = [(k, 5 * ms) for k, ms in kset.profiles[("onnxruntime", 1)]["net0"]]
    kset.network_ms[("onnxruntime", 1)]["net0"] = [5 * v for v in kset.network_ms[("onnxruntime", 1)]["net0"]]
    others = [n for n in nets if n != "net0"]
    m = OperatorModel(source="profiles").fit(kset, nets, networks=others)
    cm = m.cell("onnxruntime", 1)
    assert cm.envelope == [0.0, 0.0]  # no per-call cost in a profiled node
    assert cm.n_units == sum(len(nets[n]["onnxruntime"]) for n in others)
    p = m.predict_kernels("onnxruntime", 1, nets["net0"]["onnxruntime"])
    truth = sum(_true_ms(k) for k in nets["net0"]["onnxruntime"])
    # the overhead absorbs the envelope the profiles cannot see (the network's call cost)
    expected = truth + ENVELOPE[0] + ENVELOPE[1] * _io(nets["net0"]["onnxruntime"]) + overhead
    assert p["ms"] == pytest.approx(expected, rel=0.02)
    assert p["ms"] - truth == pytest.approx(cm.overhead["a"], rel=1e-9)
    with pytest.raises(PerfmodelError, match="source"):
        OperatorModel(source="guess").fit(kset, nets)


def test_ort_profile_nodes_as_kernels():
    """Nodes as ONNX Runtime 1.32's profiler records them (GoogLeNet, NCHWc on this VM)."""
    from perfmodel.data.kernelset import ort_node_kernel

    conv = {"name": "googlenet_1/conv2_3x3_relu_1/Relu:0_nchwc", "op": "Conv", "ms": 3.652,
            "inputs": [[1, 64, 56, 56], [192, 64, 3, 3], [192]], "outputs": [[1, 192, 56, 56]], "parameter_bytes": 443136}
    k = ort_node_kernel(conv)
    assert (k["type"], k["kernel_size"], k["stride"], k["groups"]) == ("conv", [3, 3], [1, 1], 1)
    assert k["macs"] == 56 * 56 * 192 * 64 * 9 and k["weight_bytes"] == 443136
    assert k["input_hwc"] == [56, 56, 64] and k["output_bytes"] == 4 * 192 * 56 * 56
    dw = ort_node_kernel({**conv, "inputs": [[1, 32, 28, 28], [32, 1, 3, 3], [32]], "outputs": [[1, 32, 14, 14]]})
    assert (dw["type"], dw["groups"], dw["stride"]) == ("dwconv", 32, [2, 2])
    res = ort_node_kernel({**conv, "inputs": [[1, 64, 56, 56], [256, 64, 1, 1], [256], [1, 256, 56, 56]],
                           "outputs": [[1, 256, 56, 56]]})
    assert res["input_bytes"] == 4 * (64 + 256) * 56 * 56  # the fused residual operand is read too
    fc = ort_node_kernel({"name": "fc", "op": "MatMul", "ms": 0.14, "inputs": [[1, 1024]], "outputs": [[1, 1000]]})
    assert (fc["type"], fc["macs"], fc["weight_bytes"]) == ("fc", 1024000, 4 * 1024000)
    assert ort_node_kernel({"name": "r", "op": "ReorderOutput", "inputs": [[1, 8, 1, 1]],
                            "outputs": [[1, 8, 1, 1]]}) is None
    cat = ort_node_kernel({"name": "c", "op": "Concat", "inputs": [[1, 8, 4, 4], [1, 24, 4, 4]],
                           "outputs": [[1, 32, 4, 4]]})
    assert cat["type"] == "concat" and cat["input_bytes"] == 4 * 32 * 16


def test_a_graph_much_smaller_than_the_networks_is_floored_not_negative():
    kset, nets, _ = synthetic_set()
    m = OperatorModel().fit(kset, nets)
    cm = m.cell("onnxruntime", 1)
    cm.overhead = {"a": -5.0, "b": 1.0}  # as fitted on big networks
    tiny = [_kernel("relu", 4, 8, 0)]
    p = m.predict_kernels("onnxruntime", 1, tiny)
    assert p["floored"] and p["ms"] == pytest.approx(0.5 * m.kernel_ms(cm, tiny[0]).ms)
    assert p["fps"] > 0 and p["lo"] > 0 and (p["hi"] is None or p["hi"] > p["fps"])


def _tiny_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((32, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(32, np.float32), "b")
    g = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["out"], kernel_shape=[3, 3], strides=[2, 2])],
        "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 32, 15, 15])], initializer=[w, b])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_graph_fast_path_takes_only_plain_predict_graph_lines(tmp_path):
    """perfmodel's entry answers `predict --graph` itself (typer never imported) only for the options it knows,
    each once, its errors included; anything else (help, other options, a repeated option, a value that is not
    a number) goes to the full CLI."""
    import subprocess
    import sys

    kset, nets, _ = synthetic_set()
    model = str(OperatorModel().fit(kset, nets).save(tmp_path / "op.json"))
    g = str(_tiny_onnx(tmp_path / "tiny.onnx"))
    fast = [["predict", "-m", model, f"--graph={g}", "--threads", "1", "--json", "--framework", "onnxruntime",
             "--alpha=0.1"],
            ["predict", "--graph", g],  # no model: refused by the fast path
            ["predict", "--model", model, "--graph", g, "--threads", "-1"]]
    full = [["predict", "--model", model, "--graph", g, "--help"], ["predict", "--model", model],
            ["predict", "--graph", g, "--graph", g, "--model", model], ["predict", "--graph", g, "--threads", "two"],
            ["predict", "--graph", g, "--dataset", "d"], ["predict", f"-m={model}", "--graph", g],
            ["predict", "--model", model, "--graph", g, "--", "true"], ["--version"],
            ["predict", "--model", model, "--graph", g, "--threads", "\u0661"]]  # an Arabic-Indic 1: typer refuses it
    code = ("import sys\nfrom perfmodel.cli.entry import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
            "    pass\nfinally:\n    print('typer' in sys.modules, file=sys.stderr)")
    runs = [subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for argv in fast + full]
    typer_used = [r.communicate(timeout=120)[1].strip().splitlines()[-1] == "True" for r in runs]
    assert typer_used == [False] * len(fast) + [True] * len(full)


def test_graph_fast_path_prints_what_the_full_cli_prints(tmp_path, capsys):
    """The same answer, table, JSON and errors (message and exit code) from the entry's fast path as from the
    typer app, and a fresh fast-path process imports neither typer nor pydantic once the model was checked."""
    import subprocess
    import sys

    from perfmodel.cli.app import main as full_main
    from perfmodel.cli.entry import main

    kset, nets, _ = synthetic_set()
    model = str(OperatorModel().fit(kset, nets).save(tmp_path / "op.json"))
    onnx_path = str(_tiny_onnx(tmp_path / "tiny.onnx"))
    for argv in (["predict", "--model", model, "--graph", onnx_path, "--json"],
                 ["predict", "--model", model, "--graph", onnx_path, "--alpha", "0.2"],
                 ["predict", "--model", model, "--graph", onnx_path, "--threads", "2"],
                 ["predict", "--model", model, "--graph", onnx_path, "--threads", "0"],
                 ["predict", "--model", model, "--graph", onnx_path, "--alpha", "1.5"],
                 ["predict", "--model", str(tmp_path / "none.json"), "--graph", onnx_path],
                 ["predict", "--model", model, "--graph", str(tmp_path / "none.onnx"), "--json"]):
        outs = []
        for run in (main, full_main):
            code = 0
            try:
                run(list(argv))
            except SystemExit as exc:
                code = exc.code
            captured = capsys.readouterr()
            outs.append((code, captured.out, captured.err))
        assert outs[0] == outs[1], argv
    assert outs[0][0] == 2 and outs[0][2].startswith("error: ")
    code = ("import sys; from perfmodel.cli.entry import main; sys.argv = ['perfmodel', 'predict', '--model', "
            f"{model!r}, '--graph', {onnx_path!r}, '--json']\ntry:\n    main()\nfinally:\n"
            "    print(sorted(m for m in ('typer', 'pydantic', 'pandas', 'onnx') if m in sys.modules), "
            "file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)[0]["framework"] == "onnxruntime"
    assert r.stderr.strip().splitlines()[-1] == "[]"


def test_an_operator_model_checked_once_loads_from_its_checked_form(tmp_path, monkeypatch):
    """load_operator_model keeps the checked form of a file's exact bytes in the cache: the same file loads
    from it (same model), an edited file is checked afresh (and an invalid one refused though its former
    bytes were cached), and a cache that cannot be written only costs the check."""
    import perfmodel.model._operator_schema as schema

    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    kset, nets, _ = synthetic_set()
    path = OperatorModel().fit(kset, nets).save(tmp_path / "op.json")
    original = path.read_bytes()
    first = load_operator_model(path)

    def same(a, b):
        return json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)

    cached = list((tmp_path / "cache" / "checked-models").glob("operator-*.json"))
    assert len(cached) == 1
    calls = []
    real = schema.OperatorDocument.model_validate
    monkeypatch.setattr(schema.OperatorDocument, "model_validate", lambda d: calls.append(1) or real(d))
    again = load_operator_model(path)
    assert calls == [] and same(again, first)
    d = json.loads(path.read_text())
    d["cells"][0]["overhead"]["b"] = -1.0  # invalid: b > 0
    path.write_text(json.dumps(d))
    with pytest.raises(InputFileError, match="is invalid"):
        load_operator_model(path)
    assert calls == [1]
    d["cells"][0]["overhead"]["b"] = 2.0
    path.write_text(json.dumps(d))
    assert load_operator_model(path).cell(d["cells"][0]["framework"], d["cells"][0]["threads"]).overhead["b"] == 2.0
    path.write_bytes(original)
    cached[0].write_text("{not json")  # a damaged cache entry: checked afresh, and written again
    assert same(load_operator_model(path), first) and calls == [1, 1, 1]
    assert same(load_operator_model(path), first) and calls == [1, 1, 1]
    (tmp_path / "file-not-folder").write_text("")
    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "file-not-folder"))  # no cache folder can be made
    assert same(load_operator_model(path), first) and calls == [1, 1, 1, 1]


def test_stem_schemes_name_the_first_conv_and_price_a_missing_type_by_its_parent():
    """`stem` gives a conv reading at most 4 channels its own type; `stem2` also splits the other convs into
    3x3/2 and larger; a cell with no predictor for a type prices it with its parent (conv:other)."""
    stem, c7 = _kernel("conv", 224, 3, 64, 7, 2), _kernel("conv", 56, 64, 64, 7, 2)
    c3s2, c1 = _kernel("conv", 56, 64, 64, 3, 2), _kernel("conv", 56, 64, 64, 1, 1)
    assert [type_key(k, "split") for k in (stem, c7, c3s2, c1)] == ["conv:other"] * 3 + ["conv:1x1"]
    assert [type_key(k, "stem") for k in (stem, c7, c3s2, c1)] == ["conv:stem", "conv:other", "conv:other",
                                                                   "conv:1x1"]
    assert [type_key(k, "stem2") for k in (stem, c7, c3s2)] == ["conv:stem", "conv:large", "conv:3x3s2"]
    kset, nets, _ = synthetic_set()  # its convs read 8-256 channels: no stem anywhere
    m = OperatorModel(type_scheme="stem").fit(kset, nets)
    cm = m.cell("onnxruntime", 1)
    assert "conv:stem" not in cm.types and "conv:other" in cm.types
    as_other = dict(stem, input_hwc=[224, 224, 8])  # the same conv read as a non-stem one
    assert m.kernel_ms(cm, stem).ms == pytest.approx(m.kernel_ms(cm, as_other).ms, rel=1e-9)
    assert m.kernel_ms(cm, stem).ms > 0 and m.kernel_ms(cm, stem).type == "conv:other"


def test_review_fixes_of_the_operator_model_file_and_fit(tmp_path, monkeypatch):
    """The checked-form cache is keyed by what the checks depend on (schema version, features, ...); a model's
    own parameter checks name the file; a version-1 file (without network_weight / type_scheme) still loads
    and a saved file is version 2; network rows do not count towards a cell's minimum of kernel rows; a stem
    without its own predictor is priced by its split type first."""
    import perfmodel.model.operator as op

    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    raw = b'{"format": "x"}'
    first = op._checked_cache_path(raw)
    monkeypatch.setattr(op, "FEATURES", op.FEATURES + ("extra",))
    assert op._checked_cache_path(raw) != first
    monkeypatch.undo()
    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    kset, nets, _ = synthetic_set()
    path = OperatorModel().fit(kset, nets).save(tmp_path / "op.json")
    d = json.loads(path.read_text())
    assert d["schema_version"] == 2
    old = json.loads(json.dumps(d))
    old["schema_version"] = 1
    del old["params"]["network_weight"]
    for c in old["cells"]:
        del c["type_scheme"]
    (tmp_path / "v1.json").write_text(json.dumps(old))
    assert load_operator_model(tmp_path / "v1.json").network_weight == 0.0
    bad = dict(d, params=dict(d["params"], kernel_predictor="bogus"))
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InputFileError, match=r"bad.json.*is invalid: kernel_predictor 'bogus'"):
        load_operator_model(tmp_path / "bad.json")
    few = sorted(kset.units)[:4]  # 4 units + 6 network rows: still too few kernel rows
    with pytest.raises(PerfmodelError, match="only 4 timed units"):
        OperatorModel(network_weight=1.0).fit(kset, nets, unit_ids=few)
    ten = sorted(kset.units)[:10]  # exactly enough: the held-out refits keep them all and the fit goes through
    assert OperatorModel(network_weight=1.0).fit(kset, nets, unit_ids=ten).cell("onnxruntime", 1).n_units == 16
    m = OperatorModel(type_scheme="stem").fit(kset, nets)
    cm = m.cell("onnxruntime", 1)
    stem3 = _kernel("conv", 224, 3, 64, 3, 1)
    assert m.kernel_ms(cm, stem3).type == "conv:3x3s1"
