"""Graph -> kernels: the units of work a framework really runs for a network, with their configuration.

A network is read into one *unfused operator graph* (:class:`OpGraph`: ops in topological order, each with its
activation inputs, shapes and weights), from a Keras model (a zoo network, a model object or a ``.keras`` file,
:func:`read_keras`) or an ONNX file (:func:`read_onnx`, ONNX shape inference). Convolution / dense biases are
ops of their own (``bias``) because not every framework fuses them (TensorFlow runs a depthwise convolution's
``BiasAdd`` separately). :func:`detect_kernels` then applies one framework's fusion rules
(:data:`FUSION_RULES`), in the spirit of nn-Meter's kernel detection: walking the ops in order, an op joins the
kernel that produced its input when (kernel type, the kernel's last op, the op) is a rule of that framework
and the producer's output has that op as its single consumer (plus the rule's extra condition, if any). A pad
that a framework folds into the next convolution fuses *forward* the same way (rule ``("pad", "pad", "conv")``).
OpenCV's classic engine also removes channel concatenations whose inputs are written straight into the
concatenated buffer (``concat_into_producers``): the ``concat`` op then ends each producer's chain and no
concat kernel is left.

The rules are data, taken from what each framework executes for the zoo's networks (docs/kernels.md gives the
evidence; tests/test_kernels.py checks them against each framework's own executed graph). :func:`summarize`
gives the per-type totals (kernels, MACs, bytes) of a kernel list, :func:`network_summary` those of a network for
every framework.

MACs follow :func:`perfmodel.zoo.facts.graph_facts`: convolution ``out_h*out_w*k_h*k_w*c_in/groups*c_out``, dense
``in*out``, everything else 0. Bytes are float32 (4 bytes an element): a kernel's input bytes are those of every
activation tensor it reads from outside itself (both operands of a fused residual add), its output bytes those of
the tensor it writes, its weight bytes those of its constant operands (kernel, bias).

Frameworks are imported inside the readers only (TensorFlow / Keras for :func:`read_keras`, ``onnx`` for
:func:`read_onnx`); :func:`detect_kernels` and :func:`summarize` need nothing beyond the standard library.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from perfmodel.errors import InputFileError, PerfmodelError, UnknownNameError

#: float32: bytes of one tensor element.
FLOAT_BYTES = 4

#: Op types of the unfused graph (readers map every framework's names onto these). Types not listed here are
#: kept as ``other:<name>`` with no MACs.
OP_TYPES: tuple[str, ...] = (
    "conv", "dwconv", "fc", "bias", "batchnorm", "relu", "relu6", "leaky_relu", "clip", "sigmoid", "tanh",
    "maxpool", "avgpool", "global_avgpool", "global_maxpool", "pad", "add", "mul", "concat", "softmax",
    "reshape", "transpose",
)
#: Op types that only prepare the input of the op after them: a kernel's type is its first op of another type.
PREFIX_TYPES = frozenset({"pad"})

HWC = tuple[int, int, int]


@dataclass(frozen=True)
class Op:
    """One operator of the unfused graph. Shapes are ``(H, W, C)`` of batch 1 (a vector is ``(1, 1, C)``)."""

    name: str
    type: str
    inputs: tuple[str, ...]  #: producers of the activation inputs (op names, or the graph input's name)
    in_shapes: tuple[HWC, ...]
    out_shape: HWC
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  #: top, left, bottom, right
    groups: int = 1
    macs: int = 0
    weight_bytes: int = 0
    source: str = ""  #: the layer / node it was read from

    @property
    def output_bytes(self) -> int:
        return math.prod(self.out_shape) * FLOAT_BYTES


@dataclass
class OpGraph:
    """Ops in topological order, the graph inputs, and each op's (or input's) consumers."""

    ops: dict[str, Op]
    inputs: dict[str, HWC]
    source: str
    consumers: dict[str, list[str]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.consumers = {name: [] for name in self.inputs}
        self.order = {name: -1 for name in self.inputs}
        for i, op in enumerate(self.ops.values()):
            self.consumers.setdefault(op.name, [])
            self.order[op.name] = i
            for src in op.inputs:
                if src not in self.consumers:
                    raise PerfmodelError(f"{self.source}: op {op.name!r} reads {src!r}, which comes later or "
                                         "nowhere (the graph is not in topological order)")
                self.consumers[src].append(op.name)

    def __len__(self) -> int:
        return len(self.ops)

    def count(self) -> Counter:
        """Number of ops by type."""
        return Counter(op.type for op in self.ops.values())


@dataclass(frozen=True)
class Kernel:
    """One kernel a framework runs: its fused op chain and configuration (float32 bytes, batch 1)."""

    type: str  #: the chain's first op that is not a prefix (pad): conv, dwconv, fc, maxpool, add, ...
    ops: tuple[str, ...]  #: the fused op chain, e.g. ("conv", "bias", "relu"), ("pad", "dwconv", "bias", "relu6")
    input_hwc: HWC  #: the first op's (first) input
    output_hwc: HWC
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  #: top, left, bottom, right, including a fused pad
    groups: int
    macs: int
    input_bytes: int
    output_bytes: int
    weight_bytes: int
    layers: tuple[str, ...]  #: the source layers / nodes of its ops, in order (a layer's bias op adds no name)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "ops": list(self.ops), "input_hwc": list(self.input_hwc),
                "output_hwc": list(self.output_hwc), "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding), "groups": self.groups,
                "macs": self.macs, "input_bytes": self.input_bytes, "output_bytes": self.output_bytes,
                "weight_bytes": self.weight_bytes, "layers": list(self.layers)}


# ------------------------------------------------------------------------------------------- fusion rules


class Rule(NamedTuple):
    """``op`` joins a kernel of type ``kernel`` ("*": any) whose last op is ``last``; ``when`` names an extra
    condition (see :data:`CONDITIONS`)."""

    kernel: str
    last: str
    op: str
    when: str | None = None


#: Extra conditions a rule may name.
CONDITIONS: dict[str, str] = {
    "other_input_earlier_single_use": (
        "the add's other operand is produced by an op earlier in the graph than the kernel's main op and "
        "read by nothing else (OpenCV's classic engine, net_impl_fuse.cpp)"),
}

_ACTS = ("relu", "relu6")


def _chain(kernel: str, *pairs: tuple[str, str], when: str | None = None) -> tuple[Rule, ...]:
    return tuple(Rule(kernel, a, b, when) for a, b in pairs)


#: Per framework: ``fuse`` (rules), ``add_operand_order`` ("first": try the add's operands in input order, as
#: ONNX Runtime's NCHWc transformer does; "last": the operand computed last first, as OpenCV's classic engine
#: scans its layers), ``concat_into_producers`` (OpenCV classic). Evidence: docs/kernels.md.
FUSION_RULES: dict[str, dict[str, Any]] = {
    # grappler remapper, TensorFlow's default Eigen kernels (oneDNN opts off): _FusedConv2D {BiasAdd[, Relu|Relu6]},
    # _FusedMatMul {BiasAdd[, Relu]}; depthwise conv, its BiasAdd and Relu6, Pad, AddV2 run as nodes of their own
    "tensorflow": {
        "fuse": (*_chain("conv", ("conv", "bias"), ("bias", "relu"), ("bias", "relu6")),
                 *_chain("fc", ("fc", "bias"), ("bias", "relu"))),
        "add_operand_order": "first",
        "concat_into_producers": False,
    },
    # the TFLite converter (fused_activation_function of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / ADD, biases
    # as operands) and XNNPACK, which folds a zero spatial PAD into the next (depthwise) convolution
    "litert": {
        "fuse": (*_chain("conv", ("conv", "bias"), ("bias", "relu"), ("bias", "relu6"), ("conv", "relu"),
                         ("conv", "relu6")),
                 *_chain("dwconv", ("dwconv", "bias"), ("bias", "relu"), ("bias", "relu6"), ("dwconv", "relu"),
                         ("dwconv", "relu6")),
                 *_chain("fc", ("fc", "bias"), ("bias", "relu"), ("fc", "relu")),
                 *_chain("add", ("add", "relu"), ("add", "relu6")),
                 *_chain("pad", ("pad", "conv"), ("pad", "dwconv"))),
        "add_operand_order": "first",
        "concat_into_producers": False,
    },
    # ORT_ENABLE_ALL on x86 (the runner's level): PadFusion (a zero Pad into Conv; not into MaxPool in ORT 1.32),
    # Conv + activation, MatMul + Add (+ Relu) -> (Fused)Gemm, then the NCHWc transformer (Add into a single-use
    # Conv without activation, tried in the Add's input order, then Relu; an NCHW -> NHWC Transpose after an NCHWc
    # op done by the ReorderOutput it needs anyway: AlexNet's flatten)
    "onnxruntime": {
        "fuse": (*_chain("conv", ("conv", "bias"), ("conv", "relu"), ("conv", "relu6"), ("bias", "relu"),
                         ("bias", "relu6"), ("conv", "add"), ("bias", "add"), ("add", "relu")),
                 *_chain("dwconv", ("dwconv", "bias"), ("dwconv", "relu"), ("dwconv", "relu6"), ("bias", "relu"),
                         ("bias", "relu6")),
                 *_chain("fc", ("fc", "bias"), ("bias", "relu")),
                 *_chain("pad", ("pad", "conv"), ("pad", "dwconv")),
                 *_chain("maxpool", ("maxpool", "transpose"))),
        "add_operand_order": "first",
        "concat_into_producers": False,
    },
    # OpenCV DNN, classic engine (OpenCV <= 5.0, the runner's default there): activations into the layer before
    # them, Add (+ activation) into a convolution when the other operand is earlier and single-use, channel
    # concatenations written in place by their producers
    "opencv": {
        "fuse": (*_chain("conv", ("conv", "bias"), ("conv", "relu"), ("conv", "relu6"), ("bias", "relu"),
                         ("bias", "relu6")),
                 *_chain("conv", ("conv", "add"), ("bias", "add"), when="other_input_earlier_single_use"),
                 *_chain("conv", ("add", "relu"), ("add", "relu6")),
                 *_chain("dwconv", ("dwconv", "bias"), ("dwconv", "relu"), ("dwconv", "relu6"), ("bias", "relu"),
                         ("bias", "relu6")),
                 *_chain("fc", ("fc", "bias"))),
        "add_operand_order": "last",
        "concat_into_producers": True,
    },
    # OpenCV DNN, new graph engine (engine="new"; the only engine of OpenCV >= 5.1): ReLU and a residual Add into
    # the convolution (the operand produced last, single-use); Clip (ReLU6), Pad and Concat run as layers
    "opencv-new": {
        "fuse": (*_chain("conv", ("conv", "bias"), ("conv", "relu"), ("bias", "relu"), ("conv", "add"),
                         ("bias", "add"), ("add", "relu")),
                 *_chain("dwconv", ("dwconv", "bias"), ("dwconv", "relu"), ("bias", "relu")),
                 *_chain("fc", ("fc", "bias"))),
        "add_operand_order": "last",
        "concat_into_producers": False,
    },
}
#: The four frameworks; ``opencv`` is its classic engine (the runner's default where it exists), ``opencv-new``
#: the rule set of OpenCV's new engine (see :func:`rules`).
FRAMEWORKS: tuple[str, ...] = ("tensorflow", "litert", "onnxruntime", "opencv")
#: Layout / copy nodes a framework inserts that are not ops of the network: excluded when its executed graph is
#: compared with the detected kernels.
INSERTED_NODES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("Identity (the signature's output)",),
    "litert": (),
    "onnxruntime": ("ReorderInput", "ReorderOutput (NCHWc <-> NCHW layout)"),
    "opencv": ("Identity (the output layer)", "Flatten (the importer's second layer for an ONNX Flatten)"),
    "opencv-new": ("TransformLayout (block <-> plain layout)",),
}


def rules_name(framework: str, engine: str | None = None) -> str:
    """The :data:`FUSION_RULES` key of ``framework`` running ``engine``: ``opencv-new`` for OpenCV's new engine,
    else the framework's own name."""
    return "opencv-new" if framework == "opencv" and engine == "new" else framework


