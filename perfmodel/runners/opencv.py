"""OpenCV DNN runner: ``cv2.dnn.readNetFromONNX`` on the NCHW ONNX export, OpenCV backend, CPU target.

Threads: ``cv2.setNumThreads(threads)`` (process-wide in OpenCV; it is set again before an inference if
another runner changed it). ``engine`` selects OpenCV 5's DNN engine: ``classic`` (default; the OpenCV 4.x
engine the study used, with backend OpenCV / target CPU), ``new`` (OpenCV 5's graph engine) or ``auto``
(new, falling back to classic). OpenCV 4.x has only the classic engine; OpenCV 5.1 only the new one (the
default then runs it and records ``engine: new``; see :func:`resolve_engine`).

Importers: ONNX by default; ``importer="tflite"`` reads the LiteRT flatbuffer instead (OpenCV >= 4.8,
still fed NCHW blobs). OpenCV's TensorFlow importer is not supported, see :data:`UNSUPPORTED_IMPORTERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.errors import PerfmodelError, check_choice
from perfmodel.runners.base import FrameworkUnavailableError, Runner

ENGINES = ("classic", "new", "auto")
IMPORTERS = {"onnx": "onnx", "tflite": "tflite"}  # importer -> zoo export format

#: OpenCV importers perfmodel does not use, with the reason.
UNSUPPORTED_IMPORTERS: dict[str, str] = {
    "tensorflow": (
        "cv2.dnn.readNetFromTensorflow reads TF1 frozen GraphDef .pb files (optionally with a .pbtxt), "
        "not the TF2 SavedModel folders the zoo exports (Keras 3 model.export); the same network runs in "
        "OpenCV from its ONNX export (or its TFLite export with importer='tflite')"
    ),
}


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise FrameworkUnavailableError(f"the opencv framework needs opencv-python-headless ({exc})") from None
    if not hasattr(cv2, "dnn"):  # pragma: no cover - builds without the dnn module
        raise FrameworkUnavailableError(f"OpenCV {cv2.__version__} was built without the dnn module")
    return cv2


def resolve_engine(cv2: Any, requested: str, *, explicit: bool = True) -> tuple[tuple[Any, ...], str]:
    """``(extra readNet arguments, engine that runs)`` for the ``engine`` option on this OpenCV release.

    * 4.x (no ``cv2.dnn.ENGINE_*``): the classic engine only; ``auto`` falls back to it, ``new`` is refused;
    * 5.0 (``ENGINE_CLASSIC`` / ``ENGINE_NEW`` / ``ENGINE_AUTO``): as asked;
    * 5.1 and later (``ENGINE_OPENCV`` / ``ENGINE_ORT`` / ``ENGINE_AUTO``, no classic engine): ``new`` and ``auto``
      run ``ENGINE_OPENCV``; ``classic`` asked for explicitly is refused, the default becomes ``new`` (recorded
      as the cell's engine, so its data never pass for classic-engine data).
    """
    dnn, version = cv2.dnn, getattr(cv2, "__version__", "?")
    if hasattr(dnn, "ENGINE_CLASSIC"):
        return (getattr(dnn, f"ENGINE_{requested.upper()}"),), requested
    if hasattr(dnn, "ENGINE_OPENCV"):
        if requested == "classic" and explicit:
            raise PerfmodelError(f"OpenCV {version} has no classic DNN engine (removed after 5.0); use "
                                 "engine='new' (its ENGINE_OPENCV) or OpenCV <= 5.0")
        return (dnn.ENGINE_OPENCV,), "new"
    if requested == "new":
        raise PerfmodelError(f"OpenCV {version} has only the classic DNN engine")
    return (), "classic"


class OpenCVRunner(Runner):
    """``cv2.dnn`` network on NCHW float32 blobs."""

    framework = "opencv"
    layout = "NCHW"
    option_defaults = {"engine": "classic", "importer": "onnx"}

    @property
    def model_format(self) -> str:  # type: ignore[override]
        return IMPORTERS.get(self.options.get("importer", "onnx"), "onnx")

    def _load(self, explicit_path: Path | None) -> int | None:
        if self.options["importer"] in UNSUPPORTED_IMPORTERS:
            raise PerfmodelError(f"OpenCV importer {self.options['importer']!r} is not supported: "
                                 f"{UNSUPPORTED_IMPORTERS[self.options['importer']]}")
        check_choice("OpenCV importer", self.options["importer"], IMPORTERS)
        check_choice("OpenCV engine", self.options["engine"], ENGINES)
        cv2 = _import_cv2()
        engine_args, used = resolve_engine(cv2, self.options["engine"], explicit="engine" in self._given_options)
        self.options["engine"] = used
        cv2.setNumThreads(self.threads)
        path = explicit_path or self._zoo_path()
        size = self._model_size(path) if explicit_path is not None else None
        reader = cv2.dnn.readNetFromONNX if self.options["importer"] == "onnx" else cv2.dnn.readNetFromTFLite
        try:
            net = reader(str(path), *engine_args)
        except cv2.error as exc:
            raise self._corrupt(exc) from None
        if net.empty():
            raise self._corrupt("OpenCV read an empty network")
        if self.options["engine"] == "classic":
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self._net = net
        self._cv2 = cv2
        self.versions["opencv"] = cv2.__version__
        if size is None and explicit_path is None:
            from perfmodel.zoo import get_network

            size = self.requested_input_size or get_network(self.network).input_size
        return size

    def _model_size(self, path: Path) -> int | None:
        """Input size read from the model file itself (also rejects a corrupt file early)."""
        if self.options["importer"] == "onnx":
            import onnx

            try:
                model = onnx.load(str(path), load_external_data=False)
            except Exception as exc:  # DecodeError, ValueError, ...
                raise self._corrupt(exc) from None
            inits = {i.name for i in model.graph.initializer}
            inputs = [i for i in model.graph.input if i.name not in inits]
            if len(inputs) != 1:
                raise self._corrupt(f"expected one input, got {len(inputs)}")
            dims = [d.dim_value if d.HasField("dim_value") else None
                    for d in inputs[0].type.tensor_type.shape.dim]
            if len(dims) != 4 or dims[1] != 3:
                raise self._corrupt(f"input must be (N, 3, H, W), got {dims}")
            return self._square_size((dims[2], dims[3]))
        from ai_edge_litert.interpreter import Interpreter

        try:
            shape = [int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape"]]
        except Exception as exc:
            raise self._corrupt(exc) from None
        if len(shape) != 4 or shape[3] != 3:
            raise self._corrupt(f"input must be (1, H, W, 3), got {shape}")
        return self._square_size((shape[1], shape[2]))

    def _infer(self, tensor: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        if cv2.getNumThreads() != self.threads:  # another OpenCV user in this process changed it
            cv2.setNumThreads(self.threads)
        self._net.setInput(tensor)
        return self._net.forward()

    def _close(self) -> None:
        self._net = None

    def effective(self) -> dict[str, Any]:
        return {"cv2_num_threads": self._cv2.getNumThreads(), "engine": self.options["engine"],
                "importer": self.options["importer"],
                "backend": "opencv/cpu" if self.options["engine"] == "classic" else "engine default (cpu)"}
