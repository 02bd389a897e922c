"""Long-run traces: continuous inference of one framework x network x threads for minutes.

:func:`run_trace` runs the worker's ``trace`` action (see :mod:`perfmodel.collect.worker`) and returns
``phase="trace"`` records, one per interval: ``images`` completed, event counts, CPU % and the sensor
window (temperature, frequency, power). :func:`perfmodel.data.wide_per_sample` turns them into the
time series of the study's throughput-over-time and temperature figures (``throughput_fps`` =
images / interval).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from perfmodel.errors import PerfmodelError, check_choice

from .campaign import CellFailed, image_paths, open_dataset, spawn_worker
from .spec import COUNTER_SOURCES, Cell, spec_differences


@dataclass
class TraceResult:
    cell_id: str
    records: Any  #: long records (pandas), phase="trace"
    meta: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  #: data set written into, if any
    skipped: bool = False  #: the trace cell was already done in that data set


def trace_cell_id(framework: str, network: str, threads: int, counters: str, repeat: int = 0) -> str:
    return Cell(framework, network, threads, repeat, f"trace-{counters}").cell_id


def run_trace(framework: str, network: str, threads: int = 1, duration_s: float = 360.0, period_s: float = 1.0,
              *, out: str | os.PathLike | None = None, counters: str = "auto", images: int = 50,
              image_folder: str | None = None, sampler_period_s: float = 0.1, warmup_images: int = 3,
              warmup_min_s: float = 0.5, repeat: int = 0, seed: int = 0, resume: bool = True,
              force: bool = False, progress: bool = True, timeout_s: float | None = None,
              power_log: str | None = None, power_log_offset_s: float = 0.0) -> TraceResult:
    """Continuous inference for ``duration_s``; one trace record per ``period_s`` (at least one image)."""
    from perfmodel.data.schema import validate
    from perfmodel.runners import FRAMEWORKS, MODEL_FORMATS
    from perfmodel.runners.base import check_threads
    from perfmodel.zoo import export, network_names

    from .meta import new_run_id, run_metadata

    check_choice("framework", framework, FRAMEWORKS)
    check_choice("network", network, network_names())
    check_choice("counter source", counters, [c for c in COUNTER_SOURCES if c != "valgrind"])
    threads = check_threads(threads)
    if not duration_s > 0:
        raise PerfmodelError(f"duration must be > 0 s, got {duration_s}")
    if not 0.01 <= period_s <= duration_s:
        raise PerfmodelError(f"the trace period must be between 0.01 s and the duration, got {period_s}")
    if not 0.01 <= sampler_period_s <= 10:
        raise PerfmodelError(f"sampler period must be between 0.01 and 10 s, got {sampler_period_s}")
    if power_log is not None and not os.path.isfile(power_log):
        raise PerfmodelError(f"power log {power_log!r} does not exist")
    if image_folder is not None and not os.path.isdir(image_folder):
        raise PerfmodelError(f"image folder {image_folder!r} does not exist")
    paths = image_paths(images, image_folder, seed)
    run_id = new_run_id()
    cell_id = trace_cell_id(framework, network, threads, counters, repeat)
    spec = {"mode": "trace", "framework": framework, "network": network, "threads": threads,
            "duration_s": duration_s, "period_s": period_s, "counters": counters, "images": images,
            "image_folder": image_folder, "sampler_period_s": sampler_period_s, "warmup_images": warmup_images,
            "warmup_min_s": warmup_min_s, "seed": seed}
    metadata = run_metadata(counters, None, run_id=run_id)
    ds = None
    if out is not None:
        ds = open_dataset(out, metadata, spec, resume=resume, merge=True, force=force,
                          measurement_diff=lambda old: spec_differences(old, spec))
        if resume and not force and ds.is_done(cell_id):
            return TraceResult(cell_id, ds.read_cell(cell_id), ds.cell_meta(cell_id), str(ds.path), skipped=True)
    model = str(export(network, MODEL_FORMATS[framework], seed=seed))
    keys = {"run_id": run_id, "cell_id": cell_id, "board": metadata["board"], "framework": framework,
            "network": network, "threads": threads, "workload": f"{framework}/{network}", "repeat": repeat}
    request = {"action": "trace", "cell_id": cell_id, "framework": framework, "network": network,
               "threads": threads, "model_path": model, "options": {"seed": seed}, "counters": counters,
               "images": [str(p) for p in paths], "duration_s": duration_s, "period_s": period_s,
               "warmup_images": warmup_images, "warmup_min_s": warmup_min_s,
               "sampler_period_s": sampler_period_s, "power_log": power_log,
               "power_log_offset_s": power_log_offset_s, "keys": keys}
    cmeta = {"framework": framework, "network": network, "threads": threads, "repeat": repeat,
             "counter_source": counters, "run_id": run_id, "mode": "trace"}
    timeout = timeout_s if timeout_s is not None else duration_s + 600.0

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                   disable=not progress or not sys.stderr.isatty())
    state = {"t0": None}
    stop = threading.Event()

    def on_progress(done: int, total: int) -> None:
        if state["t0"] is None:
            state["t0"] = time.monotonic()

    def tick(task) -> None:
        while not stop.wait(0.5):
            if state["t0"] is not None:
                bar.update(task, completed=min(duration_s, time.monotonic() - state["t0"]))

    with bar:
        task = bar.add_task(f"trace {framework} {network} t={threads}", total=duration_s)
        ticker = threading.Thread(target=tick, args=(task,), daemon=True)
        ticker.start()
        try:
            df, meta = spawn_worker(request, timeout, on_progress)
        except CellFailed as exc:
            if ds is not None:
                ds.mark_failed(cell_id, str(exc), cmeta)
            raise PerfmodelError(f"trace failed: {exc}") from None
        finally:
            stop.set()
        bar.update(task, completed=duration_s)
    meta.update(cmeta)
    meta["images"] = {"files": [p.name for p in paths][:200],
                      "source": image_folder or "synthetic 500x375 JPEGs (perfmodel.images.default_images)"}
    meta["status"] = "done"
    if ds is not None:
        ds.write_cell(cell_id, df, meta)
    else:
        df = validate(df, what=f"trace records of {cell_id!r}")
    df.attrs["meta"] = meta
    return TraceResult(cell_id, df, meta, str(ds.path) if ds is not None else None)
