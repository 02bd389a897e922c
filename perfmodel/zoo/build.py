"""Deterministic random weights, rescaled layer by layer so that activations stay O(1).

Keras' default initialisers are meant for training with batch norm; in a deep *inference* graph with
BN folded away they shrink the signal by a constant factor per layer, so a random ResNet-50 ends with
outputs around 1e-19 (useless for cross-framework checks, and a risk of denormal slow paths). Here the
weights are drawn from a fixed seed and then calibrated in a single forward pass in data-flow order,
in the spirit of LSUV / data-dependent initialisation (Mishkin & Matas 2016; Kraehenbuehl et al. 2016):

* every convolution (regular or depthwise) gets one scale and a per-output-channel bias so that its
  pre-activation output has per-channel mean 0 and overall standard deviation 1 over a fixed batch of
  synthetic calibration images (:func:`calibration_input`), so roughly half of each ReLU is active;
* the classifier (last conv or dense, named ``classifier``) is scaled as a whole, never centred per
  class (centring would make every class score equal), and finally rescaled so that the logits (the
  softmax input) have a standard deviation of :data:`LOGIT_STD` across the 1000 classes (mean over
  the calibration images). The path
  classifier -> ReLU -> global average pool -> logits is positively homogeneous, so that last rescale is
  exact. With that spread the top-5 classes are separated by gaps much larger than the float error
  between frameworks, so the same top-5 is a meaningful agreement test.

The result depends only on the network, the seed and the input size (up to float round-off of the
calibration forward pass, which is deterministic on one machine/thread count). :func:`perfmodel.zoo.export`
saves the calibrated weights once per cache key and builds every format from that one file.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from perfmodel.zoo.networks import CLASSIFIER_NAME, NETWORKS, NetworkSpec

#: Target standard deviation of the logits across classes on the calibration image.
LOGIT_STD = 3.0
#: Number of synthetic images in the calibration batch.
CALIBRATION_IMAGES = 4


def quiet_tensorflow() -> None:
    """Lower TensorFlow's C++ log level (unless the user set it) before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def get_network(name: str) -> NetworkSpec:
    """The :class:`NetworkSpec` called ``name``; :class:`~perfmodel.errors.UnknownNameError` otherwise."""
    from perfmodel.errors import UnknownNameError

    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise UnknownNameError("network", str(name), NETWORKS) from None


def resolve_input_size(spec: NetworkSpec, input_size: int | None) -> int:
    """``input_size`` or the network's default, validated."""
    from perfmodel.errors import PerfmodelError

    if input_size is None:
        return spec.input_size
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)):
        raise PerfmodelError(f"input size must be an integer, got {input_size!r}")
    size = int(input_size)
    if size < spec.min_input_size or size > 2048:
        raise PerfmodelError(
            f"input size {size} is out of range for {spec.name} ({spec.min_input_size}..2048)"
        )
    return size


def build_graph(name: str, input_size: int | None = None) -> Any:
    """The Keras graph of ``name`` with Keras' default initial weights (for facts; not deterministic)."""
    spec = get_network(name)
    size = resolve_input_size(spec, input_size)
    quiet_tensorflow()
    return spec.build(size)


def calibration_input(input_size: int, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """Fixed calibration batch ``(count, H, W, 3)``: ``perfmodel.images.synthetic_image(i, seed=seed)``
    for ``i < count``, resized to ``input_size`` (bilinear) and scaled to [-1, 1]."""
    import cv2

    from perfmodel.images import synthetic_image

    out = np.empty((count, input_size, input_size, 3), np.float32)
    for i in range(count):
        img = cv2.resize(synthetic_image(i, seed=seed), (input_size, input_size),
                         interpolation=cv2.INTER_LINEAR)
        out[i] = img.astype(np.float32) / 127.5 - 1.0
    return out


def _layer_rng(seed: int, layer_name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(layer_name.encode("utf-8"))])


