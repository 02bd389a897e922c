"""Reading an ONNX file without importing the ``onnx`` package (its native extension takes ~0.5 s to load, most of
a fresh ``perfmodel predict --graph``): the generated protobuf module is loaded on its own, attributes and small
constants are decoded here, and tensor shapes are inferred here for the ops :func:`infer_shapes` knows. Where it
does not know an op (or the file needs more: a constant sub-graph, a dynamic shape), the caller falls back to the
``onnx`` package's own shape inference; tests/test_kernels.py checks both give the same kernels on every zoo
network.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_PB2: list[Any] = []


def onnx_pb2() -> Any | None:
    """The ``onnx_ml_pb2`` module (the ModelProto classes), without running ``onnx/__init__``; None where the
    ``onnx`` package is not installed."""
    if _PB2:
        return _PB2[0]
    mod = sys.modules.get("onnx.onnx_ml_pb2")
    if mod is None:
        spec = importlib.util.find_spec("onnx")
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent / "onnx_ml_pb2.py"
        if not path.is_file():
            return None
        # the same descriptors as onnx's own copy (protobuf shares the message classes): safe beside it
        s = importlib.util.spec_from_file_location("perfmodel_onnx_ml_pb2", path)
        if s is None or s.loader is None:
            return None
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
    _PB2.append(mod)
    return mod


# AttributeProto.AttributeType and TensorProto.DataType numbers (onnx.proto)
_FLOAT, _INT, _STRING, _TENSOR, _FLOATS, _INTS, _STRINGS = 1, 2, 3, 4, 6, 7, 8
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}


def attr_value(a: Any) -> Any:
    """An attribute's value as ``onnx.helper.get_attribute_value`` gives it (the kinds the reader uses)."""
    t = a.type
    if t == _FLOAT:
        return a.f
    if t == _INT:
        return a.i
    if t == _STRING:
        return a.s
    if t == _TENSOR:
        return a.t
    if t == _FLOATS:
        return list(a.floats)
    if t == _INTS:
        return list(a.ints)
    if t == _STRINGS:
        return list(a.strings)
    raise Unsupported(f"attribute {a.name!r} of type {t}")


def tensor_array(t: Any) -> Any:
    """A TensorProto's values as a numpy array (``onnx.numpy_helper.to_array`` for the plain types)."""
    import numpy as np

    dtype = _DTYPES.get(t.data_type)
    if dtype is None or t.data_location == 1:  # other types, external data
        raise Unsupported(f"tensor {t.name!r} of data type {t.data_type}")
    shape = tuple(t.dims)
    if t.raw_data:
        return np.frombuffer(t.raw_data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    if t.data_type == 1:
        vals = t.float_data
    elif t.data_type == 7:
        vals = t.int64_data
    elif t.data_type == 11:
        vals = t.double_data
    elif t.data_type in (2, 3, 5, 6):
        vals = t.int32_data
    else:
        raise Unsupported(f"tensor {t.name!r} of data type {t.data_type} without raw data")
    return np.array(list(vals), dtype=dtype).reshape(shape)


class Unsupported(Exception):
    """The light reader cannot do this: use the ``onnx`` package."""


_SAME = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "Softmax", "BatchNormalization", "Identity", "Dropout",
         "Elu", "HardSigmoid", "HardSwish", "Sqrt", "Exp", "Neg"}
_BROADCAST = {"Add", "Mul", "Sub", "Div", "Sum", "Max", "Min"}


