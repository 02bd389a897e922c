"""Machine calibration: about two seconds of streaming-bandwidth and compute measurements, stored with a campaign.

A network whose weights are each used once per image (fully connected layers at batch 1: AlexNet's
58.6 M FC weights, 234 MB) runs that part at the speed the machine streams memory, not at the speed it
executes instructions; the per-image counts of conv networks cannot say what that costs, because in a
conv network memory traffic overlaps with arithmetic. The calibration measures it:

* ``stream_gbps[threads]``: GB/s of a float32 matrix-vector product (numpy -> its BLAS ``sgemv``, the
  operation of an FC layer at batch 1: every weight read once, two flops per weight) over a matrix of
  ``buffer_mib`` MiB, the median over repeats;
* ``gemm_gflops[threads]``: GFLOP/s of a 256 x 256 float32 matrix product (in cache): the arithmetic
  speed at the time, an index to compare campaigns by (a VM's speed drifts; a board throttles).

The BLAS thread count is set with ``threadpoolctl`` for each figure. Nothing is estimated: a figure that
could not be measured is absent, with the reason under ``errors``. The result is a JSON-able dict; a
campaign stores it in its run metadata (``metadata["calibration"]``), and
:func:`perfmodel.data.attach_calibration` (``perfmodel calibrate --attach``) adds one to an existing data
set. Run it while nothing else runs: on this project's 2-core VM a second busy core halves the 2-thread
figure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from perfmodel.errors import PerfmodelError

CALIBRATION_VERSION = 1
MAX_SECONDS = 600.0  #: the longest measuring time per figure accepted (a typo such as 1e9 would never end)
#: share of the available memory the streamed buffer may take (the rest: the process, the BLAS, the OS)
MAX_MEMORY_SHARE = 0.8
METHOD = ("stream: float32 matrix-vector product (numpy matmul -> BLAS sgemv) over a buffer_mib matrix with "
          "4096 columns, median GB/s of the matrix bytes; gemm: 256x256 float32 matmul, median GFLOP/s; "
          "BLAS threads set by threadpoolctl")


def _median_rate(fn, work: float, seconds: float, min_repeats: int = 3) -> tuple[float, int]:
    """``(median work / s, repeats)`` of ``fn`` run for about ``seconds`` (at least ``min_repeats`` times)."""
    fn()  # first touch / thread start-up, not counted
    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_repeats or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return work / float(np.median(times)), len(times)


def check_buffer_fits(buffer_mib: int) -> None:
    """Refuse (:class:`PerfmodelError`) a buffer larger than :data:`MAX_MEMORY_SHARE` of the memory available
    now (``psutil.virtual_memory().available``); numpy would fail allocating it, or the machine would swap
    and the figure measure the disk."""
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - unknown: the allocation itself is guarded in measure_calibration
        return
    need = int(buffer_mib) * 2**20
    if need > MAX_MEMORY_SHARE * available:
        raise PerfmodelError(f"a {int(buffer_mib)} MiB buffer does not fit in the available memory "
                             f"({available / 2**20:.0f} MiB now, of which at most {MAX_MEMORY_SHARE:.0%} is "
                             "used); use a smaller buffer (--buffer-mib)")


def measure_calibration(threads: Sequence[int] = (1, 2), *, buffer_mib: int = 256, seconds: float = 0.5,
                        seed: int = 0) -> dict[str, Any]:
    """Measure the streaming bandwidth and the compute speed at each thread count (module docstring).

    ``buffer_mib`` (>= 1): size of the streamed matrix; make it larger than the caches you want to see
    past (the default 256 MiB is about AlexNet's FC weights); one larger than the available memory is
    refused (:func:`check_buffer_fits`). ``seconds`` (> 0, at most :data:`MAX_SECONDS`): time per stream
    figure.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    try:
        thr = sorted({int(t) for t in threads})
    except (TypeError, ValueError):
        raise ValueError(f"threads must be integers >= 1, got {threads!r}") from None
    if not thr or thr[0] < 1:
        raise ValueError(f"threads must be integers >= 1, got {list(threads)!r}")
    if int(buffer_mib) < 1:
        raise ValueError(f"buffer_mib must be >= 1, got {buffer_mib!r}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be > 0 and at most {MAX_SECONDS:g}, got {seconds!r}")
    check_buffer_fits(buffer_mib)
    rng = np.random.default_rng(seed)
    cols = 4096
    rows = max(1, int(buffer_mib) * 2**20 // (4 * cols))
    try:
        W = rng.random((rows, cols), dtype=np.float32)
    except MemoryError:
        raise PerfmodelError(f"a {int(buffer_mib)} MiB buffer does not fit in the available memory; use a smaller "
                             "buffer (--buffer-mib)") from None
    x = rng.random(cols, dtype=np.float32)
    A = rng.random((256, 256), dtype=np.float32)
    B = rng.random((256, 256), dtype=np.float32)
    out: dict[str, Any] = {
        "version": CALIBRATION_VERSION, "method": METHOD,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "buffer_mib": round(W.nbytes / 2**20, 3), "seconds": float(seconds),
        "stream_gbps": {}, "gemm_gflops": {}, "repeats": {}, "errors": {},
    }
    t0 = time.perf_counter()
    if not any(p.get("user_api") == "blas" for p in threadpool_info()):
        for t in thr:  # threadpool_limits would change nothing: every figure would use all cores
            out["errors"][str(t)] = "no BLAS thread pool found by threadpoolctl: the thread count cannot be set"
        thr = []
    for t in thr:
        try:
            with threadpool_limits(limits=t, user_api="blas"):
                bw, n1 = _median_rate(lambda: W @ x, W.nbytes / 1e9, seconds)
                fl, n2 = _median_rate(lambda: A @ B, 2 * 256**3 / 1e9, seconds / 2)
        except Exception as exc:  # noqa: BLE001 - recorded, never invented
            out["errors"][str(t)] = f"{type(exc).__name__}: {exc}"
            continue
        out["stream_gbps"][str(t)] = float(bw)
        out["gemm_gflops"][str(t)] = float(fl)
        out["repeats"][str(t)] = {"stream": n1, "gemm": n2}
    out["wall_s"] = round(time.perf_counter() - t0, 3)
    return out


def safe_calibration(threads: Sequence[int], **kw: Any) -> dict[str, Any]:
    """:func:`measure_calibration`, with a failure (no memory for the buffer on a small board, a missing
    library) recorded as the calibration's ``errors`` instead of raised: a campaign goes on without it."""
    try:
        return measure_calibration(threads, **kw)
    except Exception as exc:  # noqa: BLE001 - recorded with the run, never invented
        return {"version": CALIBRATION_VERSION, "method": METHOD, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                time.gmtime()), "stream_gbps": {}, "gemm_gflops": {},
                "errors": {"all": f"{type(exc).__name__}: {exc}"}}


__all__ = ["measure_calibration", "safe_calibration", "CALIBRATION_VERSION"]
