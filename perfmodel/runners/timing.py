"""Per-image timing of a runner, and latency statistics in the style of TFLite's ``benchmark_model``.

One *cell* is (framework, network, threads). :func:`time_runner` times, for every image, the whole
per-image work of the study: read the file + pre-process (decode, resize, normalise) + inference, with
``time.perf_counter_ns``. It first runs ``warmup`` untimed images, then at least ``count`` images and at
least ``min_time_s`` seconds, whichever is longer, cycling through the images from the first one (so the
n-th timed image is the same file in every cell, whatever the warm-up). The garbage collector is
off while timing (as in :mod:`timeit`).

:class:`TimingStats` summarises samples: count, min, median, mean, p90, p99, max, standard deviation
(ms) and images/s = 1000 / mean latency (the study's throughput; equal to images / summed latency).
Percentiles use linear interpolation between order statistics (numpy's default).

The collect stage reuses :func:`time_runner` with a ``on_image`` hook to read counters per image.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfmodel.errors import PerfmodelError

NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class TimingStats:
    """Summary of per-image times in milliseconds."""

    count: int
    min_ms: float
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    images_per_s: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "TimingStats":
        """Statistics of ``samples_ms`` (std is the sample standard deviation, 0 for one sample)."""
        x = np.asarray(samples_ms, dtype=np.float64)
        if x.size == 0:
            raise ValueError("no samples")
        mean = float(x.mean())
        return cls(
            count=int(x.size),
            min_ms=float(x.min()),
            median_ms=float(np.median(x)),
            mean_ms=mean,
            p90_ms=float(np.percentile(x, 90)),
            p99_ms=float(np.percentile(x, 99)),
            max_ms=float(x.max()),
            std_ms=float(x.std(ddof=1)) if x.size > 1 else 0.0,
            images_per_s=1000.0 / mean if mean > 0 else math.inf,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CellResult:
    """The timing of one (framework, network, threads) cell."""

    framework: str
    network: str
    threads: int
    input_size: int
    latency: TimingStats
    preprocess: TimingStats
    inference: TimingStats
    warmup: int
    wall_s: float
    details: dict[str, Any] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list, repr=False)
    preprocess_ms: list[float] = field(default_factory=list, repr=False)
    inference_ms: list[float] = field(default_factory=list, repr=False)
    images: list[str] = field(default_factory=list, repr=False)

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """Flat JSON-ready summary; per-image samples (ms) and image names only with ``samples=True``."""
        out: dict[str, Any] = {"framework": self.framework, "network": self.network, "threads": self.threads,
                               "input_size": self.input_size, "warmup": self.warmup, "wall_s": self.wall_s}
        out.update(self.latency.to_dict())
        out["preprocess_mean_ms"] = self.preprocess.mean_ms
        out["inference_mean_ms"] = self.inference.mean_ms
        out["inference_median_ms"] = self.inference.median_ms
        out["details"] = self.details
        if samples:
            out["samples"] = {"latency_ms": self.latency_ms, "preprocess_ms": self.preprocess_ms,
                              "inference_ms": self.inference_ms, "images": self.images}
        return out

    def to_state(self) -> dict[str, Any]:
        """Everything, for :meth:`from_state` (used to pass results between processes)."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "CellResult":
        state = dict(state)
        for key in ("latency", "preprocess", "inference"):
            state[key] = TimingStats(**state[key])
        return cls(**state)


def check_timing(warmup: int, count: int, min_time_s: float, max_time_s: float | None = None) -> None:
    """Validate timing parameters (:class:`PerfmodelError` with a clear message)."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise PerfmodelError(f"warmup must be an integer >= 0, got {warmup!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise PerfmodelError(f"count must be an integer >= 1, got {count!r}")
    if not isinstance(min_time_s, (int, float)) or not min_time_s >= 0 or math.isinf(min_time_s):
        raise PerfmodelError(f"min-time must be a finite number of seconds >= 0, got {min_time_s!r}")
    if max_time_s is not None and not (isinstance(max_time_s, (int, float)) and max_time_s > 0):
        raise PerfmodelError(f"max-time must be a number of seconds > 0, got {max_time_s!r}")


def time_runner(
    runner: Any,
    images: Sequence[str | Path],
    *,
    warmup: int = 2,
    count: int = 20,
    min_time_s: float = 1.0,
    max_time_s: float | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
    read: Callable[[Path], bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_image: Callable[[str, int, int], None] | None = None,
) -> CellResult:
    """Time ``runner`` (a loaded :class:`~perfmodel.runners.base.Runner`) over ``images``.

    Per image: ``t0`` -> read file + ``runner.preprocess`` -> ``t1`` -> ``runner.infer`` -> ``t2``;
    latency = t2 - t0. Runs ``warmup`` untimed images, then images until at least ``count`` are timed
    and at least ``min_time_s`` seconds have passed (stopping early only at ``max_time_s``, if given,
    once one image is timed). ``clock`` returns nanoseconds (injectable for tests). ``progress(done,
    target)`` is called after each timed image; ``on_image(path, t0_ns, t2_ns)`` too (e.g. for counters).
    """
    from perfmodel.images import read_image_bytes

    check_timing(warmup, count, min_time_s, max_time_s)
    paths = [Path(p) for p in images]
    if not paths:
        raise PerfmodelError("no images to time")
    read = read or read_image_bytes

    def one(path: Path) -> tuple[int, int, int]:
        t0 = clock()
        x = runner.preprocess(read(path), path.name)
        t1 = clock()
        runner.infer(x)
        t2 = clock()
        return t0, t1, t2

    n = len(paths)
    for i in range(warmup):
        one(paths[i % n])

    lat: list[float] = []
    pre: list[float] = []
    inf: list[float] = []
    names: list[str] = []
    min_ns = int(min_time_s * 1e9)
    max_ns = int(max_time_s * 1e9) if max_time_s is not None else None
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        i = 0
        while True:
            path = paths[i % n]
            t0, t1, t2 = one(path)
            i += 1
            lat.append((t2 - t0) / NS_PER_MS)
            pre.append((t1 - t0) / NS_PER_MS)
            inf.append((t2 - t1) / NS_PER_MS)
            names.append(path.name)
            if on_image is not None:
                on_image(str(path), t0, t2)
            elapsed = t2 - start
            if progress is not None:
                progress(i, count)
            if max_ns is not None and elapsed >= max_ns:
                break
            if i >= count and elapsed >= min_ns:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    wall_s = (clock() - start) / 1e9
    details = runner.details() if hasattr(runner, "details") else {}
    return CellResult(
        framework=getattr(runner, "framework", "?"), network=getattr(runner, "network", "?"),
        threads=int(getattr(runner, "threads", 0)), input_size=int(getattr(runner, "input_size", 0) or 0),
        latency=TimingStats.from_samples(lat), preprocess=TimingStats.from_samples(pre),
        inference=TimingStats.from_samples(inf), warmup=warmup, wall_s=wall_s, details=details,
        latency_ms=lat, preprocess_ms=pre, inference_ms=inf, images=names,
    )


def run_cell(framework: str, network: str | None, threads: int, images: Sequence[str | Path], *,
             model_path: str | Path | None = None, options: dict[str, Any] | None = None,
             **timing: Any) -> CellResult:
    """Load a runner in this process, time it (:func:`time_runner` keyword arguments) and close it."""
    from perfmodel.runners.base import get_runner

    with get_runner(framework, network, threads, model_path, **(options or {})) as runner:
        return time_runner(runner, images, **timing)
