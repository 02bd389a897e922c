"""ONNX Runtime runner: CPU execution provider, intra-op threads = ``threads``, inter-op 1, no spinning.

Spinning is turned off (``session.intra_op.allow_spinning = 0``) so idle worker threads do not burn CPU
between images, which would distort counters and power on a small board.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.runners.base import FrameworkUnavailableError, Runner

SPINNING_KEY = "session.intra_op.allow_spinning"


def session_options(ort: Any, threads: int) -> Any:
    """The runner's session options: ``threads`` intra-op threads, one inter-op, sequential, every graph
    optimisation, no spinning, errors only (also used by the kernel profiler's sessions)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry(SPINNING_KEY, "0")
    so.log_severity_level = 3
    return so


class OnnxRuntimeRunner(Runner):
    """``InferenceSession`` with CPUExecutionProvider on an NCHW float32 ONNX model."""

    framework = "onnxruntime"
    model_format = "onnx"
    layout = "NCHW"

    def _load(self, explicit_path: Path | None) -> int | None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise FrameworkUnavailableError(f"the onnxruntime framework needs onnxruntime ({exc})") from None
        path = explicit_path or self._zoo_path()
        so = session_options(ort, self.threads)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # InvalidProtobuf, Fail, InvalidGraph, ...
            raise self._corrupt(exc) from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise self._corrupt(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
        shape = list(inputs[0].shape)
        if len(shape) != 4 or shape[1] != 3 or inputs[0].type != "tensor(float)":
            raise self._corrupt(f"input must be float32 (N, 3, H, W), got {inputs[0].type} {shape}")
        self._in = inputs[0].name
        self._out = outputs[0].name
        self.versions["onnxruntime"] = ort.__version__
        return self._square_size((shape[2], shape[3]))

    def _infer(self, tensor: np.ndarray) -> np.ndarray:
        return self._session.run([self._out], {self._in: tensor})[0]

    def _close(self) -> None:
        self._session = None

    def effective(self) -> dict[str, Any]:
        so = self._session.get_session_options()
        return {"intra_op_num_threads": so.intra_op_num_threads, "inter_op_num_threads": so.inter_op_num_threads,
                "allow_spinning": so.get_session_config_entry(SPINNING_KEY),
                "providers": self._session.get_providers()}
