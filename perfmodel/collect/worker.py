"""The measuring process of one campaign cell: ``python -m perfmodel.collect.worker``.

Each cell runs in a fresh Python process (as pyperf does): TensorFlow fixes its thread pools per process,
OpenCV's thread count is process-wide, and one framework's allocator and caches must not disturb the next.
It speaks the worker protocol of :mod:`perfmodel.workerproto` (the parent, :mod:`perfmodel.collect.campaign`,
sends the request on stdin; the reply's result is the cell metadata): besides the reply it writes
``records.pkl`` (the long records, a pandas DataFrame) into the request's ``workdir``, and it reports progress
(:func:`~perfmodel.workerproto.report_progress`) as it counts images or intervals.

Actions
-------
``cell``: open the counters (before the model loads, so that ``inherit`` covers the framework's worker
threads), start the sensor sampler, load the runner, warm up (``warmup_images`` images and at least
``warmup_min_s`` seconds), then for each counted image: ``t0`` -> read file -> ``t1`` -> pre-process ->
``t2`` -> inference -> ``t3`` -> counter read (one group read); ``n_images`` images, or with
``count_min_s`` until that long has passed (at least ``n_images``, at most ``MAX_TIMED_IMAGES``). Per
image records: ``read_ms``,
``preprocess_ms``, ``inference_ms``, ``latency_ms`` (= t3 - t0, batch 1) on :func:`time.monotonic`
(``t_start_s`` / ``t_end_s``), and the counter deltas of that image. Per cell (``phase="cell"``): CPU %
of the process over the counted images (getrusage), machine CPU % (psutil), wall time and the sensor
window (temperature, frequency, power; NaN + reason where there is no sensor).

``trace``: the same set-up, then continuous inference over the image set for ``duration_s``; every
``period_s`` (closed at the first image end after it) one ``phase="trace"`` record with ``images``
completed, the counter deltas (event counts and CPU %) and the sensor window of the interval. With
``stream_path`` in the request, the set-up details and then every finished interval are also appended
to that file as they happen, one JSON line each (:func:`append_stream`, read back by
:func:`read_stream`), so that a trace interrupted (Ctrl-C) or killed keeps its finished intervals.

Sensor windows of a cell: a sensor snapshot is taken right before and right after the counted images
and counts for the window (``margin_s``), so a cell shorter than the sampler period (3 images, ~20 ms)
still gets the readings that exist.

Test hook: when ``PERFMODEL_TEST_CRASH_CELL`` equals the request's ``cell_id`` the worker SIGKILLs itself
after the warm-up (a crash the parent must survive).
"""

from __future__ import annotations

import time

_T_STARTED = time.monotonic()  # as early as possible: spawn overhead = this - parent's Popen time

import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from perfmodel.errors import PerfmodelError  # noqa: E402
from perfmodel.readings import Reading  # noqa: E402
from perfmodel.workerproto import die_with_parent, report_progress  # noqa: E402, F401 - die_with_parent: re-export
from perfmodel.workerproto import serve as serve_request  # noqa: E402

CRASH_ENV = "PERFMODEL_TEST_CRASH_CELL"
CLOCK_SOURCE = "time.monotonic"
MAX_TIMED_IMAGES = 5000  # a count_min_s cell stops here even before its time (records stay small)

#: the study's events: always recorded (NaN + reason where this machine cannot count them)
STUDY_EVENTS = ("instructions", "cycles", "l1d_accesses", "l1d_refills", "l2d_accesses", "l2d_refills",
                "branches", "branch_misses")


def open_cell_counters(source: str) -> tuple[Any, dict[str, Any]]:
    """Opened (not started) counters for a timing cell, and a description for the cell metadata."""
    from perfmodel.counters import open_counters

    counters = open_counters(source)
    sessions = getattr(counters, "sessions", [counters])
    desc = {"source": source, "sessions": [type(s).__name__ for s in sessions],
            "perf_event_mode": next((getattr(s, "mode", None) for s in sessions if hasattr(s, "mode")), None),
            "unavailable": dict(getattr(counters, "unavailable", {}) or {})}
    return counters, desc


