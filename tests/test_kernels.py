"""Graph -> kernels (perfmodel.zoo.kernels): detection mechanics on hand-built graphs, MACs against the zoo's
facts for every network, and each framework's fusion rules against the graph the framework really executes.

The executed graphs (see docs/kernels.md): ONNX Runtime's optimised model at the runner's level
(ORT_ENABLE_ALL, ``optimized_model_filepath``); OpenCV's layers after a forward pass (classic engine: the layers
``getPerfProfile`` times, a fused layer takes 0; new engine: ``getLayerNames``); the converted ``.tflite``'s ops
(fused activations from the op options) with XNNPACK's documented PAD folding; TensorFlow's post-grappler
function graph (``context.export_run_metadata``), the nodes on the image's path.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from perfmodel.errors import PerfmodelError, UnknownNameError
from perfmodel.zoo import kernels as K
from perfmodel.zoo.kernels import FUSION_RULES, Op, OpGraph, detect_kernels, summarize

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: networks whose export takes minutes on a cold cache (three formats): their framework checks are `slow`
EVIDENCE_NETWORKS = [
    "squeezenet1_1",
    *(pytest.param(n, marks=pytest.mark.slow) for n in ("mobilenet_v2", "resnet18", "googlenet", "densenet121",
                                                         "alexnet")),
]
#: memory-heavy graphs (hundreds of MB of FC weights allocated by Keras)
BIG = {"alexnet", "vgg11"}

# ----------------------------------------------------------------------------------------- hand-built graphs


def _op(name, type_, inputs, shape=(8, 8, 16), **kw):
    return Op(name=name, type=type_, inputs=tuple(inputs), in_shapes=tuple((8, 8, 16) for _ in inputs),
              out_shape=shape, **kw)


def _graph(*ops):
    return OpGraph({o.name: o for o in ops}, {"x": (8, 8, 16)}, "test")


def _chains(kernels):
    return [" ".join(k.ops) for k in kernels]


def test_single_consumer_rule_and_chain():
    g = _graph(_op("c", "conv", ["x"], macs=100, weight_bytes=40), _op("b", "bias", ["c"], weight_bytes=8),
               _op("r", "relu", ["b"]), _op("p", "maxpool", ["r"]))
    ks = detect_kernels(g, "onnxruntime")
    assert _chains(ks) == ["conv bias relu", "maxpool"]
    assert ks[0].macs == 100 and ks[0].weight_bytes == 48 and ks[0].layers == ("c", "b", "r")
    assert ks[0].input_bytes == 8 * 8 * 16 * 4 and ks[0].output_bytes == 8 * 8 * 16 * 4
    # the conv's output read twice: the ReLU cannot fuse (its value is needed unactivated elsewhere)
    g2 = _graph(_op("c", "conv", ["x"]), _op("r", "relu", ["c"]), _op("q", "maxpool", ["c"]))
    assert _chains(detect_kernels(g2, "onnxruntime")) == ["conv", "relu", "maxpool"]


def test_tensorflow_runs_depthwise_bias_and_relu6_apart():
    g = _graph(_op("d", "dwconv", ["x"], groups=16), _op("b", "bias", ["d"]), _op("r", "relu6", ["b"]))
    assert _chains(detect_kernels(g, "tensorflow")) == ["dwconv", "bias", "relu6"]
    assert _chains(detect_kernels(g, "litert")) == ["dwconv bias relu6"]
    assert _chains(detect_kernels(g, "opencv-new")) == ["dwconv bias", "relu6"]


def test_pad_fuses_forward_and_counts_in_the_padding():
    g = _graph(_op("p", "pad", ["x"], shape=(10, 10, 16), padding=(1, 1, 1, 1)),
               _op("c", "dwconv", ["p"], shape=(4, 4, 16), kernel=(3, 3), stride=(2, 2), groups=16))
    for fw, chains in (("litert", ["pad dwconv"]), ("onnxruntime", ["pad dwconv"]), ("tensorflow", ["pad", "dwconv"]),
                       ("opencv", ["pad", "dwconv"])):
        ks = detect_kernels(g, fw)
        assert _chains(ks) == chains, fw
    k = detect_kernels(g, "litert")[0]
    assert k.type == "dwconv" and k.padding == (1, 1, 1, 1) and k.input_hwc == (8, 8, 16) and k.stride == (2, 2)


def _residual(first_is_conv: bool):
    """add(a, b) of two single-use convolutions (a before b) or of a twice-read ReLU and a convolution."""
    ops = [_op("c0", "conv", ["x"]), _op("r0", "relu", ["c0"])]
    if first_is_conv:
        ops += [_op("a", "conv", ["r0"]), _op("ab", "bias", ["a"])]
        first = "ab"
    else:
        first = "r0"
    ops += [_op("b", "conv", ["r0"]), _op("bb", "bias", ["b"]), _op("add", "add", [first, "bb"]),
            _op("out", "relu", ["add"])]
    return _graph(*ops)


def test_residual_add_operand_order_and_condition():
    g = _residual(first_is_conv=True)
    # ONNX Runtime's NCHWc transformer tries the Add's inputs in order: the first conv takes it
    ort = detect_kernels(g, "onnxruntime")
    assert [k.layers for k in ort if "add" in k.ops] == [("a", "ab", "add", "out")]
    # OpenCV (both engines): the operand computed last; classic: the other operand must be earlier and single-use
    for fw in ("opencv", "opencv-new"):
        ks = detect_kernels(g, fw)
        assert [k.layers for k in ks if "add" in k.ops] == [("b", "bb", "add", "out")], fw
    assert Counter(k.type for k in detect_kernels(g, "tensorflow")) == {"conv": 3, "relu": 2, "add": 1}
    assert "conv bias add relu" not in _chains(detect_kernels(g, "litert"))
    assert "add relu" in _chains(detect_kernels(g, "litert"))
    # identity shortcut read twice (by the conv and the add): OpenCV classic keeps the add, its new engine does not
    g = _residual(first_is_conv=False)
    assert "add" in [k.type for k in detect_kernels(g, "opencv")]
    assert "add" not in [k.type for k in detect_kernels(g, "opencv-new")]
    assert "add" not in [k.type for k in detect_kernels(g, "onnxruntime")]


def test_opencv_writes_concat_inputs_in_place_only_when_single_use():
    g = _graph(_op("a", "conv", ["x"]), _op("ar", "relu", ["a"]), _op("b", "conv", ["x"]),
               _op("cat", "concat", ["ar", "b"], shape=(8, 8, 32)), _op("p", "maxpool", ["cat"]))
    ks = detect_kernels(g, "opencv")
    assert _chains(ks) == ["conv relu concat", "conv concat", "maxpool"]
    assert ks[0].layers == ("a", "ar", "cat")
    assert _chains(detect_kernels(g, "opencv-new")) == ["conv relu", "conv", "concat", "maxpool"]
    # DenseNet-style: an operand also read elsewhere keeps the concatenation a layer of its own
    g = _graph(_op("a", "conv", ["x"]), _op("b", "conv", ["a"]), _op("cat", "concat", ["a", "b"], shape=(8, 8, 32)))
    assert "concat" in [k.type for k in detect_kernels(g, "opencv")]


def test_rule_sets_are_well_formed():
    assert set(K.FRAMEWORKS) <= set(FUSION_RULES)
    for fw, spec in FUSION_RULES.items():
        assert spec["add_operand_order"] in ("first", "last"), fw
        for r in spec["fuse"]:
            assert r.kernel in K.OP_TYPES and r.last in K.OP_TYPES and r.op in K.OP_TYPES, (fw, r)
            assert r.when is None or r.when in K.CONDITIONS, (fw, r)
    assert K.rules("opencv", engine="new") is FUSION_RULES["opencv-new"]
    assert K.rules("opencv") is FUSION_RULES["opencv"]
    with pytest.raises(UnknownNameError, match="valid frameworks"):
        K.rules("tvm")
    with pytest.raises(PerfmodelError):
        K.rules("onnxruntime", engine="new")


def test_summary_totals():
    g = _graph(_op("c", "conv", ["x"], macs=100, weight_bytes=40), _op("r", "relu", ["c"]),
               _op("q", "maxpool", ["c"]))
    s = summarize(detect_kernels(g, "onnxruntime"))
    assert s["total"]["kernels"] == 3 and s["total"]["macs"] == 100 and s["total"]["weight_bytes"] == 40
    assert list(s["by_type"]) == ["conv", "maxpool", "relu"] and s["chains"] == {"conv": 1, "relu": 1, "maxpool": 1}


def test_network_summary_of_an_onnx_file(squeezenet_exports):
    s = K.network_summary(squeezenet_exports["onnx"])
    assert s["ops"] == 91 and list(s["frameworks"]) == [*K.FRAMEWORKS, "opencv-new"]
    for fw, summary in s["frameworks"].items():
        assert summary["total"]["macs"] == 387_747_520, fw  # zoo facts of squeezenet1_1 at 227x227
        assert summary["by_type"]["conv"]["kernels"] == 26
    assert s["frameworks"]["opencv"]["total"]["kernels"] == 32  # the 8 concatenations written in place
    rows = K.summary_rows(s)
    assert rows[0]["framework"] == "tensorflow" and rows[0]["type"] == "conv"
    assert [r for r in rows if r["type"] == "total"][2] == {"framework": "onnxruntime", "type": "total",
                                                             **s["frameworks"]["onnxruntime"]["total"]}


def test_graph_errors():
    with pytest.raises(PerfmodelError, match="topological"):
        _graph(_op("r", "relu", ["c"]), _op("c", "conv", ["x"]))
    with pytest.raises(UnknownNameError):
        K.read_graph("no_such_network")
    with pytest.raises(PerfmodelError, match="does not exist"):
        K.read_onnx("/nonexistent/model.onnx")


def test_bad_onnx_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(PerfmodelError, match="cannot read ONNX"):
        K.read_onnx(bad)


# ----------------------------------------------------------------------------------------- MACs vs the zoo's facts

_GRAPHS: dict[str, tuple] = {}


def _keras(name):
    if name not in _GRAPHS:
        from perfmodel.zoo.build import build_graph
        from perfmodel.zoo.facts import graph_facts

        model = build_graph(name)
        _GRAPHS.clear()  # keep one model alive at a time
        _GRAPHS[name] = (model, graph_facts(model), K.read_keras(model, source=f"zoo:{name}"))
    return _GRAPHS[name]


def _zoo_params():
    from perfmodel.zoo import network_names

    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in network_names()]


@pytest.mark.parametrize("network", _zoo_params())
def test_kernel_macs_agree_with_the_zoo_facts(network):
    _, facts, graph = _keras(network)
    per_layer = {layer["name"]: layer["macs"] for layer in facts["layers"]}
    ops = {op.source: op.macs for op in graph.ops.values() if op.macs}
    assert ops == per_layer
    for fw in FUSION_RULES:
        ks = detect_kernels(graph, fw)
        assert sum(k.macs for k in ks) == facts["macs"], fw
        main = {k.layers[1 if k.ops[0] in K.PREFIX_TYPES else 0]: k.macs for k in ks if k.macs}
        assert main == per_layer, fw
    assert sum(op.weight_bytes for op in graph.ops.values()) == facts["params"] * 4


def test_onnx_reader_matches_the_keras_reader(squeezenet_exports):
    _, facts, keras_graph = _keras("squeezenet1_1")
    onnx_graph = K.read_onnx(squeezenet_exports["onnx"])
    assert sorted(op.macs for op in onnx_graph.ops.values() if op.macs) == sorted(
        layer["macs"] for layer in facts["layers"])
    # the ONNX export has a Squeeze after the global pool and no bias for the (zero-bias) classifier
    kc, oc = keras_graph.count(), onnx_graph.count()
    assert oc - kc == Counter({"reshape": 1}) and kc - oc == Counter({"bias": 1})
    for fw in FUSION_RULES:
        a = Counter(k.type for k in detect_kernels(keras_graph, fw))
        b = Counter(k.type for k in detect_kernels(onnx_graph, fw))
        assert b - a == Counter({"reshape": 1}) + (Counter({"relu": 1}) if fw == "tensorflow" else Counter()), fw


def test_read_graph_dispatch_and_keras_file(tmp_path):
    import keras

    inp = keras.Input((12, 12, 3), batch_size=1, name="input")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c")(inp)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(4, activation="softmax", name="fc")(x)
    path = tmp_path / "tiny.keras"
    keras.Model(inp, out).save(path)
    g = K.read_graph(path)
    assert [op.type for op in g.ops.values()] == ["conv", "bias", "relu", "dwconv", "bias", "batchnorm", "reshape",
                                                  "fc", "bias", "softmax"]
    dw = g.ops["dw"]
    assert dw.inputs == ("c/relu",) and dw.padding == (0, 0, 1, 1) and dw.out_shape == (6, 6, 8)
    assert g.ops["c"].macs == 12 * 12 * 9 * 3 * 8 and g.ops["fc"].macs == 6 * 6 * 8 * 4
    ks = detect_kernels(g, "litert")
    assert _chains(ks)[:2] == ["conv bias relu", "dwconv bias"]
    with pytest.raises(PerfmodelError, match=r"\.onnx or \.keras"):
        K.read_graph(tmp_path)


# ----------------------------------------------------------------------------------------- executed graphs


def _signature(k):
    """(type, activation, residual add fused) of a detected kernel."""
    act = next((t for t in reversed(k.ops) if t in ("relu", "relu6")), None) if k.type not in ("relu", "relu6") \
        else None
    return (k.type, act, "add" in k.ops and k.type != "add")


_ORT_TYPES = {"MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "global_avgpool",
              "Concat": "concat", "Add": "add", "Sum": "add", "Softmax": "softmax", "Squeeze": "reshape",
              "Reshape": "reshape", "Flatten": "reshape", "Unsqueeze": "reshape", "Transpose": "transpose",
              "Pad": "pad", "Relu": "relu", "Clip": "relu6", "MatMul": "fc", "Gemm": "fc", "FusedGemm": "fc",
              "FusedMatMul": "fc"}
_ORT_ACTS = {None: None, "Relu": "relu", "Clip": "relu6"}


def ort_executed(onnx_path: Path, out: Path) -> tuple[Counter, Counter, set[str]]:
    """(signatures of the nodes ONNX Runtime's optimised graph runs, framework-inserted node types, the original
    output names of the convolutions that took a residual add: an NCHWc node is named ``<output>_nchwc``)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # the runner's level
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    model = onnx.load(str(out))
    sigs, inserted, summed = Counter(), Counter(), set()
    for n in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        act = attrs.get("activation")
        act = _ORT_ACTS[act.decode() if isinstance(act, bytes) else act]
        if n.op_type in ("ReorderInput", "ReorderOutput"):
            inserted[n.op_type] += 1
        elif n.op_type in ("Conv", "FusedConv"):
            kind = "dwconv" if int(attrs.get("group", 1)) > 1 else "conv"
            has_sum = len(n.input) >= 4 and bool(n.input[3])
            sigs[(kind, act, has_sum)] += 1
            if has_sum:
                summed.add(n.name.removesuffix("_nchwc"))
        elif n.op_type in _ORT_TYPES:
            sigs[(_ORT_TYPES[n.op_type], act, False)] += 1
        else:
            raise AssertionError(f"ONNX Runtime node type {n.domain}:{n.op_type} not mapped")
    return sigs, inserted, summed


