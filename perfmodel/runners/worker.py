"""Run one cell in a fresh Python process (``python -m perfmodel.runners.worker``).

Why: TensorFlow fixes its thread pools once per process and OpenCV's thread count is process-wide, and
one framework's threads, allocator and caches should not disturb the next measurement (pyperf likewise
runs benchmarks in worker processes). It speaks the worker protocol of :mod:`perfmodel.workerproto` (request on
stdin, reply in the call's folder, library chatter on stdout / stderr to the run's log).

Actions: ``time`` (load + :func:`~perfmodel.runners.timing.time_runner`) and ``scores`` (load,
pre-process one image, infer; returns the scores, the input tensor's checksum and the runner details).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfmodel.workerproto import WorkerCrashed, WorkerError, WorkerFailed, WorkerTimeout, run_worker, serve

__all__ = ["WorkerError", "scores_isolated", "tensor_digest", "time_isolated"]


def _request(action: str, framework: str, network: str | None, threads: int, model_path: Any,
             options: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"action": action, "framework": framework, "network": network, "threads": threads,
            "model_path": str(model_path) if model_path is not None else None,
            "options": dict(options or {}), **extra}


def _call(request: dict[str, Any], timeout_s: float | None) -> Any:
    label = f"{request['framework']} {request['network']} threads={request['threads']}"
    with tempfile.TemporaryDirectory(prefix="perfmodel-worker-") as tmp:
        try:
            return run_worker([sys.executable, "-m", "perfmodel.runners.worker"], request, workdir=tmp,
                              label=label, timeout_s=timeout_s).result
        except WorkerTimeout as exc:
            raise exc.reworded(f"{label}: worker did not finish within {timeout_s:g} s") from None
        except WorkerCrashed as exc:
            tail = "\n".join(exc.output[-15:])
            raise exc.reworded(f"{label}: worker process exited with code {exc.exit_code} and no result; "
                               f"its last output:\n{tail}") from None
        except WorkerFailed as exc:  # a user error is the worker's message alone
            raise (exc.reworded(exc.error) if exc.user else exc) from None


def time_isolated(framework: str, network: str | None, threads: int, images: Sequence[str | Path], *,
                  model_path: str | Path | None = None, options: dict[str, Any] | None = None,
                  timeout_s: float | None = None, **timing: Any):
    """:func:`~perfmodel.runners.timing.run_cell` in a fresh process; returns a ``CellResult``."""
    from perfmodel.runners.timing import CellResult, check_timing

    check_timing(timing.get("warmup", 2), timing.get("count", 20), timing.get("min_time_s", 1.0),
                 timing.get("max_time_s"))
    req = _request("time", framework, network, threads, model_path, options,
                   images=[str(p) for p in images], timing=timing)
    return CellResult.from_state(_call(req, timeout_s))


def scores_isolated(framework: str, network: str | None, threads: int, image: str | Path, *,
                    model_path: str | Path | None = None, options: dict[str, Any] | None = None,
                    timeout_s: float | None = None) -> dict[str, Any]:
    """Scores of one image in a fresh process: ``{"scores": [...], "input_sha256": ..., "details": ...}``.

    ``input_sha256`` is the checksum of the pre-processed tensor in NHWC order, so inputs can be
    compared across frameworks and layouts.
    """
    req = _request("scores", framework, network, threads, model_path, options, image=str(image))
    return _call(req, timeout_s)


def tensor_digest(tensor: Any, layout: str) -> str:
    """sha256 of a pre-processed tensor in NHWC order (layout-independent)."""
    import numpy as np

    x = np.asarray(tensor, dtype=np.float32)
    if layout == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def _serve(request: dict[str, Any]) -> Any:
    from perfmodel.images import read_image_bytes
    from perfmodel.runners.base import get_runner

    runner = get_runner(request["framework"], request["network"], request["threads"], request["model_path"],
                        **request["options"])
    with runner:
        if request["action"] == "time":
            from perfmodel.runners.timing import time_runner

            return time_runner(runner, request["images"], **request["timing"]).to_state()
        if request["action"] == "scores":
            path = Path(request["image"])
            x = runner.preprocess(read_image_bytes(path), path.name)
            scores = runner.infer(x)
            return {"scores": [float(s) for s in scores], "input_sha256": tensor_digest(x, runner.layout),
                    "details": runner.details()}
        raise ValueError(f"unknown worker action {request['action']!r}")


def main() -> int:
    return serve(_serve)


if __name__ == "__main__":
    sys.exit(main())
