"""LiteRT runner (``ai_edge_litert`` interpreter, formerly TensorFlow Lite).

XNNPACK is on by default, as in LiteRT itself; ``xnnpack=False`` selects the built-in kernels
(``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``). Whether XNNPACK really took over part of the graph
is read back from the execution plan (``DELEGATE`` nodes) into :meth:`effective`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.runners.base import FrameworkUnavailableError, Runner, library_version


class LiteRTRunner(Runner):
    """``Interpreter(model_path, num_threads=threads)``; one float32 NHWC input, one scores output."""

    framework = "litert"
    model_format = "tflite"
    layout = "NHWC"
    option_defaults = {"xnnpack": True}

    def _load(self, explicit_path: Path | None) -> int | None:
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise FrameworkUnavailableError(f"the litert framework needs ai-edge-litert ({exc})") from None
        path = explicit_path or self._zoo_path()
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": self.threads}
        if not self.options["xnnpack"]:
            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._it = Interpreter(**kwargs)
            self._it.allocate_tensors()
        except Exception as exc:  # the interpreter raises ValueError / RuntimeError on a bad flatbuffer
            raise self._corrupt(exc) from None
        inputs, outputs = self._it.get_input_details(), self._it.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise self._corrupt(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
        shape = [int(d) for d in inputs[0]["shape"]]
        if len(shape) != 4 or shape[3] != 3 or inputs[0]["dtype"] != np.float32:
            raise self._corrupt(f"input must be float32 (1, H, W, 3), got {np.dtype(inputs[0]['dtype']).name} {shape}")
        self._in = inputs[0]["index"]
        self._out = outputs[0]["index"]
        self._ops = [op["op_name"] for op in self._it._get_ops_details()]
        self.versions["ai_edge_litert"] = library_version("ai-edge-litert")
        return self._square_size((shape[1], shape[2]))

    def _infer(self, tensor: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in, tensor)
        self._it.invoke()
        return self._it.get_tensor(self._out)

    def _close(self) -> None:
        self._it = None

    def effective(self) -> dict[str, Any]:
        delegated = self._ops.count("DELEGATE")
        return {"num_threads": self.threads, "delegate_nodes": delegated,
                "kernels": "xnnpack" if delegated else "builtin", "nodes": len(self._ops)}