def complete_events(readings: dict[str, Reading], source: str, unavailable: Mapping[str, str]) -> dict[str, Reading]:
    """Add the study's events the session did not report, as NaN with the reason (never dropped)."""
    from perfmodel.metrics import EVENTS

    for name in STUDY_EVENTS:
        if name in readings:
            continue
        if source == "software":
            reason = "not counted: counter source 'software' (OS counters only) was chosen"
        elif name in unavailable:
            reason = unavailable[name]
        else:
            import platform

            reason = f"no perf event for {name} on this CPU architecture ({platform.machine()})"
        readings[name] = Reading.missing(name, reason, EVENTS[name][1], "perf_event_open")
    return readings


def _timing(name: str, ms: float) -> Reading:
    return Reading(name, max(ms, 0.0), "ms", CLOCK_SOURCE, "real")


def _rusage_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def append_stream(fh: Any, kind: str, **fields: Any) -> None:
    """Append one JSON line ``{"kind": kind, ...}`` to an open stream file and flush it (a line the process
    dies in the middle of is skipped by :func:`read_stream`)."""
    fh.write(json.dumps({"kind": kind, **fields}, default=str) + "\n")
    fh.flush()


def read_stream(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(setup, intervals)`` from a trace stream file: the set-up line's fields and each complete interval
    line (``t_start_s``, ``t_end_s``, ``readings``: a list of :class:`Reading` dicts). A last line cut short
    by a kill is skipped; a missing file is no intervals."""
    setup: dict[str, Any] = {}
    intervals: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except OSError:
        return setup, intervals
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict):
            continue
        if item.get("kind") == "setup":
            setup = {k: v for k, v in item.items() if k != "kind"}
        elif item.get("kind") == "interval" and isinstance(item.get("readings"), list):
            intervals.append(item)
    return setup, intervals


def stream_records(intervals: Sequence[Mapping[str, Any]], **keys: Any):
    """The ``phase="trace"`` long records of streamed intervals (:func:`read_stream`)."""
    import pandas as pd

    from perfmodel.data.schema import empty_records, records_from_readings

    frames = []
    for item in intervals:
        readings = [Reading(**r) for r in item["readings"]]
        frames.append(records_from_readings(readings, **keys, phase="trace", t_start_s=float(item["t_start_s"]),
                                            t_end_s=float(item["t_end_s"])))
    return pd.concat(frames, ignore_index=True) if frames else empty_records()


def _system_busy() -> tuple[float, float] | None:
    try:
        from perfmodel.counters.software import _system_times

        busy, total = _system_times()
        return None if busy is None else (busy, total)
    except Exception:  # noqa: BLE001
        return None


def _setup(req: dict[str, Any]):
    """Counters (opened first), sensors, then the runner."""
    from perfmodel.collect.meta import SensorWindow
    from perfmodel.runners import get_runner

    counters, cdesc = open_cell_counters(req["counters"])
    sensors = SensorWindow(float(req.get("sampler_period_s", 0.1)), req.get("power_log"),
                           float(req.get("power_log_offset_s", 0.0))).start()
    t = time.monotonic()
    runner = get_runner(req["framework"], req["network"], int(req["threads"]), req.get("model_path"),
                        **dict(req.get("options") or {}))
    load_s = time.monotonic() - t
    return counters, cdesc, sensors, runner, load_s


def _one(runner: Any, path: Path) -> tuple[float, float, float, float]:
    t0 = time.monotonic()
    data = path.read_bytes()
    t1 = time.monotonic()
    x = runner.preprocess(data, path.name)
    t2 = time.monotonic()
    runner.infer(x)
    t3 = time.monotonic()
    return t0, t1, t2, t3


def _warmup(runner: Any, paths: Sequence[Path], images: int, min_s: float) -> tuple[int, float]:
    start = time.monotonic()
    n = 0
    while n < images or time.monotonic() - start < min_s:
        _one(runner, paths[n % len(paths)])
        n += 1
    return n, time.monotonic() - start


def _maybe_crash(cell_id: str) -> None:
    if os.environ.get(CRASH_ENV) and os.environ.get(CRASH_ENV) == cell_id:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def run_cell(req: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Measure one timing cell in this process; returns (long records, cell metadata)."""
    import pandas as pd

    from perfmodel.data.schema import records_from_readings

    keys = dict(req["keys"])
    paths = [Path(p) for p in req["images"]]
    n_images = int(req["n_images"])
    count_min_s = float(req.get("count_min_s") or 0.0)
    counters, cdesc, sensors, runner, load_s = _setup(req)
    try:
        warm_n, warm_s = _warmup(runner, paths, int(req.get("warmup_images", 3)), float(req.get("warmup_min_s", 0.5)))
        _maybe_crash(req["cell_id"])
        frames = []
        rows: list[tuple[int, float, float, float, float, dict[str, Reading]]] = []
        s0 = sensors.snapshot()  # right before the counted window: a short cell still gets readings
        gc_was = gc.isenabled()
        gc.disable()
        try:
            sys0 = _system_busy()
            cpu0 = _rusage_cpu_s()
            counters.start()
            w0 = time.monotonic()
            i, last_end = 0, w0
            # ``count_min_s``: keep counting images until one ends that long after the start (a quick sample of
            # a few seconds; judged by the last image's own end time, not by a later clock read), at most
            # MAX_TIMED_IMAGES
            while i < n_images or (last_end - w0 < count_min_s and i < MAX_TIMED_IMAGES):
                t0, t1, t2, t3 = _one(runner, paths[i % len(paths)])
                last_end = t3
                rows.append((i, t0, t1, t2, t3, counters.read()))
                i += 1
                report_progress(i, max(n_images, i))
            w1 = time.monotonic()
            cpu1 = _rusage_cpu_s()
            sys1 = _system_busy()
        finally:
            if gc_was:
                gc.enable()
        s1 = sensors.snapshot()  # right after it
        unavailable = cdesc["unavailable"]
        for i, t0, t1, t2, t3, readings in rows:
            readings = complete_events(dict(readings), req["counters"], unavailable)
            readings.update({
                "read_ms": _timing("read_ms", (t1 - t0) * 1e3),
                "preprocess_ms": _timing("preprocess_ms", (t2 - t1) * 1e3),
                "inference_ms": _timing("inference_ms", (t3 - t2) * 1e3),
                "latency_ms": _timing("latency_ms", (t3 - t0) * 1e3),
            })
            frames.append(records_from_readings(readings, **keys, phase="image", image_index=i,
                                                t_start_s=t0, t_end_s=t3))
        wall = w1 - w0
        cell: dict[str, Reading] = {
            "cpu_percent": Reading("cpu_percent", 100.0 * (cpu1 - cpu0) / wall, "%",
                                   "getrusage(RUSAGE_SELF) / wall clock", "software") if wall > 0 else
            Reading.missing("cpu_percent", "zero-length cell", "%"),
            "wall_ms": Reading("wall_ms", wall * 1e3, "ms", CLOCK_SOURCE, "real"),
        }
        from perfmodel.counters.software import system_cpu_between

        # busy / total ticks of all CPUs (never above 100 x ncpu); NaN for a cell too short for the ticks
        cell["system_cpu_percent"] = system_cpu_between(sys0, sys1, wall)
        cell.update(sensors.window(w0, w1, margin_s=sensors.margin(w0, w1, s0, s1)))
        frames.append(records_from_readings(cell, **keys, phase="cell", t_start_s=w0, t_end_s=w1))
        meta = {
            "load_s": load_s, "warmup_images": warm_n, "warmup_s": warm_s, "counted_images": len(rows),
            "distinct_images": len(paths), "wall_s": wall, "counters": cdesc, "sensors": sensors.status(),
            "runner": runner.details(), "clock": CLOCK_SOURCE,
        }
        return pd.concat(frames, ignore_index=True), meta
    finally:
        sensors.stop()
        counters.close()
        runner.close()


def run_trace(req: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Continuous inference for ``duration_s``, one ``phase="trace"`` record per interval."""
    import pandas as pd

    from perfmodel.data.schema import records_from_readings

    keys = dict(req["keys"])
    paths = [Path(p) for p in req["images"]]
    duration = float(req["duration_s"])
    period = float(req["period_s"])
    stream_path = req.get("stream_path")
    stream = open(stream_path, "a", encoding="utf-8") if stream_path else None  # noqa: SIM115 - closed below
    counters, cdesc, sensors, runner, load_s = _setup(req)
    try:
        warm_n, warm_s = _warmup(runner, paths, int(req.get("warmup_images", 3)), float(req.get("warmup_min_s", 0.5)))
        if stream is not None:
            append_stream(stream, "setup", load_s=load_s, warmup_images=warm_n, warmup_s=warm_s,
                          duration_s=duration, period_s=period, distinct_images=len(paths), counters=cdesc,
                          sensors=sensors.status(), runner=runner.details(), clock=CLOCK_SOURCE,
                          worker={"pid": os.getpid(), "started_monotonic": _T_STARTED,
                                  "python": sys.version.split()[0]})
        _maybe_crash(req["cell_id"])
        frames = []
        unavailable = cdesc["unavailable"]
        total_steps = max(1, int(math.ceil(duration / period)))
        counters.start()
        t_int = t_begin = time.monotonic()
        end = t_begin + duration
        n_int = n_total = intervals = 0
        i = 0
        while True:
            _one(runner, paths[i % len(paths)])
            i += 1
            n_int += 1
            now = time.monotonic()
            if now - t_int >= period or now >= end:
                readings = complete_events(dict(counters.read()), req["counters"], unavailable)
                readings["images"] = Reading("images", float(n_int), "count", "perfmodel.collect.worker", "real")
                readings.update(sensors.window(t_int, now))
                frames.append(records_from_readings(readings, **keys, phase="trace", t_start_s=t_int, t_end_s=now))
                if stream is not None:
                    append_stream(stream, "interval", t_start_s=t_int, t_end_s=now,
                                  readings=[dict(r.to_dict(), value=float(r.value)) for r in readings.values()])
                n_total += n_int
                intervals += 1
                t_int, n_int = now, 0
                report_progress(min(intervals, total_steps), total_steps)
            if now >= end:
                break
        meta = {"load_s": load_s, "warmup_images": warm_n, "warmup_s": warm_s, "duration_s": duration,
                "period_s": period, "intervals": intervals, "images_total": n_total,
                "wall_s": time.monotonic() - t_begin, "distinct_images": len(paths), "counters": cdesc,
                "sensors": sensors.status(), "runner": runner.details(), "clock": CLOCK_SOURCE}
        return pd.concat(frames, ignore_index=True), meta
    finally:
        if stream is not None:
            stream.close()
        sensors.stop()
        counters.close()
        runner.close()


# --------------------------------------------------------------------------------------------------
# valgrind pass: a workload factory for perfmodel.counters.valgrind.simulate


def valgrind_workload(framework: str, network: str, images: Sequence[str], model_path: str | None = None,
                      seed: int = 0, **options: Any) -> Callable[[int], object]:
    """Per-image body for the simulated pass: read file + pre-process + infer image ``i`` (one thread).

    Set-up (model load, one warm-up inference) runs before instrumentation starts, so it is not counted.
    """
    from perfmodel.runners import get_runner

    paths = [Path(p) for p in images]
    if not paths:
        raise PerfmodelError("valgrind workload: no images")
    runner = get_runner(framework, network, 1, model_path, **options)

    def body(i: int) -> object:
        path = paths[i % len(paths)]
        return runner.infer(runner.preprocess(path.read_bytes(), path.name))

    body(0)
    from perfmodel.counters.valgrind import SIM_DETAILS_ENV

    details_path = os.environ.get(SIM_DETAILS_ENV)
    if details_path:  # what the runner did under the simulator (e.g. TensorFlow's oneDNN switch), for the cell
        try:
            Path(details_path).write_text(json.dumps(runner.details(), default=str))
        except Exception:  # noqa: BLE001 - optional: the campaign records that none were written
            pass
    return body


# --------------------------------------------------------------------------------------------------


def serve(req: dict[str, Any]) -> dict[str, Any]:
    """Run the request's action; the records go to ``records.pkl`` in its ``workdir``, the metadata is the
    result (the parent adds the worker's own metadata, :class:`~perfmodel.workerproto.WorkerReply`)."""
    action = req.get("action")
    if action == "cell":
        df, meta = run_cell(req)
    elif action == "trace":
        df, meta = run_trace(req)
    else:
        raise PerfmodelError(f"unknown worker action {action!r}")
    df.to_pickle(Path(req["workdir"]) / "records.pkl")
    return meta


def main() -> int:
    return serve_request(serve, started=_T_STARTED, die_with_parent=True)


if __name__ == "__main__":
    sys.exit(main())
