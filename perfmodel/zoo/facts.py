"""Facts of a network computed from its Keras graph, plus reference ImageNet accuracy as metadata.

Counted by walking the layers of the graph (nothing typed in):

* ``params``: every weight of the graph (kernels and biases; batch norm is folded into conv biases, so
  there are no separate BN parameters);
* ``macs``: multiply-accumulates of one image, conv ``out_h*out_w*k_h*k_w*c_in/groups*c_out``,
  depthwise conv ``out_h*out_w*k_h*k_w*c_out``, dense ``in*out`` (pooling, ReLU, additions and softmax
  are not MACs);
* ``conv_layers`` (regular + depthwise convolutions), ``depthwise_layers``, ``fc_layers`` (dense);
* ``input_size`` (H = W) and ``input_shape`` (NHWC, batch 1).

Comparison with the study's Table I (what this graph gives, default input sizes):

=============  ===========  ==========  =====  ====  =========================================
network        params       GMACs       conv   FC    Table I
=============  ===========  ==========  =====  ====  =========================================
SqueezeNet1.1  1,235,496    0.388 (227) 26     0     ~1.2M, "~396k" MACs, 26 conv, 0 FC
GoogLeNet      6,998,552    1.58        57     1     ~7.0M, ~1.6G, 57 conv, 1 FC
ResNet-50      25,530,472   3.86        53     1     ~25.6M, ~3.9G, 53 conv, 1 FC
=============  ===========  ==========  =====  ====  =========================================

Table I prints SqueezeNet v1.1's MACs as "~396k": an obvious typo (a 1.2M-parameter network whose
convolutions all run over feature maps of 13x13 and up cannot take fewer MACs than it has weights). The
graph gives about 0.39 G at 227x227 (0.35 G at 224x224, the figure torchvision quotes), i.e. "~396M".

The ResNet-50 here is the original v1 graph (stride 2 in the first 1x1 convolution of a stage, as in the
Caffe release the study used: 3.86 GMACs); torchvision's v1.5 puts the stride in the 3x3 conv (4.09 G).
Its parameter count is 25.53M rather than 25.56M because batch norm is folded (one bias per channel
instead of a BN scale and shift).

The reference accuracies are not measured here (the weights are random): they are the published figures
for the trained models, with their source, for the selection stage's accuracy constraint.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from perfmodel.zoo.build import build_graph, get_network, resolve_input_size
from perfmodel.zoo.networks import ZOO_VERSION


def graph_facts(model: Any) -> dict[str, Any]:
    """Parameters, MACs and layer counts of a Keras functional ``model`` (one image)."""
    import keras

    macs = 0
    conv = depthwise = fc = 0
    per_layer: list[dict[str, Any]] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, oh, ow, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            m = oh * ow * kh * kw * c_out
            conv += 1
            depthwise += 1
            kind = "depthwise"
        elif isinstance(layer, keras.layers.Conv2D):
            _, oh, ow, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            m = oh * ow * kh * kw * (c_in // layer.groups) * c_out
            conv += 1
            kind = "conv"
        elif isinstance(layer, keras.layers.Dense):
            m = layer.input.shape[-1] * layer.units
            fc += 1
            kind = "fc"
        else:
            continue
        macs += int(m)
        per_layer.append({"name": layer.name, "kind": kind, "macs": int(m), "params": int(layer.count_params())})
    params = int(sum(math.prod(w.shape) for w in model.weights))
    size = int(model.inputs[0].shape[1])
    return {
        "params": params,
        "macs": int(macs),
        "conv_layers": conv,
        "depthwise_layers": depthwise,
        "fc_layers": fc,
        "input_size": size,
        "input_shape": [1, size, size, 3],
        "layers": per_layer,
    }


def _facts_cache_path(name: str, size: int):
    from importlib import metadata

    from perfmodel.zoo.export import models_dir

    try:
        keras_version = metadata.version("keras")
    except metadata.PackageNotFoundError:  # pragma: no cover
        keras_version = "missing"
    key = hashlib.sha256(json.dumps([name, size, ZOO_VERSION, keras_version]).encode()).hexdigest()[:16]
    return models_dir() / "facts" / f"{name}-{size}-{key}.json"


def facts(name: str, input_size: int | None = None, *, use_cache: bool = True,
          per_layer: bool = False) -> dict[str, Any]:
    """Facts of network ``name`` at ``input_size`` (default: the network's own).

    Keys: ``network``, ``title``, ``params``, ``macs``, ``gmacs``, ``conv_layers``, ``depthwise_layers``,
    ``fc_layers``, ``fc_params`` (weights of the FC layers: read once per image at batch 1), ``input_size``,
    ``input_shape``, ``top1``, ``top5`` (percent; NaN when the source
    gives none, with ``top5_reason``), ``accuracy_source``, ``accuracy_ref`` (short form), ``accuracy_note``; ``layers`` (per-layer MACs
    and params) when ``per_layer``. The graph counts are cached as JSON in the model cache, because
    building a graph needs TensorFlow (seconds to import).
    """
    spec = get_network(name)
    size = resolve_input_size(spec, input_size)
    counted: dict[str, Any] | None = None
    path = None
    if use_cache:
        try:
            path = _facts_cache_path(spec.name, size)
        except OSError:  # unusable cache folder: count without caching
            path = None
    if path is not None and path.exists():
        try:
            counted = json.loads(path.read_text("utf-8"))
            if not isinstance(counted, dict) or "macs" not in counted:
                counted = None
        except (OSError, ValueError):
            counted = None
    if counted is None:
        counted = graph_facts(build_graph(spec.name, size))
        if path is not None:
            from perfmodel.paths import atomic_write_text

            try:
                atomic_write_text(path, json.dumps(counted, indent=1) + "\n")
            except OSError:  # a read-only cache only costs speed
                pass
    out: dict[str, Any] = {"network": spec.name, "title": spec.title}
    out.update({k: v for k, v in counted.items() if k != "layers"})
    out["gmacs"] = counted["macs"] / 1e9
    # weights of the fully connected layers: at batch 1 each is read once per image (streamed)
    out["fc_params"] = int(sum(int(layer["params"]) for layer in counted.get("layers", []) if layer.get("kind") == "fc"))
    out["top1"] = float(spec.top1)
    out["top5"] = float(spec.top5)
    if math.isnan(spec.top5):
        out["top5_reason"] = "not reported by the accuracy source"
    if math.isnan(spec.top1):
        out["top1_reason"] = "not reported by the accuracy source"
    out["accuracy_source"] = spec.accuracy_source
    out["accuracy_ref"] = spec.accuracy_ref
    out["accuracy_note"] = spec.accuracy_note
    if per_layer:
        out["layers"] = counted["layers"]
    return out
