"""TensorFlow runner: a SavedModel's serving signature (a graph function), never Keras ``predict`` or eager.

Threads: ``tf.config.threading`` intra-op = ``threads``, inter-op = 1, set before TensorFlow creates its
runtime. TensorFlow fixes its thread pools once per process, so a second thread count in the same process
raises :class:`~perfmodel.runners.base.ThreadsError` (``perfmodel bench`` runs every cell in its own
process by default).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.errors import InputFileError
from perfmodel.runners.base import FrameworkUnavailableError, Runner, ThreadsError, first_line, library_version

SAVED_MODEL_PB = "saved_model.pb"


def _import_tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise FrameworkUnavailableError(f"the tensorflow framework needs TensorFlow ({exc})") from None
    return tf


def onednn_opts_enabled() -> bool | None:
    """Whether this process's TensorFlow runs its oneDNN custom operations (``TF_ENABLE_ONEDNN_OPTS``, whose
    default depends on the CPU's features), as TensorFlow reports it; None when it cannot tell."""
    _import_tf()
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - a build without the query
        return None
    try:
        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # pragma: no cover - defensive: a changed binding
        return None


def configure_threads(threads: int) -> None:
    """Set TensorFlow's intra-op pool to ``threads`` and inter-op to 1, or raise :class:`ThreadsError`."""
    tf = _import_tf()
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    if (intra, inter) == (threads, 1):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        raise ThreadsError(
            f"TensorFlow's thread pools already exist in this process (intra-op {intra or 'default'}, inter-op "
            f"{inter or 'default'}) and cannot be changed to {threads}: run each thread count in its own "
            "process (perfmodel bench --isolate, the default)") from None


class TensorFlowRunner(Runner):
    """TF SavedModel (``tf.saved_model.load``) called through its serving signature.

    Option ``signature`` (default ``serving_default``): the signature to call; it must have one input
    (NHWC float32) and one output (scores).
    """

    framework = "tensorflow"
    model_format = "savedmodel"
    layout = "NHWC"
    option_defaults = {"signature": "serving_default"}
    code_path_keys = ("onednn_opts",)  # oneDNN convolutions vs Eigen's: another algorithm (datasets/README.md)

    def _check_path(self, path: Path) -> None:
        super()._check_path(path)
        if not path.is_dir() or not (path / SAVED_MODEL_PB).is_file():
            raise InputFileError(f"tensorflow model {str(path)!r} is not a SavedModel folder (no {SAVED_MODEL_PB})")

    def _load(self, explicit_path: Path | None) -> int | None:
        tf = _import_tf()
        if explicit_path is not None:
            # Parse the graph file before touching the runtime, so a corrupt model is reported as such
            # whatever the thread state of this process.
            self._parse_saved_model(explicit_path)
        configure_threads(self.threads)  # before any TensorFlow op (the zoo export may build a model)
        path = explicit_path or self._zoo_path()
        try:
            self._module = tf.saved_model.load(str(path))
        except Exception as exc:  # any failure to read the files means a corrupt / foreign model
            raise self._corrupt(exc) from None
        signatures = getattr(self._module, "signatures", {})
        name = self.options["signature"]
        if name not in signatures:
            raise self._corrupt(f"no signature {name!r}; it has {', '.join(sorted(signatures)) or 'none'}")
        self._fn = signatures[name]
        args, kwargs = self._fn.structured_input_signature
        specs = list(args) + list(kwargs.values())
        outputs = self._fn.structured_outputs
        if len(specs) != 1 or not isinstance(outputs, dict) or len(outputs) != 1:
            raise self._corrupt(f"signature {name!r} must have one input and one output")
        self._in_key = next(iter(kwargs)) if kwargs else None
        self._out_key = next(iter(outputs))
        spec = specs[0]
        shape = spec.shape.as_list()
        if len(shape) != 4 or shape[3] != 3 or spec.dtype != tf.float32:
            raise self._corrupt(f"input must be float32 (1, H, W, 3), got {spec.dtype.name} {shape}")
        self._tf = tf
        self.versions["tensorflow"] = tf.__version__
        self.versions["keras"] = library_version("keras")
        return self._square_size((shape[1], shape[2]))

    def _parse_saved_model(self, path: Path) -> None:
        from google.protobuf.message import DecodeError
        from tensorflow.core.protobuf import saved_model_pb2

        self.model_path = path
        proto = saved_model_pb2.SavedModel()
        try:
            proto.ParseFromString((path / SAVED_MODEL_PB).read_bytes())
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise self._corrupt(exc) from None
        if not proto.meta_graphs:
            raise self._corrupt("no meta graph")

    def _infer(self, tensor: np.ndarray) -> np.ndarray:
        x = self._tf.convert_to_tensor(tensor)
        out = self._fn(**{self._in_key: x}) if self._in_key else self._fn(x)
        return out[self._out_key].numpy()

    def _close(self) -> None:
        self._fn = None
        self._module = None

    def effective(self) -> dict[str, Any]:
        tf = self._tf
        return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "call": f"SavedModel signature {self.options['signature']!r} (graph function)",
                "onednn_opts": onednn_opts_enabled()}