def rules(framework: str, engine: str | None = None) -> dict[str, Any]:
    """The rule set of ``framework`` (:data:`FUSION_RULES`); for ``opencv``, ``engine="new"`` gives OpenCV's new
    engine's rules (``opencv-new``), ``"classic"`` or None the classic engine's."""
    name = rules_name(framework, engine)
    if engine not in (None, "classic", "new") or (engine == "new" and framework not in ("opencv", "opencv-new")):
        raise PerfmodelError(f"no {engine!r} engine rules for {framework!r}")
    try:
        return FUSION_RULES[name]
    except (KeyError, TypeError):
        raise UnknownNameError("framework", str(framework), FUSION_RULES) from None


# ------------------------------------------------------------------------------------------- detection


class _Building:
    __slots__ = ("ops", "types")

    def __init__(self, op: Op):
        self.ops: list[Op] = [op]
        self.types: list[str] = [op.type]

    @property
    def kind(self) -> str:
        for t in self.types:
            if t not in PREFIX_TYPES:
                return t
        return self.types[0]


def detect_kernels(graph: OpGraph, framework: str) -> list[Kernel]:
    """The kernels ``framework`` runs for ``graph``, in execution order (see the module docstring)."""
    spec = rules(framework)
    table: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for r in spec["fuse"]:
        table.setdefault((r.last, r.op), []).append((r.kernel, r.when))
    order, consumers = graph.order, graph.consumers
    building: list[_Building] = []
    kernel_of: dict[str, int] = {}  # op name -> index in building; an in-place concat maps to -1
    tails: dict[int, list[str]] = {}  # kernel index -> extra chain ops after it (in-place concat)
    last_first = spec["add_operand_order"] == "last"

    for op in graph.ops.values():
        candidates = list(dict.fromkeys(op.inputs))
        if last_first:
            candidates.sort(key=lambda name: order[name], reverse=True)
        joined = -1
        for src in candidates:
            k = kernel_of.get(src)
            if k is None or k < 0:
                continue
            b = building[k]
            if b.ops[-1].name != src or consumers[src] != [op.name] or k in tails:
                continue
            allowed = table.get((b.types[-1], op.type))
            if not allowed:
                continue
            kind = b.kind
            if not any((kk == "*" or kk == kind) and _holds(when, graph, b, op, src) for kk, when in allowed):
                continue
            joined = k
            break
        if joined >= 0:
            building[joined].ops.append(op)
            building[joined].types.append(op.type)
            kernel_of[op.name] = joined
            continue
        if op.type == "concat" and spec["concat_into_producers"] and _concat_in_place(graph, op, kernel_of,
                                                                                      building, tails):
            for src in op.inputs:
                tails[kernel_of[src]] = [op.name]
            kernel_of[op.name] = -1
            continue
        kernel_of[op.name] = len(building)
        building.append(_Building(op))
    return [_make_kernel(graph, b, tails.get(i, [])) for i, b in enumerate(building)]