def opencv_executed(onnx_path: Path, graph: OpGraph, engine: str) -> tuple[list[str], Counter]:
    """(the ONNX nodes whose layers OpenCV runs, in order; the types of the layers it inserts). Classic engine: a
    layer fused into another is skipped by the forward pass and takes 0 in ``getPerfProfile``; its layers are named
    ``onnx_node!<node>``. New engine: ``getLayerNames`` lists only the layers it runs."""
    import cv2
    import numpy as np

    net = cv2.dnn.readNetFromONNX(str(onnx_path), getattr(cv2.dnn, f"ENGINE_{engine.upper()}"))
    if engine == "classic":
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    old = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        (h, w, c), = graph.inputs.values()
        x = np.zeros((1, c, h, w), np.float32)
        for _ in range(2):  # OpenCV 5 settles its layers (layout layers included) in the first forward pass
            net.setInput(x)
            net.forward()
        names = list(net.getLayerNames())
        _, times = net.getPerfProfile()
    finally:
        cv2.setNumThreads(old)
    times = np.asarray(times).ravel()
    assert len(times) == len(names)
    ran, inserted = [], Counter()
    for name, t in zip(names, times):
        if engine == "classic":
            if t <= 0:  # fused: skipped by the forward pass
                continue
            node = name[len("onnx_node!"):] if name.startswith("onnx_node!") else None
        else:
            node = name
        if node in graph.ops:
            ran.append(node)
        else:
            inserted[net.getLayer(net.getLayerId(name)).type] += 1
    return ran, inserted