def _broadcast(shapes: list[list[int]]) -> list[int]:
    n = max(len(s) for s in shapes)
    out = []
    for i in range(n):
        dims = {s[len(s) - n + i] for s in shapes if len(s) - n + i >= 0} - {1}
        if len(dims) > 1:
            raise Unsupported(f"shapes {shapes} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return out


def _window(shape: list[int], attrs: Mapping[str, Any], k: list[int], out_c: int) -> list[int]:
    """NCHW output of a Conv / pooling window: explicit pads or auto_pad, strides, dilations, ceil_mode."""
    if len(shape) != 4 or len(k) != 2:
        raise Unsupported(f"a {len(k)}-D window on a {len(shape)}-D tensor")
    s = list(attrs.get("strides", [1, 1]))
    d = list(attrs.get("dilations", [1, 1]))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    out = [shape[0], out_c]
    for i in range(2):
        size, ki, si, di = shape[2 + i], k[i], s[i], d[i]
        ek = di * (ki - 1) + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-size // si))
        elif auto == "VALID":
            out.append((size - ek) // si + 1)
        else:
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            total = size + pads[i] + pads[i + 2] - ek
            out.append((-(-total // si) if attrs.get("ceil_mode", 0) else total // si) + 1)
    return out


def infer_shapes(graph: Any, dims: dict[str, list[int]], consts: Mapping[str, Any]) -> None:
    """Add to ``dims`` (tensor name -> shape) the outputs of every node of ``graph``, in node order, from the
    graph inputs' shapes and the initializers (``consts``: name -> TensorProto). Raises :class:`Unsupported`
    for what it does not know."""
    const_dims = {name: list(t.dims) for name, t in consts.items()}

    def shape_of(name: str) -> list[int]:
        if name in dims:
            return dims[name]
        if name in const_dims:
            return const_dims[name]
        raise Unsupported(f"no shape for {name!r}")

    def const_ints(name: str) -> list[int]:
        if name not in consts:
            raise Unsupported(f"{name!r} is not a constant")
        return [int(v) for v in tensor_array(consts[name]).reshape(-1)]

    for node in graph.node:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise Unsupported(f"op domain {node.domain!r}")
        attrs = {a.name: attr_value(a) for a in node.attribute}
        ins = [i for i in node.input if i]
        if op == "Constant" or not any(i in dims for i in ins):
            raise Unsupported(f"{op} outside the activation path")
        x = shape_of(ins[0])
        if op in _SAME:
            out = list(x)
        elif op in _BROADCAST:
            out = _broadcast([shape_of(i) for i in ins])
        elif op == "Conv":
            w = shape_of(ins[1])
            out = _window(x, attrs, list(attrs.get("kernel_shape", w[2:])), w[0])
        elif op in ("MaxPool", "AveragePool"):
            out = _window(x, attrs, list(attrs["kernel_shape"]), x[1])
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            out = [*x[:2], *([1] * (len(x) - 2))]
        elif op == "Concat":
            if "axis" not in attrs:  # opset < 4 defaulted it
                raise Unsupported("Concat without axis")
            axis = int(attrs["axis"]) % len(x)
            shapes = [shape_of(i) for i in ins]
            out = list(x)
            out[axis] = sum(s[axis] for s in shapes)
        elif op == "Pad":
            if "paddings" in attrs or (len(node.input) > 3 and node.input[3]):
                raise Unsupported("Pad of opset 1, or with axes")
            pads = attrs.get("pads") or const_ints(node.input[1])
            n = len(x)
            if len(pads) != 2 * n:
                raise Unsupported(f"Pad of {len(pads)} values on a {n}-D tensor")
            out = [x[i] + int(pads[i]) + int(pads[i + n]) for i in range(n)]
        elif op in ("Squeeze", "Unsqueeze"):
            axes = attrs.get("axes")
            if axes is None and len(ins) > 1:
                axes = const_ints(ins[1])
            if op == "Squeeze":
                drop = {int(a) % len(x) for a in axes} if axes is not None else {i for i, v in enumerate(x) if v == 1}
                out = [v for i, v in enumerate(x) if i not in drop]
            else:
                if axes is None:
                    raise Unsupported("Unsqueeze without axes")
                n = len(x) + len(axes)
                put = {int(a) % n for a in axes}
                it = iter(x)
                out = [1 if i in put else next(it) for i in range(n)]
        elif op == "Flatten":
            axis = int(attrs.get("axis", 1))
            axis = axis + len(x) if axis < 0 else axis
            out = [math.prod(x[:axis]), math.prod(x[axis:])]
        elif op == "Reshape":
            if len(ins) < 2:  # opset 1: the shape attribute
                raise Unsupported("Reshape of opset 1")
            target = const_ints(ins[1])
            if any(v == 0 and i >= len(x) for i, v in enumerate(target)):
                raise Unsupported(f"Reshape of {x} to {target}")
            out = [x[i] if v == 0 and not attrs.get("allowzero", 0) else v for i, v in enumerate(target)]
            if out.count(-1) == 1:
                known = math.prod(v for v in out if v != -1)
                out[out.index(-1)] = math.prod(x) // known if known else 0
            if -1 in out or math.prod(out) != math.prod(x):
                raise Unsupported(f"Reshape of {x} to {target}")
        elif op == "Transpose":
            perm = attrs.get("perm") or list(range(len(x)))[::-1]
            out = [x[int(p)] for p in perm]
        elif op == "MatMul":
            b = shape_of(ins[1])
            if len(x) < 2 or len(b) != 2 or x[-1] != b[0]:
                raise Unsupported(f"MatMul {x} x {b}")
            out = [*x[:-1], b[1]]
        elif op == "Gemm":
            b = shape_of(ins[1])
            if len(x) != 2 or len(b) != 2:
                raise Unsupported("Gemm of other than 2-D operands")
            m, k = (x[1], x[0]) if attrs.get("transA", 0) else (x[0], x[1])
            kb, n = (b[1], b[0]) if attrs.get("transB", 0) else (b[0], b[1])
            if k != kb:
                raise Unsupported(f"Gemm {x} x {b}")
            out = [m, n]
        elif op == "ReduceMean":
            axes = attrs.get("axes")
            if axes is None and len(ins) > 1:
                axes = const_ints(ins[1])
            if not axes and attrs.get("noop_with_empty_axes", 0):
                axes = []
            elif not axes:
                axes = None
            red = {int(a) % len(x) for a in axes} if axes is not None else set(range(len(x)))
            keep = attrs.get("keepdims", 1)
            out = [1 if i in red else v for i, v in enumerate(x)] if keep else \
                [v for i, v in enumerate(x) if i not in red]
        else:
            raise Unsupported(f"op {op}")
        if len(node.output) != 1 and op not in ("Dropout", "BatchNormalization", "MaxPool"):
            raise Unsupported(f"{op} with {len(node.output)} outputs")
        if any(v <= 0 for v in out):
            raise Unsupported(f"{op}: non-positive dimension {out}")
        dims.setdefault(node.output[0], out)


__all__ = ["Unsupported", "attr_value", "infer_shapes", "onnx_pb2", "tensor_array"]