def _holds(when: str | None, graph: OpGraph, b: _Building, op: Op, src: str) -> bool:
    if when is None:
        return True
    if when == "other_input_earlier_single_use":
        others = [name for name in op.inputs if name != src]
        main = next(o for o in b.ops if o.type not in PREFIX_TYPES)
        return len(others) == 1 and others[0] in graph.ops and len(graph.consumers[others[0]]) == 1 \
            and graph.order[others[0]] < graph.order[main.name]
    raise ValueError(f"unknown rule condition {when!r}")  # pragma: no cover - FUSION_RULES is checked by tests


def _concat_in_place(graph: OpGraph, op: Op, kernel_of: dict[str, int], building: list[_Building],
                     tails: dict[int, list[str]]) -> bool:
    """OpenCV classic: every operand is the last op of a kernel that nothing else reads (nor another concat)."""
    if len(set(op.inputs)) != len(op.inputs):
        return False
    for src in op.inputs:
        k = kernel_of.get(src)
        if k is None or k < 0 or k in tails or building[k].ops[-1].name != src or graph.consumers[src] != [op.name]:
            return False
    return True


def _make_kernel(graph: OpGraph, b: _Building, tail: list[str]) -> Kernel:
    ops = b.ops
    inside = {o.name for o in ops}
    main = next((o for o in ops if o.type not in PREFIX_TYPES), ops[0])
    pad = [0, 0, 0, 0]
    for o in ops:
        if o.type in PREFIX_TYPES or o is main:
            pad = [a + c for a, c in zip(pad, o.padding)]
    read: dict[str, int] = {}
    for o in ops:
        for src, shape in zip(o.inputs, o.in_shapes):
            if src not in inside:
                read[src] = math.prod(shape) * FLOAT_BYTES
    first = ops[0]
    return Kernel(
        type=b.kind, ops=tuple(b.types) + (("concat",) if tail else ()),
        input_hwc=first.in_shapes[0] if first.in_shapes else (0, 0, 0), output_hwc=ops[-1].out_shape,
        kernel_size=main.kernel, stride=main.stride, padding=tuple(pad), groups=main.groups,
        macs=sum(o.macs for o in ops), input_bytes=sum(read.values()), output_bytes=ops[-1].output_bytes,
        weight_bytes=sum(o.weight_bytes for o in ops), layers=tuple(dict.fromkeys(
            [o.source or o.name for o in ops] + [graph.ops[t].source or t for t in tail])))