def _match_layers(kernels, ran):
    """Each layer a framework ran is one detected kernel (one that holds the layer's node), each detected kernel
    one layer: returns the kernel types of the layers run."""
    kernel_of = {}
    for i, k in enumerate(kernels):
        for name in k.layers:
            kernel_of.setdefault(name, i)
    hit = [kernel_of[name] for name in ran]
    assert sorted(hit) == list(range(len(kernels))), (
        "detected but not run: " + str([" ".join(kernels[i].ops) + f" {kernels[i].layers}"
                                        for i in set(range(len(kernels))) - set(hit)])
        + "; run inside one detected kernel: " + str([n for n, i in zip(ran, hit) if hit.count(i) > 1]))
    return Counter(kernels[i].type for i in hit)


_TFL_TYPES = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dwconv", "FULLY_CONNECTED": "fc", "MAX_POOL_2D": "maxpool",
              "AVERAGE_POOL_2D": "avgpool", "MEAN": "global_avgpool", "CONCATENATION": "concat", "ADD": "add",
              "SOFTMAX": "softmax", "PAD": "pad", "RESHAPE": "reshape", "RELU": "relu", "RELU6": "relu6"}
_TFL_ACTS = {"NONE": None, "RELU": "relu", "RELU6": "relu6"}


def litert_executed(tflite_path: Path) -> tuple[Counter, Counter]:
    """(signatures of the .tflite's ops once XNNPACK has folded each zero spatial PAD read only by a (depthwise)
    convolution into it (XNNPACK src/subgraph.c, 'fuse Constant Pad'), the folded PADs)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_path.read_bytes()), 0)
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    acts = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
    sg = model.subgraphs[0]
    ops = []
    for op in sg.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        ops.append((codes[max(oc.builtinCode, oc.deprecatedBuiltinCode)], op))
    readers: dict[int, list[str]] = {}
    for code, op in ops:
        for t in op.inputs:
            readers.setdefault(int(t), []).append(code)
    sigs, folded = Counter(), Counter()
    for code, op in ops:
        if code == "PAD":
            pads_tensor = sg.tensors[int(op.inputs[1])]
            pads = np.frombuffer(bytes(model.buffers[pads_tensor.buffer].data), np.int32).reshape(-1, 2)
            out = int(op.outputs[0])
            if len(pads) == 4 and not pads[0].any() and not pads[3].any() and \
                    readers.get(out, []) in (["CONV_2D"], ["DEPTHWISE_CONV_2D"]):
                folded["PAD"] += 1
                continue
        if code not in _TFL_TYPES:
            raise AssertionError(f"TFLite op {code} not mapped")
        act = _TFL_ACTS[acts[op.builtinOptions.fusedActivationFunction]] if hasattr(
            op.builtinOptions, "fusedActivationFunction") else None
        sigs[(_TFL_TYPES[code], act, False)] += 1
    return sigs, folded


_TF_TYPES = {"Conv2D": "conv", "DepthwiseConv2dNative": "dwconv", "BiasAdd": "bias", "Relu": "relu",
             "Relu6": "relu6", "MaxPool": "maxpool", "AvgPool": "avgpool", "Mean": "global_avgpool",
             "ConcatV2": "concat", "AddV2": "add", "Add": "add", "MatMul": "fc", "Softmax": "softmax", "Pad": "pad",
             "Reshape": "reshape", "Squeeze": "reshape"}


def tensorflow_executed(savedmodel: Path, size: int) -> tuple[Counter, Counter]:
    """(signatures of the nodes of TensorFlow's post-grappler serving function that lie on the image's path,
    the inserted ones), in a fresh process's TensorFlow (1 intra-op thread, as the runner sets it)."""
    import subprocess
    import sys

    code = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
