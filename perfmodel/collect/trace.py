"""Long-run traces: continuous inference of one framework x network x threads for minutes.

:func:`run_trace` runs the worker's ``trace`` action (see :mod:`perfmodel.collect.worker`) and returns
``phase="trace"`` records, one per interval: ``images`` completed, event counts, CPU % and the sensor
window (temperature, frequency, power). :func:`perfmodel.data.wide_per_sample` turns them into the
time series of the study's throughput-over-time and temperature figures (``throughput_fps`` =
images / interval).

Resume: a trace into an existing data set is refused when the data set was collected with another
measurement spec (:data:`TRACE_MEASUREMENT_FIELDS`: duration, period, images, warm-up, counters, ...),
with the differences listed, unless ``force=True``; a trace cell already done is skipped without
touching the data set.

Interrupted or crashed traces: the worker streams every finished interval to a file the parent owns
(:func:`perfmodel.collect.worker.read_stream`). On Ctrl-C, or when the worker crashes or times out, the
intervals finished before it are kept: stored (with ``out``) as their own cell
``<cell_id>__partial-<run_id>`` with ``status="partial"`` (not a finished trace: the trace cell itself
stays not done, so running the same command again measures the whole trace, and the partial cell is
never overwritten), and returned with ``TraceResult.interrupted`` (Ctrl-C) set.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError, check_choice

from .campaign import CellFailed, image_paths, open_dataset, spawn_worker
from .spec import COUNTER_SOURCES, MEASUREMENT_FIELDS, Cell, check_power_log

#: spec fields that change what a trace's records mean: two traces differing in them are not comparable
TRACE_MEASUREMENT_FIELDS = ("duration_s", "period_s") + MEASUREMENT_FIELDS
STREAM_FILE = "intervals.jsonl"


@dataclass
class TraceResult:
    cell_id: str
    records: Any  #: long records (pandas), phase="trace"
    meta: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  #: data set written into, if any
    skipped: bool = False  #: the trace cell was already done in that data set
    interrupted: bool = False  #: stopped by Ctrl-C: ``records`` are the intervals finished before it
    partial_cell_id: str | None = None  #: where those intervals were stored (``status="partial"``), if anywhere


def trace_spec_differences(old: dict | None, new: dict) -> list[str]:
    """Differences in :data:`TRACE_MEASUREMENT_FIELDS` between a data set's stored spec and a trace's spec
    (fields both give; empty when comparable). A campaign spec stored by ``collect`` names no duration
    or period, so a trace may join its data set when the common fields agree."""
    if not old:
        return []
    return [f"{k}: {json.dumps(old.get(k), sort_keys=True)} != {json.dumps(new.get(k), sort_keys=True)}"
            for k in TRACE_MEASUREMENT_FIELDS if k in old and k in new and old.get(k) != new.get(k)]


def partial_cell_id(cell_id: str, run_id: str) -> str:
    return f"{cell_id}__partial-{run_id}"


def trace_cell_id(framework: str, network: str, threads: int, counters: str, repeat: int = 0) -> str:
    return Cell(framework, network, threads, repeat, f"trace-{counters}").cell_id


def _cell_spec(ds, cell_id: str) -> dict | None:
    """The trace spec a done cell was measured with: the campaign of the run that wrote it (its sidecar's
    ``run_id``), or None when the data set does not record it."""
    rid = (ds.cell_meta(cell_id) or {}).get("run_id")
    for run in reversed(ds.info.get("runs") or []):
        meta = run.get("metadata") if isinstance(run, dict) else None
        camp = run.get("campaign") if isinstance(run, dict) else None
        if rid and isinstance(meta, dict) and meta.get("run_id") == rid and isinstance(camp, dict):
            return camp
    return None


def run_trace(framework: str, network: str, threads: int = 1, duration_s: float = 360.0, period_s: float = 1.0,
              *, out: str | os.PathLike | None = None, counters: str = "auto", images: int = 50,
              image_folder: str | None = None, sampler_period_s: float = 0.1, warmup_images: int = 3,
              warmup_min_s: float = 0.5, repeat: int = 0, seed: int = 0, resume: bool = True,
              force: bool = False, progress: bool = True, timeout_s: float | None = None,
              power_log: str | None = None, power_log_offset_s: float = 0.0) -> TraceResult:
    """Continuous inference for ``duration_s``; one trace record per ``period_s`` (at least one image).

    With ``out`` the data set's writer lock is held from before the trace starts until it is stored (another
    writer is refused, naming the holder; the worker holds it too, see :func:`.campaign.spawn_worker`)."""
    opened: list = []
    try:
        return _run_trace(framework, network, threads, duration_s, period_s, out=out, counters=counters,
                          images=images, image_folder=image_folder, sampler_period_s=sampler_period_s,
                          warmup_images=warmup_images, warmup_min_s=warmup_min_s, repeat=repeat, seed=seed,
                          resume=resume, force=force, progress=progress, timeout_s=timeout_s, power_log=power_log,
                          power_log_offset_s=power_log_offset_s, opened=opened)
    finally:
        for ds in opened:
            ds.release()


def _run_trace(framework: str, network: str, threads: int, duration_s: float, period_s: float, *,
               out: str | os.PathLike | None, counters: str, images: int, image_folder: str | None,
               sampler_period_s: float, warmup_images: int, warmup_min_s: float, repeat: int, seed: int,
               resume: bool, force: bool, progress: bool, timeout_s: float | None, power_log: str | None,
               power_log_offset_s: float, opened: list) -> TraceResult:
    from perfmodel.data.schema import validate
    from perfmodel.runners import FRAMEWORKS, MODEL_FORMATS
    from perfmodel.runners.base import check_threads
    from perfmodel.zoo import export, network_names

    from .meta import new_run_id, run_metadata

    check_choice("framework", framework, FRAMEWORKS)
    check_choice("network", network, network_names())
    check_choice("counter source", counters, [c for c in COUNTER_SOURCES if c != "valgrind"])
    threads = check_threads(threads)
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise PerfmodelError(f"duration must be a finite number of seconds > 0, got {duration_s}")
    if not 0.01 <= period_s <= duration_s:
        raise PerfmodelError(f"the trace period must be between 0.01 s and the duration, got {period_s}")
    if not 0.01 <= sampler_period_s <= 10:
        raise PerfmodelError(f"sampler period must be between 0.01 and 10 s, got {sampler_period_s}")
    check_power_log(power_log, power_log_offset_s)  # exists, parses, finite offset
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
        from perfmodel.data import Dataset
        from perfmodel.data.store import DATASET_FILE

        if (Path(out) / DATASET_FILE).exists():
            existing = Dataset.open(out)
            done = resume and not force and existing.is_done(cell_id)
            if done:  # compared with the spec this very cell was traced with (its run's)
                own = _cell_spec(existing, cell_id)
                diffs = trace_spec_differences(own if own is not None else existing.latest_campaign("trace"), spec)
                if not diffs:  # nothing to measure: leave the data set untouched
                    return TraceResult(cell_id, existing.read_cell(cell_id), existing.cell_meta(cell_id),
                                       str(existing.path), skipped=True)
                raise PerfmodelError(
                    f"{cell_id} is already traced in {out} with a different spec (--force to trace it again, "
                    "replacing it; or another --out):\n  - " + "\n  - ".join(diffs))
            # a new trace: compared with the latest trace spec of the data set (it can hold campaign,
            # command and trace cells, each mode with its own spec)
            diffs = trace_spec_differences(existing.latest_campaign("trace"), spec)
            if diffs and not force:
                raise PerfmodelError(
                    f"the data set at {out} was collected with a different spec; refusing to add this trace to "
                    "it (use another --out, or --force to add it anyway):\n  - " + "\n  - ".join(diffs))
        # differences were refused above unless forced: merge=True only lets the forced case through
        ds = open_dataset(out, metadata, spec, resume=resume, merge=True, force=force,
                          measurement_diff=lambda old: trace_spec_differences(old, spec))
        opened.append(ds)
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

    with tempfile.TemporaryDirectory(prefix="perfmodel-trace-") as stream_dir:
        request["stream_path"] = stream_file = str(Path(stream_dir) / STREAM_FILE)
        with bar:
            task = bar.add_task(f"trace {framework} {network} t={threads}", total=duration_s)
            ticker = threading.Thread(target=tick, args=(task,), daemon=True)
            ticker.start()
            try:
                df, meta = spawn_worker(request, timeout, on_progress,
                                        hold_fd=ds.lock.fd if ds is not None and ds.lock is not None else None)
            except CellFailed as exc:
                if ds is not None:
                    ds.mark_failed(cell_id, str(exc), cmeta)
                kept = _keep_partial(stream_file, ds, cell_id, run_id, keys, cmeta, paths, image_folder,
                                     f"the worker failed: {exc}", interrupted=False)
                note = (f"; the {kept.meta['intervals']} interval(s) finished before it are kept as partial "
                        f"trace cell {kept.partial_cell_id}" + (f" in {ds.path}" if ds is not None else "")
                        if kept.partial_cell_id else "")
                raise PerfmodelError(f"trace failed: {exc}{note}") from None
            except KeyboardInterrupt:
                stop.set()
                return _keep_partial(stream_file, ds, cell_id, run_id, keys, cmeta, paths, image_folder,
                                     "interrupted (Ctrl-C)", interrupted=True)
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
    return TraceResult(cell_id, df, meta, str(ds.path) if ds is not None else None)


def _keep_partial(stream_file: str, ds: Any, cell_id: str, run_id: str, keys: dict[str, Any],
                  cmeta: dict[str, Any], paths: list, image_folder: str | None, reason: str, *,
                  interrupted: bool) -> TraceResult:
    """The intervals the worker finished before it was stopped: stored (with a data set) as the partial
    cell ``<cell_id>__partial-<run_id>`` (``status="partial"``) and returned as a :class:`TraceResult`."""
    from perfmodel.data.schema import validate

    from .worker import read_stream, stream_records

    setup, intervals = read_stream(stream_file)
    pid = partial_cell_id(cell_id, run_id)
    df = stream_records(intervals, **dict(keys, cell_id=pid))
    images = sum(float(r.get("value") or 0) for item in intervals for r in item["readings"]
                 if r.get("name") == "images")
    meta = dict(setup, **cmeta, status="partial", interrupted=interrupted, reason=reason, trace_cell_id=cell_id,
                intervals=len(intervals), images_total=int(images),
                covered_s=(float(intervals[-1]["t_end_s"]) - float(intervals[0]["t_start_s"])) if intervals else 0.0,
                images={"files": [p.name for p in paths][:200],
                        "source": image_folder or "synthetic 500x375 JPEGs (perfmodel.images.default_images)"})
    stored = None
    if intervals:
        if ds is not None:
            ds.write_cell(pid, df, meta)
            stored = pid
        else:
            df = validate(df, what=f"partial trace records of {cell_id!r}")
    return TraceResult(cell_id, df, meta, str(ds.path) if ds is not None else None, interrupted=interrupted,
                       partial_cell_id=stored)
