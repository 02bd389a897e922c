"""Run one cell in a fresh Python process (``python -m perfmodel.runners.worker``).

Why: TensorFlow fixes its thread pools once per process and OpenCV's thread count is process-wide, and
one framework's threads, allocator and caches should not disturb the next measurement (pyperf likewise
runs benchmarks in worker processes). The parent sends a JSON request on stdin; the worker writes a JSON
reply to the file named in the request (stdout / stderr are left to the libraries' chatter):
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": message}`` for a :class:`PerfmodelError`.

Actions: ``time`` (load + :func:`~perfmodel.runners.timing.time_runner`) and ``scores`` (load,
pre-process one image, infer; returns the scores, the input tensor's checksum and the runner details).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError


class WorkerError(PerfmodelError):
    """A worker process failed without a user-facing error (crash, killed, timeout)."""


def _request(action: str, framework: str, network: str | None, threads: int, model_path: Any,
             options: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"action": action, "framework": framework, "network": network, "threads": threads,
            "model_path": str(model_path) if model_path is not None else None,
            "options": dict(options or {}), **extra}


def _call(request: dict[str, Any], timeout_s: float | None) -> Any:
    with tempfile.TemporaryDirectory(prefix="perfmodel-worker-") as tmp:
        reply_path = Path(tmp) / "reply.json"
        request = {**request, "reply": str(reply_path)}
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # the worker must import this same perfmodel, installed or not
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        label = f"{request['framework']} {request['network']} threads={request['threads']}"
        try:
            proc = subprocess.run([sys.executable, "-m", "perfmodel.runners.worker"], input=json.dumps(request),
                                  capture_output=True, text=True, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise WorkerError(f"{label}: worker did not finish within {timeout_s:g} s") from None
        if reply_path.exists():
            reply = json.loads(reply_path.read_text("utf-8"))
            if reply.get("ok"):
                return reply["result"]
            raise PerfmodelError(reply.get("error", "unknown error"))
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise WorkerError(f"{label}: worker process exited with code {proc.returncode} and no result; "
                          f"its last output:\n{tail}")


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
    request = json.loads(sys.stdin.read())
    reply_path = Path(request["reply"])
    try:
        reply = {"ok": True, "result": _serve(request)}
    except PerfmodelError as exc:
        reply = {"ok": False, "error": str(exc)}
    reply_path.write_text(json.dumps(reply), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