from tensorflow.python.eager import context
tf.config.threading.set_intra_op_parallelism_threads(1); tf.config.threading.set_inter_op_parallelism_threads(1)
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
size = int(sys.argv[2])
context.enable_run_metadata(); fn(tf.zeros((1, size, size, 3))); md = context.export_run_metadata()
g = max((f.post_optimization_graph for f in md.function_graphs), key=lambda g: len(g.node))
image = [n.name for n in g.node if n.op == "_Arg" and n.attr["T"].type == tf.float32.as_datatype_enum]
assert len(image) == 1, image
consumers = {}
for n in g.node:
    for i in n.input:
        if not i.startswith("^"):
            consumers.setdefault(i.split(":")[0], []).append(n)
seen, todo, out = set(image), list(image), []
while todo:
    for n in consumers.get(todo.pop(), []):
        if n.name not in seen:
            seen.add(n.name); todo.append(n.name)
            out.append([n.op, [s.decode() for s in n.attr["fused_ops"].list.s]])
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code, str(savedmodel), str(size)], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    sigs, inserted = Counter(), Counter()
    for op, fused in json.loads(res.stdout.strip().splitlines()[-1]):
        if op in ("_Retval",):
            continue
        if op == "Identity":
            inserted[op] += 1
            continue
        if op in ("_FusedConv2D", "_FusedDepthwiseConv2dNative", "_FusedMatMul"):
            kind = {"_FusedConv2D": "conv", "_FusedDepthwiseConv2dNative": "dwconv", "_FusedMatMul": "fc"}[op]
            act = next((f.lower() for f in fused if f in ("Relu", "Relu6")), None)
            sigs[(kind, act, "Add" in fused)] += 1
        elif op in _TF_TYPES:
            sigs[(_TF_TYPES[op], None, False)] += 1
        else:
            raise AssertionError(f"TensorFlow node type {op} not mapped")
    return sigs, inserted


