"""The four framework runners of the study behind one small protocol.

>>> from perfmodel.runners import FRAMEWORKS, get_runner
>>> FRAMEWORKS
('tensorflow', 'litert', 'onnxruntime', 'opencv')
>>> with get_runner("onnxruntime", "squeezenet1_1", threads=2) as r:    # doctest: +SKIP
...     scores = r.infer(r.preprocess(jpeg_bytes))

* :func:`get_runner` - a loaded :class:`Runner` of a zoo network (or an explicit model file).
* :func:`preprocess_image` - the shared decode / resize / normalise step.
* :func:`time_runner`, :func:`run_cell`, :class:`TimingStats`, :class:`CellResult` - per-image timing
  (:mod:`perfmodel.runners.timing`); :func:`time_isolated` runs a cell in a fresh process
  (:mod:`perfmodel.runners.worker`).

Framework libraries are imported only when a runner loads.
"""

from __future__ import annotations

from perfmodel.runners.base import (
    FRAMEWORKS,
    FrameworkUnavailableError,
    Runner,
    ThreadsError,
    get_runner,
    preprocess_image,
    runner_class,
)
from perfmodel.runners.timing import CellResult, TimingStats, run_cell, time_runner
from perfmodel.runners.worker import WorkerError, scores_isolated, time_isolated

#: framework -> zoo export format it loads.
MODEL_FORMATS: dict[str, str] = {"tensorflow": "savedmodel", "litert": "tflite", "onnxruntime": "onnx",
                                 "opencv": "onnx"}

__all__ = [
    "FRAMEWORKS",
    "MODEL_FORMATS",
    "CellResult",
    "FrameworkUnavailableError",
    "Runner",
    "ThreadsError",
    "TimingStats",
    "WorkerError",
    "get_runner",
    "preprocess_image",
    "run_cell",
    "runner_class",
    "scores_isolated",
    "time_isolated",
    "time_runner",
]