def init_weights(model: Any, seed: int = 0) -> None:
    """Draw every weight from a generator seeded by ``(seed, layer name)``: He-normal kernels, zero biases."""
    import keras

    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        rng = _layer_rng(seed, layer.name)
        new = []
        for w in weights:
            if w.ndim >= 2:
                if isinstance(layer, keras.layers.DepthwiseConv2D):
                    fan_in = int(np.prod(w.shape[:2]))
                else:
                    fan_in = int(np.prod(w.shape[:-1]))
                new.append((rng.standard_normal(w.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
            else:
                new.append(np.zeros(w.shape, np.float32))
        layer.set_weights(new)


def _rescale(layer: Any, scale: np.ndarray, shift: np.ndarray) -> None:
    """Make ``layer`` compute ``(y - shift) * scale`` instead of ``y`` (per output channel)."""
    import keras

    kernel, bias = layer.get_weights()
    scale = np.broadcast_to(np.asarray(scale, np.float64), bias.shape)
    shift = np.broadcast_to(np.asarray(shift, np.float64), bias.shape)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        k = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        k = kernel * scale
    b = (bias - shift) * scale
    layer.set_weights([k.astype(np.float32), b.astype(np.float32)])


def calibrate(model: Any, x: np.ndarray, logit_std: float = LOGIT_STD) -> dict[str, float]:
    """Rescale ``model``'s conv / dense layers in place (see the module docstring); return a summary.

    ``x`` is a calibration batch ``(N, H, W, 3)`` (:func:`calibration_input`). One forward pass over the
    functional graph in topological order: each weighted layer's output is measured over the batch, the
    layer is rescaled (one scale per layer, one centring bias per channel), and the rescaled output is what
    the downstream layers see. A single scale per layer (LSUV) rather than per channel keeps held-out
    images well-behaved: per-channel scales fitted on a few images amplify channels that happen to be
    quiet on them, and that compounds with depth.
    """
    import keras
    import tensorflow as tf

    weighted = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    logits: list[np.ndarray] = []
    calibrated: list[str] = []

    def measure(layer: Any, y: np.ndarray) -> np.ndarray:
        y = y.astype(np.float64)
        if layer.name == CLASSIFIER_NAME or y.ndim != 4 or y.shape[1] * y.shape[2] < 4:
            std = float(y.std())
            scale = 1.0 / std if std > 0 else 1.0
            shift = 0.0 if layer.name == CLASSIFIER_NAME else float(y.mean())
            _rescale(layer, scale, shift)
            out = (y - shift) * scale
        else:
            mean = y.mean(axis=(0, 1, 2))
            std = float((y - mean).std())
            scale = 1.0 / std if std > 0 else 1.0
            _rescale(layer, scale, mean)
            out = (y - mean) * scale
        calibrated.append(layer.name)
        return out.astype(np.float32)

    def operation_fn(op: Any):
        if isinstance(op, weighted):
            def run(*args, **kwargs):
                return tf.constant(measure(op, np.asarray(op(*args, **kwargs))))
            return run
        if isinstance(op, keras.layers.Softmax):
            def run_softmax(*args, **kwargs):
                logits.append(np.asarray(args[0], np.float64))
                return op(*args, **kwargs)
            return run_softmax
        return op

    xt = tf.constant(x, tf.float32)
    if hasattr(model, "_run_through_graph"):
        model._run_through_graph(xt, operation_fn=operation_fn)
    else:  # pragma: no cover - older/newer Keras without the graph walker: one sub-model per layer
        for layer in model.layers:
            if isinstance(layer, weighted):
                sub = keras.Model(model.inputs, layer.output)
                measure(layer, np.asarray(sub(xt)))
        logits.append(np.asarray(keras.Model(model.inputs, model.get_layer("prob").input)(xt), np.float64))
    if not logits:
        raise RuntimeError(f"{model.name}: no Softmax layer found during calibration")

    classifier = model.get_layer(CLASSIFIER_NAME)
    spread = float(np.mean(logits[-1].reshape(len(logits[-1]), -1).std(axis=1)))
    factor = logit_std / spread if spread > 0 else 1.0
    _rescale(classifier, factor, 0.0)

    prob = np.asarray(model(xt), np.float64)
    final_logits = np.log(np.maximum(prob, 1e-300))
    top = -np.diff(np.sort(final_logits, axis=1)[:, ::-1][:, :5], axis=1)
    return {
        "images": int(len(x)),
        "calibrated_layers": len(calibrated),
        "logit_std": float(np.mean(final_logits.std(axis=1))),
        "top1_score": float(prob.max(axis=1).mean()),
        "min_top5_logit_gap": float(top.min()),
    }


def build_keras(name: str, seed: int = 0, input_size: int | None = None) -> Any:
    """The Keras model ``name`` with deterministic weights from ``seed``, calibrated to O(1) activations.

    Input ``(1, H, W, 3)`` float32 NHWC named ``input`` (H = W = ``input_size`` or the network's
    default), output softmax scores ``(1, 1000)``. The calibration summary is attached to the model as
    ``model.perfmodel_calibration``.
    """
    from perfmodel.errors import PerfmodelError

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PerfmodelError(f"seed must be a non-negative integer, got {seed!r}")
    model = build_graph(name, input_size)
    size = int(model.inputs[0].shape[1])
    init_weights(model, int(seed))
    model.perfmodel_calibration = calibrate(model, calibration_input(size))
    return model


def layer_output_stats(model: Any, x: np.ndarray) -> dict[str, tuple[float, float]]:
    """``{layer name: (std, max |value|)}`` of every layer output for input ``x`` (for checks)."""
    import keras
    import tensorflow as tf

    stats: dict[str, tuple[float, float]] = {}

    def operation_fn(op: Any):
        def run(*args, **kwargs):
            y = op(*args, **kwargs)
            a = np.asarray(y, np.float64)
            stats[op.name] = (float(a.std()), float(np.abs(a).max()))
            return y
        return run

    xt = tf.constant(x, tf.float32)
    if hasattr(model, "_run_through_graph"):
        model._run_through_graph(xt, operation_fn=operation_fn)
    else:  # pragma: no cover
        for layer in model.layers[1:]:
            a = np.asarray(keras.Model(model.inputs, layer.output)(xt), np.float64)
            stats[layer.name] = (float(a.std()), float(np.abs(a).max()))
    return stats