def _zoo_file(network, fmt):
    from perfmodel.zoo import export

    return export(network, fmt)


@pytest.mark.parametrize("network", EVIDENCE_NETWORKS)
def test_onnxruntime_rules_match_its_optimised_graph(network, tmp_path):
    import onnx

    path = _zoo_file(network, "onnx")
    ks = detect_kernels(K.read_onnx(path), "onnxruntime")
    executed, inserted, summed = ort_executed(path, tmp_path / "optimised.onnx")
    assert Counter(_signature(k) for k in ks) == executed
    assert set(inserted) <= {"ReorderInput", "ReorderOutput"}
    # the residual add goes into the convolution ORT picks (the Add's first single-use conv operand)
    output_of = {n.name: n.output[0] for n in onnx.load(str(path), load_external_data=False).graph.node}
    assert {output_of[k.layers[0]] for k in ks if "add" in k.ops} == summed


@pytest.mark.parametrize("engine", ["classic", "new"])
@pytest.mark.parametrize("network", EVIDENCE_NETWORKS)
def test_opencv_rules_match_the_layers_it_runs(network, engine):
    import cv2

    if not hasattr(cv2.dnn, f"ENGINE_{engine.upper()}"):
        pytest.skip(f"OpenCV {cv2.__version__} has no {engine} engine")
    path = _zoo_file(network, "onnx")
    graph = K.read_onnx(path)
    ran, inserted = opencv_executed(path, graph, engine)
    _match_layers(detect_kernels(graph, "opencv" if engine == "classic" else "opencv-new"), ran)
    assert set(inserted) <= ({"Identity"} if engine == "classic" else {"TransformLayout"})


