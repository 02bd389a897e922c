"""The network zoo: the study's CNNs in Keras, their graph facts, and cached exports.

>>> from perfmodel import zoo
>>> zoo.network_names()[:2]
['googlenet', 'mobilenet_v1']
>>> path = zoo.export("squeezenet1_1", "onnx")        # doctest: +SKIP

* :data:`NETWORKS` - name -> :class:`NetworkSpec` (builder, default input size, reference accuracy).
* :func:`build_keras` - the Keras model with deterministic, calibrated random weights.
* :func:`facts` - parameters, MACs, conv / FC layer counts, input size (from the graph) and reference
  top-1 / top-5 ImageNet accuracy with its source.
* :func:`export` - cached TF SavedModel / TFLite / ONNX (NCHW input ``input``) files.

TensorFlow is imported only when a model is built.
"""

from __future__ import annotations

from perfmodel.zoo.build import build_keras, calibration_input, get_network
from perfmodel.zoo.export import FORMATS, export
from perfmodel.zoo.facts import facts
from perfmodel.zoo.networks import INPUT_NAME, NETWORKS, OUTPUT_NAME, NetworkSpec

#: The three networks of the study's Table I.
PAPER_NETWORKS: tuple[str, ...] = ("squeezenet1_1", "googlenet", "resnet50")


def network_names() -> list[str]:
    """Valid network names, sorted."""
    return sorted(NETWORKS)


__all__ = [
    "FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "NETWORKS",
    "PAPER_NETWORKS",
    "NetworkSpec",
    "build_keras",
    "calibration_input",
    "export",
    "facts",
    "get_network",
    "network_names",
]
