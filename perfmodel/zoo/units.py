"""One-kernel models ("units") for kernel profiling: sampled configurations, built as Keras and exported.

A :class:`Unit` is a small graph around one main operator: a convolution (with bias, an activation, optionally a
fused residual add or an explicit zero pad before it), a depthwise convolution, a dense layer, a pooling layer, an
add, a concat, a standalone activation / pad or a softmax. :func:`build_keras` makes it a Keras functional model
(NHWC, batch 1, random weights from the unit's seed); :func:`export_unit` writes its TFLite and ONNX files (NCHW
inputs, the zoo's ONNX opset) through the same converters as the zoo's exporter, cached by the unit's digest.
Each framework then runs the unit as it runs a network: :func:`perfmodel.zoo.kernels.detect_kernels` on the unit's
graph says which kernels that framework executes for it (one, or the main one plus small element-wise kernels,
e.g. TensorFlow's separate bias and ReLU6 after a depthwise convolution), so a unit's time is the sum of those
kernels plus the framework's per-call envelope.

:func:`sample_units` draws configurations in the spirit of nn-Meter's sampling: each from a random operator of
the zoo's networks of that type, with its sizes perturbed (H x W and channels scaled by 2^U(-1, 1), kernel
size / stride sometimes redrawn) and capped (MACs, weight bytes), so the ranges cover the zoo and beyond but no
network's exact layer is copied. :func:`units_near` draws around given units (adaptive sampling).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.errors import PerfmodelError
from perfmodel.paths import atomic_write_bytes

UNIT_VERSION = 1
EXPORT_VERSION = 2  #: 2: TFLite from the Keras model (frozen weights)
TYPES = ("conv", "dwconv", "fc", "maxpool", "avgpool", "global_avgpool", "add", "concat", "relu", "relu6", "pad",
         "softmax")
#: the mix of a fresh sample (weights; conv carries most of every network's time)
TYPE_WEIGHTS = {"conv": 40, "dwconv": 12, "fc": 8, "maxpool": 8, "avgpool": 4, "global_avgpool": 4, "add": 7,
                "concat": 8, "relu": 3, "relu6": 2, "pad": 2, "softmax": 2}
MAX_MACS = 600_000_000  #: a sampled unit's MAC cap (a 600 MMAC conv takes ~20-40 ms on one core here)
MAX_WEIGHT_BYTES = 64 << 20
MAX_ACT_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Unit:
    """One profiling unit: the main operator's configuration and its chain (see the module docstring)."""

    type: str
    h: int = 1
    w: int = 1
    c_in: int = 8
    c_out: int = 8
    k: int = 1
    s: int = 1
    same: bool = True  #: "same" padding (else "valid"); with ``pre_pad`` an explicit symmetric zero pad
    pre_pad: int = 0
    act: str | None = None  #: relu / relu6 / None after the main op (conv, dwconv, fc, add)
    fused_add: bool = False  #: conv + bias + add(second input) [+ act]
    n_inputs: int = 2  #: add / concat
    seed: int = 0

    @property
    def id(self) -> str:
        """A short digest of the configuration (the unit's name and its export cache key)."""
        text = json.dumps({**asdict(self), "v": UNIT_VERSION}, sort_keys=True)
        return f"{self.type}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Unit":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def out_hw(self) -> tuple[int, int]:
        if self.type in ("conv", "dwconv", "maxpool", "avgpool"):
            h, w = self.h + 2 * self.pre_pad, self.w + 2 * self.pre_pad
            if self.same and not self.pre_pad:
                return -(-h // self.s), -(-w // self.s)
            return (h - self.k) // self.s + 1, (w - self.k) // self.s + 1
        if self.type == "pad":
            return self.h + 2 * self.pre_pad, self.w + 2 * self.pre_pad
        return self.h, self.w

    def macs(self) -> int:
        oh, ow = self.out_hw()
        if self.type == "conv":
            return oh * ow * self.k * self.k * self.c_in * self.c_out
        if self.type == "dwconv":
            return oh * ow * self.k * self.k * self.c_in
        if self.type == "fc":
            return self.c_in * self.c_out
        return 0

    def weight_bytes(self) -> int:
        if self.type == "conv":
            return 4 * (self.k * self.k * self.c_in * self.c_out + self.c_out)
        if self.type == "dwconv":
            return 4 * (self.k * self.k * self.c_in + self.c_in)
        if self.type == "fc":
            return 4 * (self.c_in * self.c_out + self.c_out)
        return 0

    def check(self) -> None:
        if self.type not in TYPES:
            raise PerfmodelError(f"unit type {self.type!r} is not one of {', '.join(TYPES)}")
        oh, ow = self.out_hw()
        if min(oh, ow) < 1:
            raise PerfmodelError(f"unit {self}: empty output")


# --------------------------------------------------------------------------------------------- building


def build_keras(unit: Unit) -> Any:
    """The unit as a Keras functional model with random weights (seeded)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from perfmodel.zoo.networks import _act  # the zoo's activation layers, named as in its networks

    unit.check()
    keras.utils.set_random_seed(unit.seed)
    L = keras.layers
    u = unit
    name = u.id.replace("-", "_")
    if u.type in ("fc", "softmax"):
        inp = [keras.Input((u.c_in,), batch_size=1, name="input")]
    elif u.type in ("add", "concat"):
        chans = _concat_channels(u) if u.type == "concat" else [u.c_in] * u.n_inputs
        inp = [keras.Input((u.h, u.w, c), batch_size=1, name="input" if i == 0 else f"input_{i}")
               for i, c in enumerate(chans)]
    else:
        inp = [keras.Input((u.h, u.w, u.c_in), batch_size=1, name="input")]
    x = inp[0]
    if u.type in ("conv", "dwconv"):
        padding = "same" if u.same and not u.pre_pad else "valid"
        if u.pre_pad:
            x = L.ZeroPadding2D(u.pre_pad, name=f"{name}_pad")(x)
        if u.type == "conv":
            x = L.Conv2D(u.c_out, u.k, strides=u.s, padding=padding, use_bias=True, name=name)(x)
        else:
            x = L.DepthwiseConv2D(u.k, strides=u.s, padding=padding, use_bias=True, name=name)(x)
        if u.fused_add:
            oh, ow = u.out_hw()
            other = keras.Input((oh, ow, x.shape[-1]), batch_size=1, name="input_1")
            inp.append(other)
            x = L.Add(name=f"{name}_add")([x, other])
        x = _act(x, u.act, name)
    elif u.type == "fc":
        x = L.Dense(u.c_out, use_bias=True, name=name)(x)
        x = _act(x, u.act, name)
    elif u.type in ("maxpool", "avgpool"):
        cls = L.MaxPooling2D if u.type == "maxpool" else L.AveragePooling2D
        x = cls(u.k, u.s, padding="same" if u.same else "valid", name=name)(x)
    elif u.type == "global_avgpool":
        x = L.GlobalAveragePooling2D(name=name)(x)
    elif u.type == "add":
        x = L.Add(name=name)(inp)
        x = _act(x, u.act, name)
    elif u.type == "concat":
        x = L.Concatenate(axis=-1, name=name)(inp)
    elif u.type in ("relu", "relu6"):
        x = _act(x, u.type, name)
    elif u.type == "pad":
        x = L.ZeroPadding2D(u.pre_pad, name=name)(x)
    elif u.type == "softmax":
        x = L.Softmax(name=name)(x)
    model = keras.Model(inp if len(inp) > 1 else inp[0], x, name=name)
    return model


def _concat_channels(u: Unit) -> list[int]:
    """Channel counts of a concat unit's inputs: ``c_in`` split over ``n_inputs`` (multiples of 8 where it can)."""
    n = max(2, u.n_inputs)
    base = max(1, u.c_in // n)
    chans = [base] * (n - 1)
    chans.append(max(1, u.c_in - base * (n - 1)))
    return chans


def input_shapes(unit: Unit, layout: str) -> list[tuple[int, ...]]:
    """The unit's input tensor shapes (batch 1) in ``layout`` NHWC (Keras / TFLite) or NCHW (ONNX)."""
    model_free = _input_hwc(unit)
    out = []
    for hwc in model_free:
        if len(hwc) == 1:
            out.append((1, hwc[0]))
        elif layout == "NCHW":
            out.append((1, hwc[2], hwc[0], hwc[1]))
        else:
            out.append((1, *hwc))
    return out


def _input_hwc(u: Unit) -> list[tuple[int, ...]]:
    if u.type in ("fc", "softmax"):
        return [(u.c_in,)]
    if u.type == "concat":
        return [(u.h, u.w, c) for c in _concat_channels(u)]
    if u.type == "add":
        return [(u.h, u.w, u.c_in)] * u.n_inputs
    shapes = [(u.h, u.w, u.c_in)]
    if u.fused_add:
        oh, ow = u.out_hw()
        shapes.append((oh, ow, u.c_out if u.type == "conv" else u.c_in))
    return shapes


def export_unit(unit: Unit, fmt: str, folder: str | os.PathLike | None = None) -> Path:
    """The unit's ``tflite`` or ``onnx`` file (built once, cached under ``folder``, default the perfmodel cache)."""
    from perfmodel.zoo.export import ONNX_OPSET, library_versions

    if folder is None:
        from perfmodel.paths import cache_dir

        folder = cache_dir() / "units"
    key = hashlib.sha256(json.dumps([unit.id, library_versions(), EXPORT_VERSION], sort_keys=True).encode()
                         ).hexdigest()[:10]
    out = Path(folder) / f"{unit.id}-{key}.{fmt}"
    if out.is_file() and out.stat().st_size > 0:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    model = build_keras(unit)
    import tensorflow as tf

    specs = [tf.TensorSpec(t.shape, tf.float32, name=t.name.split(":")[0]) for t in model.inputs]
    if fmt == "tflite":
        # from the Keras model: its variables are frozen into constants, as the zoo's SavedModel path does (a
        # concrete function keeps them as resource variables: READ_VARIABLE + TRANSPOSE of the weights on every
        # call and a built-in CONV_2D that XNNPACK does not take)
        atomic_write_bytes(out, tf.lite.TFLiteConverter.from_keras_model(model).convert())
    elif fmt == "onnx":
        import tf2onnx

        nchw = [s.name for s in specs if len(s.shape) == 4]
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=specs, opset=ONNX_OPSET, inputs_as_nchw=nchw)
        atomic_write_bytes(out, proto.SerializeToString())
    else:
        raise PerfmodelError(f"unit format {fmt!r}: tflite or onnx")
    return out


# --------------------------------------------------------------------------------------------- sampling


def zoo_prior(networks: Iterable[str] | None = None) -> dict[str, list[dict[str, int]]]:
    """Operator configurations of the zoo's networks by unit type (the sampling prior)."""
    from perfmodel.zoo.kernels import read_graph
    from perfmodel.zoo.networks import NETWORKS

    prior: dict[str, list[dict[str, int]]] = {t: [] for t in TYPES}
    for name in networks or NETWORKS:
        g = read_graph(name)
        for op in g.ops.values():
            if op.type not in prior or not op.in_shapes:
                continue
            h, w, c = op.in_shapes[0]
            k = op.kernel[0] if op.kernel else 1
            s = op.stride[0] if op.stride else 1
            prior[op.type].append({"h": h, "w": w, "c_in": c, "c_out": op.out_shape[2], "k": k, "s": s,
                                   "n": len(op.inputs), "pad": op.padding[0] if op.padding else 0})
    return prior


def _scale(rng: np.random.Generator, v: int, lo: int, hi: int, mult8: bool = True) -> int:
    x = v * 2.0 ** rng.uniform(-1, 1)
    if mult8 and x >= 8 and rng.random() < 0.8:
        x = 8 * round(x / 8)
    return int(min(max(round(x), lo), hi))


def sample_unit(rng: np.random.Generator, type_: str, prior: dict[str, list[dict[str, int]]]) -> Unit:
    """One sampled unit of ``type_`` (see the module docstring)."""
    base = prior.get(type_) or prior["conv"]
    p = base[int(rng.integers(len(base)))]
    seed = int(rng.integers(1 << 30))
    hw = _scale(rng, p["h"], 3, 230, mult8=False)
    cin = _scale(rng, p["c_in"], 3, 2048)
    act = rng.choice(["relu", "relu6", None], p=[0.6, 0.2, 0.2])
    if type_ in ("conv", "dwconv"):
        k = int(p["k"]) if rng.random() < 0.8 else int(rng.choice([1, 3, 5, 7]))
        s = int(p["s"]) if rng.random() < 0.85 else int(rng.choice([1, 2]))
        k = min(k, hw)
        cout = _scale(rng, p["c_out"], 8, 2048) if type_ == "conv" else cin
        pre_pad = (k - 1) // 2 if (s > 1 and k > 1 and rng.random() < 0.5) else 0
        fused = type_ == "conv" and rng.random() < 0.12
        unit = Unit(type_, hw, hw, cin, cout, k, s, same=True, pre_pad=pre_pad,
                    act=str(act) if act else None, fused_add=fused, seed=seed)
    elif type_ == "fc":
        cin = _scale(rng, max(p["c_in"], 256), 64, 16384)
        cout = _scale(rng, p["c_out"], 10, 4096)
        unit = Unit("fc", 1, 1, cin, cout, act="relu" if rng.random() < 0.4 else None, seed=seed)
    elif type_ in ("maxpool", "avgpool"):
        k = int(p["k"]) if rng.random() < 0.8 else int(rng.choice([2, 3, 5]))
        s = int(p["s"]) if rng.random() < 0.8 else int(rng.choice([1, 2]))
        k = min(k, hw)
        unit = Unit(type_, hw, hw, cin, cin, k, s, same=bool(rng.random() < 0.5), seed=seed)
    elif type_ == "global_avgpool":
        unit = Unit(type_, min(hw, 28), min(hw, 28), cin, cin, seed=seed)
    elif type_ == "add":
        unit = Unit("add", hw, hw, cin, cin, act="relu" if rng.random() < 0.5 else None, seed=seed)
    elif type_ == "concat":
        n = int(rng.choice([2, 3, 4]))
        unit = Unit("concat", hw, hw, max(cin, 8 * n), n_inputs=n, seed=seed)
    elif type_ in ("relu", "relu6"):
        unit = Unit(type_, hw, hw, cin, cin, seed=seed)
    elif type_ == "pad":
        unit = Unit("pad", hw, hw, cin, cin, pre_pad=int(rng.choice([1, 2, 3])), seed=seed)
    elif type_ == "softmax":
        unit = Unit("softmax", 1, 1, int(rng.choice([10, 100, 1000, 1008, 4096])), seed=seed)
    else:
        raise PerfmodelError(f"cannot sample unit type {type_!r}")
    return _capped(unit)


def _capped(u: Unit) -> Unit:
    """Shrink H x W (then channels) until the unit is within the MAC, weight and activation caps."""
    for _ in range(40):
        oh, ow = u.out_hw()
        acts = max(u.h * u.w * u.c_in * max(u.n_inputs if u.type == "add" else 1, 1), oh * ow * u.c_out)
        if u.macs() <= MAX_MACS and u.weight_bytes() <= MAX_WEIGHT_BYTES and acts <= MAX_ACT_ELEMENTS:
            return u
        if u.type == "fc" or (u.weight_bytes() > MAX_WEIGHT_BYTES):
            u = replace(u, c_in=max(8, int(u.c_in * 0.8)), c_out=max(8, int(u.c_out * 0.9)))
        elif u.h > max(u.k, 4):
            hw = max(u.k, 4, int(u.h * 0.85))
            u = replace(u, h=hw, w=hw)
        else:
            u = replace(u, c_in=max(8, int(u.c_in * 0.8)), c_out=max(8, int(u.c_out * 0.8)))
    return u


def sample_units(n: int, seed: int = 0, prior: dict[str, list[dict[str, int]]] | None = None,
                 weights: dict[str, float] | None = None) -> list[Unit]:
    """``n`` sampled units (types in proportion to ``weights``, default :data:`TYPE_WEIGHTS`)."""
    rng = np.random.default_rng(seed)
    prior = prior if prior is not None else zoo_prior()
    weights = weights or TYPE_WEIGHTS
    types = sorted(weights)
    p = np.array([weights[t] for t in types], float)
    p /= p.sum()
    out: list[Unit] = []
    seen: set[str] = set()
    while len(out) < n:
        u = sample_unit(rng, str(rng.choice(types, p=p)), prior)
        if u.id not in seen:
            seen.add(u.id)
            out.append(u)
    return out


def units_near(units: Sequence[Unit], n: int, seed: int = 0) -> list[Unit]:
    """``n`` new units around ``units`` (adaptive sampling: each a perturbed copy of one of them)."""
    rng = np.random.default_rng(seed)
    out: list[Unit] = []
    for i in range(n):
        u = units[i % len(units)]
        hw = _scale(rng, u.h, 3, 230, mult8=False) if u.h > 1 else 1
        cin = _scale(rng, u.c_in, 3, 16384 if u.type == "fc" else 2048)
        cout = cin if u.type in ("dwconv", "maxpool", "avgpool", "global_avgpool", "add", "relu", "relu6", "pad") \
            else _scale(rng, u.c_out, 8, 4096)
        k = min(u.k, hw) if u.h > 1 else u.k
        out.append(_capped(replace(u, h=hw, w=hw, c_in=cin, c_out=cout, k=k, seed=int(rng.integers(1 << 30)))))
    return out


def unit_graph(unit: Unit) -> Any:
    """The unit's unfused :class:`~perfmodel.zoo.kernels.OpGraph` (from its Keras model)."""
    from perfmodel.zoo.kernels import read_keras

    return read_keras(build_keras(unit), source=f"unit:{unit.id}")


__all__ = ["MAX_MACS", "TYPES", "Unit", "build_keras", "export_unit", "input_shapes", "sample_unit", "sample_units",
           "unit_graph", "units_near", "zoo_prior"]