def kernel_dicts(graph: OpGraph, frameworks: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The kernels each of ``frameworks`` runs for ``graph``, as :meth:`Kernel.as_dict` dicts (the form the
    operator-level model and the kernel data sets use)."""
    return {fw: [k.as_dict() for k in detect_kernels(graph, fw)] for fw in frameworks}


def summarize(kernels: Sequence[Kernel]) -> dict[str, Any]:
    """Per kernel type (sorted by MACs, then count): kernels, MACs, input / output / weight bytes; and the totals."""
    by: dict[str, dict[str, int]] = {}
    for k in kernels:
        row = by.setdefault(k.type, {"kernels": 0, "macs": 0, "input_bytes": 0, "output_bytes": 0,
                                     "weight_bytes": 0})
        row["kernels"] += 1
        row["macs"] += k.macs
        row["input_bytes"] += k.input_bytes
        row["output_bytes"] += k.output_bytes
        row["weight_bytes"] += k.weight_bytes
    types = sorted(by, key=lambda t: (-by[t]["macs"], -by[t]["kernels"], t))
    total = {key: sum(by[t][key] for t in by) for key in ("kernels", "macs", "input_bytes", "output_bytes",
                                                          "weight_bytes")}
    fused = Counter(" + ".join(k.ops) for k in kernels)
    return {"by_type": {t: by[t] for t in types}, "total": total, "chains": dict(fused.most_common())}


def network_summary(source: Any, frameworks: Iterable[str] | None = None,
                    input_size: int | None = None) -> dict[str, Any]:
    """The graph of ``source`` (see :func:`read_graph`) read once, and :func:`summarize` of its kernels for each
    framework (default: :data:`FRAMEWORKS` and ``opencv-new``): ``{"source", "ops", "op_types", "frameworks":
    {framework: summary}}``, JSON-ready."""
    graph = read_graph(source, input_size)
    names = list(frameworks) if frameworks is not None else [*FRAMEWORKS, "opencv-new"]
    return {"source": graph.source, "ops": len(graph), "op_types": dict(graph.count().most_common()),
            "frameworks": {fw: summarize(detect_kernels(graph, fw)) for fw in names}}


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """:func:`network_summary` as flat rows (framework, kernel type, kernels, MACs, input / output / weight bytes),
    each framework's total last, for a table."""
    rows = []
    for fw, s in summary["frameworks"].items():
        for t, row in [*s["by_type"].items(), ("total", s["total"])]:
            rows.append({"framework": fw, "type": t, **row})
    return rows


# ------------------------------------------------------------------------------------------- readers


def read_graph(source: Any, input_size: int | None = None) -> OpGraph:
    """The unfused graph of a zoo network name, a ``.keras`` / ``.onnx`` file or a Keras model object."""
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.endswith(".onnx"):
            return read_onnx(text)
        if text.endswith(".keras"):
            return read_keras(text)
        from perfmodel.zoo.networks import NETWORKS

        if text in NETWORKS:
            from perfmodel.zoo.build import build_graph

            return read_keras(build_graph(text, input_size), source=f"zoo:{text}")
        if Path(text).exists():
            raise InputFileError(f"{text!r}: a graph file must be .onnx or .keras")
        raise UnknownNameError("network", text, NETWORKS)
    return read_keras(source)


def _hwc(dims: Sequence[int], channels_last: bool) -> HWC:
    try:
        d = [int(x) for x in dims[1:]]
    except TypeError:
        raise PerfmodelError(f"a tensor of shape {tuple(dims)} has no fixed size (batch 1, fixed H x W "
                             "needed)") from None
    if len(d) == 3:
        return (d[0], d[1], d[2]) if channels_last else (d[1], d[2], d[0])
    return (1, 1, int(math.prod(d)))


def _conv_macs(out: HWC, kernel: tuple[int, int], c_in: int, groups: int) -> int:
    return int(out[0] * out[1] * kernel[0] * kernel[1] * (c_in // groups) * out[2])


def _same_padding(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class _Builder:
    """Collects ops; pass-through ops (identity, dropout) are aliased to their input."""

    def __init__(self, source: str):
        self.source = source
        self.ops: dict[str, Op] = {}
        self.inputs: dict[str, HWC] = {}
        self.alias: dict[str, str] = {}
        self.shape: dict[str, HWC] = {}

    def producer(self, name: str) -> str:
        return self.alias.get(name, name)

    def add(self, name: str, type_: str, inputs: Sequence[str], out: HWC, **kw: Any) -> str:
        srcs = tuple(self.producer(n) for n in inputs)
        if name in self.ops or name in self.inputs:
            i = 1
            while f"{name}#{i}" in self.ops:
                i += 1
            name = f"{name}#{i}"
        self.ops[name] = Op(name=name, type=type_, inputs=srcs, in_shapes=tuple(self.shape[s] for s in srcs),
                            out_shape=out, source=kw.pop("source", name), **kw)
        self.shape[name] = out
        return name

    def graph(self) -> OpGraph:
        return OpGraph(self.ops, self.inputs, self.source)


_KERAS_ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "softmax": "softmax", "sigmoid": "sigmoid", "tanh": "tanh",
                      "leaky_relu": "leaky_relu"}
_KERAS_PASS = {"Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "Identity", "ActivityRegularization"}


def read_keras(model: Any, source: str | None = None) -> OpGraph:
    """The unfused graph of a Keras functional model (or a ``.keras`` file): one op per layer, plus a ``bias`` op
    after a convolution / dense layer with a bias and an activation op for a layer's own ``activation``."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise InputFileError(f"Keras model file {str(path)!r} does not exist")
        try:
            model = keras.models.load_model(str(path), compile=False)
        except Exception as exc:  # ValueError, OSError, zipfile errors, ...
            raise InputFileError(f"cannot read Keras model {str(path)!r}: {exc}") from None
        source = source or f"keras:{path.name}"
    b = _Builder(source or f"keras:{getattr(model, 'name', 'model')}")
    if not hasattr(model, "layers") or not hasattr(model, "inputs"):
        raise PerfmodelError(f"{b.source}: not a Keras functional model")
    for layer in _keras_topological(model, b.source):
        cls = type(layer).__name__
        nodes = getattr(layer, "_inbound_nodes", [])
        if cls == "InputLayer":
            b.inputs[layer.name] = _hwc(layer.output.shape, True)
            b.shape[layer.name] = b.inputs[layer.name]
            continue
        if isinstance(layer, keras.Model):
            raise PerfmodelError(f"{b.source}: nested model {layer.name!r} is not supported (flatten it first)")
        if len(nodes) != 1:
            raise PerfmodelError(f"{b.source}: layer {layer.name!r} is called {len(nodes)} times (shared layers "
                                 "are not supported)")
        srcs = [t._keras_history.operation.name for t in nodes[0].input_tensors]
        if cls in _KERAS_PASS:
            b.alias[layer.name] = b.producer(srcs[0])
            continue
        _keras_layer(b, layer, cls, srcs)
    return b.graph()


def _keras_topological(model: Any, source: str) -> list[Any]:
    layers = list(model.layers)
    names = {layer.name for layer in layers}
    done: set[str] = set()
    out: list[Any] = []
    pending = layers
    while pending:
        rest = []
        for layer in pending:
            nodes = getattr(layer, "_inbound_nodes", [])
            parents = {t._keras_history.operation.name for n in nodes for t in n.input_tensors}
            if parents & names <= done:
                out.append(layer)
                done.add(layer.name)
            else:
                rest.append(layer)
        if len(rest) == len(pending):
            raise PerfmodelError(f"{source}: the layer graph has a cycle or unknown inputs")
        pending = rest
    return out


def _weights_bytes(weights: Iterable[Any]) -> list[int]:
    import numpy as np

    return [int(math.prod(w.shape)) * np.dtype(str(getattr(w, "dtype", "float32"))).itemsize for w in weights]


def _keras_layer(b: _Builder, layer: Any, cls: str, srcs: list[str]) -> None:
    out = _hwc(layer.output.shape, True)
    ins = [b.shape[b.producer(s)] for s in srcs]
    name = layer.name
    conv_like = cls in ("Conv2D", "DepthwiseConv2D")
    if conv_like or cls == "Dense":
        wb = _weights_bytes(layer.weights)
        use_bias = bool(getattr(layer, "use_bias", False))
        if conv_like:
            c_in = ins[0][2]
            k = tuple(int(v) for v in layer.kernel_size)
            s = tuple(int(v) for v in layer.strides)
            if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1):
                raise PerfmodelError(f"{b.source}: dilated convolution {name!r} is not supported")
            groups = c_in if cls == "DepthwiseConv2D" else int(layer.groups)
            kind = "dwconv" if groups > 1 and groups == c_in else "conv"
            padding = (0, 0, 0, 0)
            if layer.padding == "same":
                top, bottom = _same_padding(ins[0][0], k[0], s[0])
                left, right = _same_padding(ins[0][1], k[1], s[1])
                padding = (top, left, bottom, right)
            main = b.add(name, kind, srcs, out, kernel=k, stride=s, padding=padding, groups=groups,
                         macs=_conv_macs(out, k, c_in, groups), weight_bytes=wb[0])
        else:
            c_in = ins[0][2]
            main = b.add(name, "fc", srcs, out, macs=int(math.prod(out) // out[2] * c_in * out[2]),
                         weight_bytes=wb[0])
        last = main
        if use_bias:
            last = b.add(f"{name}/bias", "bias", [main], out, weight_bytes=sum(wb[1:]), source=name)
        act = getattr(layer.activation, "__name__", "linear")
        if act != "linear":
            b.add(f"{name}/{act}", _KERAS_ACTIVATIONS.get(act, f"other:{act}"), [last], out, source=name)
            b.alias[name] = f"{name}/{act}"
        elif last != main:
            b.alias[name] = last
        return
    if layer.weights and cls != "BatchNormalization":
        raise PerfmodelError(f"{b.source}: layer {name!r} ({cls}) has weights but is not a layer this reader "
                             "counts (Conv2D, DepthwiseConv2D, Dense, BatchNormalization)")
    kw: dict[str, Any] = {}
    if cls == "ReLU":
        cfg = layer.get_config()
        if cfg.get("negative_slope"):
            kind = "leaky_relu"
        elif cfg.get("max_value") is not None and float(cfg["max_value"]) == 6.0:
            kind = "relu6"
        elif cfg.get("max_value") is None:
            kind = "relu"
        else:
            kind = "clip"
    elif cls == "Activation":
        act = getattr(layer.activation, "__name__", "linear")
        if act == "linear":
            b.alias[name] = b.producer(srcs[0])
            return
        kind = _KERAS_ACTIVATIONS.get(act, f"other:{act}")
    elif cls in ("MaxPooling2D", "AveragePooling2D"):
        kind = "maxpool" if cls == "MaxPooling2D" else "avgpool"
        k = tuple(int(v) for v in layer.pool_size)
        s = tuple(int(v) for v in layer.strides)
        kw = {"kernel": k, "stride": s}
        if layer.padding == "same":
            top, bottom = _same_padding(ins[0][0], k[0], s[0])
            left, right = _same_padding(ins[0][1], k[1], s[1])
            kw["padding"] = (top, left, bottom, right)
    elif cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        kind = "global_avgpool" if cls == "GlobalAveragePooling2D" else "global_maxpool"
        kw = {"kernel": (ins[0][0], ins[0][1])}
    elif cls == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        kind = "pad"
        kw = {"padding": (int(top), int(left), int(bottom), int(right))}
    elif cls in ("Add", "Multiply", "Concatenate"):
        kind = {"Add": "add", "Multiply": "mul", "Concatenate": "concat"}[cls]
    elif cls in ("Flatten", "Reshape"):
        kind = "reshape"
    elif cls == "Softmax":
        kind = "softmax"
    elif cls == "BatchNormalization":
        kind = "batchnorm"
        kw = {"weight_bytes": sum(_weights_bytes(layer.weights))}
    else:
        kind = f"other:{cls}"
    b.add(name, kind, srcs, out, **kw)


_ONNX_SIMPLE = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
                "MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "global_avgpool",
                "GlobalMaxPool": "global_maxpool", "Concat": "concat", "Softmax": "softmax", "Flatten": "reshape",
                "Reshape": "reshape", "Squeeze": "reshape", "Unsqueeze": "reshape", "Transpose": "transpose",
                "BatchNormalization": "batchnorm", "Pad": "pad"}
_ONNX_PASS = {"Identity", "Dropout"}


def read_onnx(path: str | Path) -> OpGraph:
    """The unfused graph of an ONNX file (NCHW tensors read as ``(H, W, C)``; shapes by ONNX shape inference).

    Nodes that read no activation (constants, shape arithmetic on constants) are not ops; a Conv / Gemm with a
    bias input gives a ``conv`` / ``fc`` op and a ``bias`` op, an Add of a constant a ``bias`` op.
    """
    import numpy as np

    from perfmodel.zoo import _onnx_light as light

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"ONNX file {str(path)!r} does not exist")
    model = _load_onnx(path)
    g = model.graph
    dims: dict[str, list[int]] = {}

    def collect(infos: Iterable[Any]) -> None:
        for vi in infos:
            t = vi.type.tensor_type
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                dims[vi.name] = [d.dim_value for d in t.shape.dim]

    collect(g.input)
    collect(g.value_info)
    collect(g.output)
    consts: dict[str, Any] = {init.name: init for init in g.initializer}
    inits_dims = {name: list(t.dims) for name, t in consts.items()}
    activation_inputs = [i for i in g.input if i.name not in consts]
    node_outputs = {o for n in g.node for o in n.output}
    if any(o not in dims for o in node_outputs):
        declared = dict(dims)
        try:  # the ops the light reader knows (every zoo network): no onnx import
            light.infer_shapes(g, dims, consts)
        except Exception:  # light.Unsupported, or a file it misreads: the onnx package decides, from scratch
            dims.clear()
            dims.update(declared)
            import onnx
            from onnx import shape_inference

            try:
                model = onnx.load(str(path))  # with external data (small shape / pad constants may live there)
                g = model.graph
                consts = {init.name: init for init in g.initializer}
                inits_dims = {name: list(t.dims) for name, t in consts.items()}
                inferred = shape_inference.infer_shapes(_without_weights(model))
            except Exception as exc:
                raise InputFileError(f"{path.name}: ONNX shape inference failed: {exc}") from None
            collect(inferred.graph.value_info)
            collect(inferred.graph.output)
    b = _Builder(f"onnx:{path.name}")
    for i in activation_inputs:
        if i.name not in dims:
            raise InputFileError(f"{path.name}: input {i.name!r} has no fixed shape")
        b.inputs[i.name] = _hwc(dims[i.name], False)
        b.shape[i.name] = b.inputs[i.name]
    active = set(b.inputs)
    producer_of: dict[str, str] = {name: name for name in b.inputs}
    const_values: dict[str, Any] = {}

    def value(name: str) -> Any:
        if name in const_values:
            return const_values[name]
        if name in consts:
            const_values[name] = _array(consts[name])
            return const_values[name]
        return None

    for idx, node in enumerate(g.node):
        act_in = [t for t in node.input if t in active]
        if not act_in:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        const_values[node.output[0]] = _array(a.t)
                        inits_dims[node.output[0]] = list(a.t.dims)
            else:
                for o in node.output:
                    if o in dims:
                        inits_dims[o] = dims[o]
            continue
        name = node.name or f"{node.op_type}_{idx}"
        out_name = node.output[0]
        if out_name not in dims:
            raise InputFileError(f"{path.name}: no shape for {out_name!r} (output of {name})")
        out = _hwc(dims[out_name], False)
        srcs = [producer_of[t] for t in act_in]
        attrs = {a.name: _attr(a) for a in node.attribute}
        op = node.op_type
        const_in = [t for t in node.input if t and t not in active]
        wbytes = sum(int(math.prod(inits_dims.get(t, [0]))) * FLOAT_BYTES for t in const_in)
        if op in _ONNX_PASS:
            for o in node.output:
                active.add(o)
                producer_of[o] = b.producer(srcs[0])
            continue
        if op == "Conv":
            w = inits_dims.get(node.input[1])
            if w is None or len(w) != 4:
                raise InputFileError(f"{path.name}: Conv {name!r} needs a constant 4-D weight")
            if any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise InputFileError(f"{path.name}: dilated Conv {name!r} is not supported")
            groups = int(attrs.get("group", 1))
            c_in = b.shape[b.producer(srcs[0])][2]
            kind = "dwconv" if groups > 1 and groups == c_in else "conv"
            k = (int(w[2]), int(w[3]))
            s = tuple(int(v) for v in attrs.get("strides", [1, 1]))
            pads = _onnx_pads(attrs, b.shape[b.producer(srcs[0])], k, s)
            main = b.add(name, kind, srcs, out, kernel=k, stride=s, padding=pads, groups=groups,
                         macs=_conv_macs(out, k, c_in, groups), weight_bytes=int(math.prod(w)) * FLOAT_BYTES)
            last = main
            if len(node.input) > 2 and node.input[2]:
                last = b.add(f"{name}/bias", "bias", [main], out, source=name,
                             weight_bytes=int(math.prod(inits_dims.get(node.input[2], [0]))) * FLOAT_BYTES)
        elif op in ("Gemm", "MatMul") and len(act_in) == 1 and node.input[0] in active:
            w = inits_dims.get(node.input[1])
            if w is None or len(w) != 2:
                raise InputFileError(f"{path.name}: {op} {name!r} needs a constant 2-D weight")
            k_in = w[1] if attrs.get("transB", 0) else w[0]
            main = b.add(name, "fc", srcs, out, macs=int(math.prod(out) * k_in),
                         weight_bytes=int(math.prod(w)) * FLOAT_BYTES)
            last = main
            if op == "Gemm" and len(node.input) > 2 and node.input[2]:
                last = b.add(f"{name}/bias", "bias", [main], out, source=name,
                             weight_bytes=int(math.prod(inits_dims.get(node.input[2], [0]))) * FLOAT_BYTES)
        elif op in ("Add", "Sum"):
            last = b.add(name, "add" if len(act_in) > 1 else "bias", srcs, out, weight_bytes=wbytes)
        elif op == "Mul":
            last = b.add(name, "mul", srcs, out, weight_bytes=wbytes)
        elif op == "Clip":
            lo = attrs.get("min")
            hi = attrs.get("max")
            if len(node.input) > 1 and node.input[1]:
                v = value(node.input[1])
                lo = None if v is None else float(np.asarray(v).reshape(-1)[0])
            if len(node.input) > 2 and node.input[2]:
                v = value(node.input[2])
                hi = None if v is None else float(np.asarray(v).reshape(-1)[0])
            kind = "relu6" if (lo == 0.0 and hi == 6.0) else "relu" if (lo == 0.0 and hi is None) else "clip"
            last = b.add(name, kind, srcs, out)
        elif op == "ReduceMean":
            axes = attrs.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                v = value(node.input[1])
                axes = None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
            in_shape = b.shape[b.producer(srcs[0])]
            spatial = axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]
            last = b.add(name, "global_avgpool" if spatial else "other:ReduceMean", srcs, out,
                         kernel=(in_shape[0], in_shape[1]) if spatial else (1, 1))
        elif op in ("MaxPool", "AveragePool"):
            k = tuple(int(v) for v in attrs["kernel_shape"])
            s = tuple(int(v) for v in attrs.get("strides", [1, 1]))
            last = b.add(name, _ONNX_SIMPLE[op], srcs, out, kernel=k, stride=s,
                         padding=_onnx_pads(attrs, b.shape[b.producer(srcs[0])], k, s))
        elif op == "Pad":
            pads = attrs.get("pads")
            if pads is None and len(node.input) > 1:
                v = value(node.input[1])
                pads = None if v is None else [int(p) for p in np.asarray(v).reshape(-1)]
            spatial = (0, 0, 0, 0)
            if pads is not None and len(pads) == 8:  # N C H W begins, then ends
                spatial = (int(pads[2]), int(pads[3]), int(pads[6]), int(pads[7]))
            last = b.add(name, "pad", srcs, out, padding=spatial)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            in_shape = b.shape[b.producer(srcs[0])]
            last = b.add(name, _ONNX_SIMPLE[op], srcs, out, kernel=(in_shape[0], in_shape[1]))
        else:
            last = b.add(name, _ONNX_SIMPLE.get(op, f"other:{op}"), srcs, out, weight_bytes=wbytes)
        for o in node.output:
            active.add(o)
            producer_of[o] = last
    return b.graph()


def _load_onnx(path: Path) -> Any:
    """The ModelProto of an ONNX file: parsed with the protobuf classes alone where they load without the onnx
    package (``zoo._onnx_light``), else by ``onnx.load``; tensors stored in external files are not read here
    (their shapes are in the file; the onnx fallback of ``read_onnx`` loads them)."""
    from perfmodel.zoo._onnx_light import onnx_pb2

    pb2 = onnx_pb2()
    try:
        if pb2 is not None:
            model = pb2.ModelProto()
            model.ParseFromString(path.read_bytes())
            return model
        import onnx

        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, ValueError, ...
        raise InputFileError(f"cannot read ONNX file {str(path)!r}: {exc}") from None


def _attr(a: Any) -> Any:
    from perfmodel.zoo import _onnx_light as light

    try:
        return light.attr_value(a)
    except light.Unsupported:  # graphs, sparse tensors, ...: the onnx package's decoder
        import onnx

        return onnx.helper.get_attribute_value(a)


def _array(t: Any) -> Any:
    from perfmodel.zoo import _onnx_light as light

    try:
        return light.tensor_array(t)
    except light.Unsupported:
        from onnx import numpy_helper

        return numpy_helper.to_array(t)


#: initializers up to this many elements keep their values for shape inference (shape / pads / axes operands)
_SMALL_CONSTANT = 64


def _without_weights(model: Any) -> Any:
    """A copy of ``model`` whose large initializers are graph inputs of the same type and shape: shape inference
    needs their shapes only, and serialising the weights for it took most of the read (densenet121: 0.37 s)."""
    import onnx

    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g, lg = model.graph, light.graph
    lg.name = g.name
    lg.node.extend(g.node)
    lg.input.extend(g.input)
    lg.output.extend(g.output)
    lg.value_info.extend(g.value_info)
    declared = {i.name for i in g.input}
    for init in g.initializer:
        if math.prod(init.dims) <= _SMALL_CONSTANT:
            lg.initializer.append(init)
        elif init.name not in declared:
            lg.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return light


def _onnx_pads(attrs: Mapping[str, Any], in_shape: HWC, k: tuple[int, ...], s: tuple[int, ...]
               ) -> tuple[int, int, int, int]:
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        top, bottom = _same_padding(in_shape[0], k[0], s[0])
        left, right = _same_padding(in_shape[1], k[1], s[1])
        if auto == "SAME_LOWER":
            top, bottom, left, right = bottom, top, right, left
        return (top, left, bottom, right)
    p = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
    return (p[0], p[1], p[2], p[3]) if len(p) == 4 else (0, 0, 0, 0)