@pytest.mark.parametrize("network", EVIDENCE_NETWORKS)
def test_litert_rules_match_the_converted_model(network):
    path = _zoo_file(network, "tflite")
    _, _, graph = _keras(network)
    detected = Counter(_signature(k) for k in detect_kernels(graph, "litert"))
    executed, _ = litert_executed(path)
    assert detected == executed


@pytest.mark.parametrize("network", EVIDENCE_NETWORKS)
def test_tensorflow_rules_match_its_grappler_graph(network):
    from perfmodel.zoo import get_network

    path = _zoo_file(network, "savedmodel")
    _, _, graph = _keras(network)
    detected = Counter(_signature(k) for k in detect_kernels(graph, "tensorflow"))
    executed, inserted = tensorflow_executed(path, get_network(network).input_size)
    assert detected == executed
    assert set(inserted) <= {"Identity"}


# ----------------------------------------------------------------------------------------- a small hand-made ONNX graph


def tiny_onnx(path: Path) -> Path:
    """An ONNX graph with what SqueezeNet lacks: a zero Pad before a depthwise conv (+ ReLU6 as Clip) and before a
    max pool, a residual Add of two single-use convolutions (+ ReLU), a concat whose operand is also read by a
    conv, and two MatMul + Add (+ ReLU) dense layers."""
    import numpy as np
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def w(name, *shape):
        inits.append(nh.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name))
        return name

    def c(name, value):
        inits.append(nh.from_array(np.asarray(value), name))
        return name

    def n(op, ins, out, **kw):
        nodes.append(h.make_node(op, ins, [out], name=out, **kw))
        return out

    x = n("Pad", ["input", c("pads0", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], "pad0")
    x = n("Conv", [x, w("wd", 8, 1, 3, 3), w("bd", 8)], "dw", group=8, strides=[2, 2], kernel_shape=[3, 3])
    x = n("Clip", [x, c("lo", np.array(0, np.float32)), c("hi", np.array(6, np.float32))], "dw_relu6")
    proj = n("Conv", [x, w("w1", 16, 8, 1, 1), w("b1", 16)], "proj", kernel_shape=[1, 1])
    y = n("Relu", [n("Conv", [x, w("w2", 16, 8, 3, 3), w("b2", 16)], "conv2", kernel_shape=[3, 3],
                     pads=[1, 1, 1, 1])], "conv2_relu")
    y = n("Conv", [y, w("w3", 16, 16, 3, 3), w("b3", 16)], "conv3", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    a = n("Relu", [n("Add", [proj, y], "add")], "add_relu")
    e = n("Relu", [n("Conv", [a, w("w4", 16, 16, 1, 1), w("b4", 16)], "conv4", kernel_shape=[1, 1])], "conv4_relu")
    x = n("Concat", [a, e], "concat", axis=1)
    x = n("Pad", [x, c("pads1", np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))], "pool_pad")
    x = n("MaxPool", [x], "pool", kernel_shape=[3, 3], strides=[2, 2])
    x = n("Flatten", [n("GlobalAveragePool", [x], "gap")], "flat", axis=1)
    x = n("Relu", [n("Add", [n("MatMul", [x, w("wf", 32, 16)], "fc1"), w("bf", 16)], "fc1_bias")], "fc1_relu")
    x = n("Add", [n("MatMul", [x, w("wg", 16, 10)], "fc2"), w("bg", 10)], "fc2_bias")
    n("Softmax", [x], "prob", axis=1)
    graph = h.make_graph(nodes, "tiny", [h.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 16, 16])],
                         [h.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_tiny_graph_against_onnxruntime(tmp_path):
    path = tiny_onnx(tmp_path / "tiny.onnx")
    ks = detect_kernels(K.read_onnx(path), "onnxruntime")
    executed, inserted, summed = ort_executed(path, tmp_path / "optimised.onnx")
    assert Counter(_signature(k) for k in ks) == executed
    assert summed == {"proj"} == {k.layers[0] for k in ks if "add" in k.ops}  # the Add's first operand
    assert ("pad", None, False) in executed  # the pad before the max pool stays a node of its own
    assert set(inserted) <= {"ReorderInput", "ReorderOutput"}


@pytest.mark.parametrize("engine", ["classic", "new"])
def test_tiny_graph_against_opencv(tmp_path, engine):
    import cv2

    if not hasattr(cv2.dnn, f"ENGINE_{engine.upper()}"):
        pytest.skip(f"OpenCV {cv2.__version__} has no {engine} engine")
    path = tiny_onnx(tmp_path / "tiny.onnx")
    graph = K.read_onnx(path)
    ks = detect_kernels(graph, "opencv" if engine == "classic" else "opencv-new")
    ran, inserted = opencv_executed(path, graph, engine)
    types = _match_layers(ks, ran)
    assert types["pad"] == 2 and types["concat"] == 1 and types["fc"] == 2
    assert [k.layers for k in ks if "add" in k.ops] == [("conv3", "add", "add_relu")]  # the operand computed last
    # the importer runs Flatten(axis=1) as two layers (classic engine); the new engine adds layout layers
    assert set(inserted) <= ({"Identity", "Flatten"} if engine == "classic" else {"TransformLayout"})


@pytest.mark.parametrize("network", ["squeezenet1_1", "mobilenet_v2", "resnet50", "googlenet", "alexnet",
                                     "inception_v3"])
def test_the_light_onnx_reader_gives_the_kernels_onnx_shape_inference_gives(network, monkeypatch):
    """read_onnx infers shapes itself (no onnx import) for the ops it knows; forced onto the onnx package's
    shape inference it must give the same graph, kernel for kernel, under every framework's rules."""
    from perfmodel.zoo import _onnx_light as light
    from perfmodel.zoo import export

    path = export(network, "onnx")

    def kernels():
        g = K.read_onnx(path)
        return {fw: [k.as_dict() for k in detect_kernels(g, fw)] for fw in [*K.FRAMEWORKS, "opencv-new"]}

    fast = kernels()
    calls = []

    def unsupported(*a, **k):
        calls.append(1)
        raise light.Unsupported("forced")

    monkeypatch.setattr(light, "infer_shapes", unsupported)
    assert kernels() == fast and calls


def test_the_light_onnx_reader_does_not_import_onnx_and_falls_back_for_what_it_does_not_know(tmp_path):
    import subprocess
    import sys

    from perfmodel.zoo import export

    path = export("squeezenet1_1", "onnx")
    code = ("import sys\nfrom perfmodel.zoo.kernels import read_onnx\n"
            f"g = read_onnx({str(path)!r})\nprint(len(g), 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False" and int(out[0]) > 40
    # an op the light reader does not know (Erf): onnx's shape inference takes over
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Erf", ["x"], ["e"], name="erf"),
                           helper.make_node("Relu", ["e"], ["y"], name="relu")], "g", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "erf.onnx")
    graph = K.read_onnx(tmp_path / "erf.onnx")
    assert [op.type for op in graph.ops.values()] == ["other:Erf", "relu"]
    assert all(op.out_shape == (8, 8, 3) for op in graph.ops.values())


def test_light_onnx_shape_rules_against_onnx_shape_inference():
    """Single ops the light reader knows, with the attribute forms that have tripped readers (negative Flatten
    axis, transposed Gemm, SAME_LOWER / ceil_mode / dilated windows, Reshape 0 and -1, empty ReduceMean axes):
    each shape as onnx's own inference gives it, or Unsupported."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    from perfmodel.zoo import _onnx_light as light

    def check(op, x_shape, inits=(), **attrs):
        names = ["x"] + [n for n, _ in inits]
        node = helper.make_node(op, names, ["y"], **attrs)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
        want = [d.dim_value for d in shape_inference.infer_shapes(m).graph.output[0].type.tensor_type.shape.dim]
        dims = {"x": list(x_shape)}
        try:
            light.infer_shapes(m.graph, dims, {i.name: i for i in m.graph.initializer})
        except light.Unsupported:
            return
        assert dims["y"] == want, (op, attrs)

    check("Flatten", [1, 3, 4, 5], axis=-1)
    check("Flatten", [1, 3, 4, 5])
    check("Gemm", [4, 7], [("w", np.zeros((5, 7), np.float32))], transB=1)
    check("Gemm", [7, 4], [("w", np.zeros((7, 5), np.float32))], transA=1)
    check("Conv", [1, 3, 10, 10], [("w", np.zeros((8, 3, 3, 3), np.float32))], auto_pad="SAME_LOWER", strides=[2, 2])
    check("Conv", [1, 3, 10, 10], [("w", np.zeros((8, 3, 3, 3), np.float32))], dilations=[2, 2], pads=[1, 1, 1, 1])
    check("MaxPool", [1, 3, 10, 10], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    check("AveragePool", [1, 3, 10, 10], kernel_shape=[3, 3], dilations=[2, 2])
    check("Reshape", [1, 3, 4, 5], [("s", np.array([0, -1], np.int64))])
    check("ReduceMean", [1, 3, 4, 5], [("a", np.array([], np.int64))])
    check("ReduceMean", [1, 3, 4, 5], [("a", np.array([2, 3], np.int64))], keepdims=0)
    check("Squeeze", [1, 3, 1, 5], [("a", np.array([-2], np.int64))])
    check("Unsqueeze", [3, 5], [("a", np.array([0, -1], np.int64))])
    check("Pad", [1, 3, 4, 5], [("p", np.array([0, 0, 1, 2, 0, 0, 3, 4], np.int64))])
    check("Concat", [1, 3, 4, 5], [("c", np.zeros((1, 2, 4, 5), np.float32))], axis=-3)
    check("Transpose", [1, 3, 4, 5], perm=[0, 2, 3, 1])
    check("Add", [1, 3, 4, 5], [("b", np.zeros((3, 1, 1), np.float32))])
