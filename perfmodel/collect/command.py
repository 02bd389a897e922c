"""Whole-command measurement: the study's two-phase method for any inference program.

``s1`` = the full command (load + N images), ``s2`` = a load-only command; per image = (s1 - s2) / N,
averaged over repeats (full and load runs alternate so that drift affects both). Without a load-only
command the figures are s1 / N, which includes the load: the records' ``source`` says so and the
measurement's ``note`` explains it.

Counters: ``perf`` (``perf stat``; hardware events this machine cannot count are NaN + reason),
``software`` (wall clock + getrusage of the child: CPU time, faults, context switches), ``auto``
(``perf`` where the perf tool is installed, else ``software``), ``valgrind`` (the whole command under
callgrind's cache and branch simulation; ``provenance="simulated"``).

Records are ``phase="command"``; :func:`perfmodel.data.wide_per_cell` reads them as per-image values.

:func:`collect_command` stores one cell per command into a data set with the campaign's rules: a
command that cannot be parsed or found is refused before anything is written; a resume compares the
spec with the data set's latest command spec and with the done cell's own settings (images, load-only
command) and refuses differences unless ``merge`` (keep the cell) or ``force`` (measure it again); a
command that fails is recorded as a failed cell (an earlier good measurement of it is kept).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import resource
import shlex
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError, check_choice
from perfmodel.procs import run_bounded
from perfmodel.readings import Reading

COMMAND_COUNTERS = ("auto", "perf", "software", "valgrind")

log = logging.getLogger("perfmodel.collect")


def _argv(cmd: str | Sequence[str]) -> list[str]:
    if isinstance(cmd, str):
        try:
            argv = shlex.split(cmd)
        except ValueError as exc:  # e.g. an unclosed quote
            raise PerfmodelError(f"cannot parse the command {cmd!r}: {exc}") from None
    else:
        argv = [str(a) for a in cmd]
    if not argv:
        raise PerfmodelError("empty command")
    return argv


def _check_found(argv: Sequence[str]) -> None:
    """:class:`PerfmodelError` when the program of ``argv`` is not found (or not executable) on the PATH."""
    if shutil.which(argv[0]) is None:
        raise PerfmodelError(f"command not found or not executable: {argv[0]!r}")


def _check_counts(images: Any, repeats: Any, counters: str) -> None:
    check_choice("counter source", counters, COMMAND_COUNTERS)
    if isinstance(images, bool) or int(images) < 1:
        raise PerfmodelError(f"images must be >= 1, got {images}")
    if int(repeats) < 1:
        raise PerfmodelError(f"repeats must be >= 1, got {repeats}")


def _checked_commands(argv: str | Sequence[str], load_argv: str | Sequence[str] | None, images: Any, repeats: Any,
                      counters: str) -> tuple[list[str], list[str] | None]:
    """The command and the load-only command (or None) as argv lists, after the checks of the counts, the
    counter source and that both programs are found."""
    full = _argv(argv)
    load = _argv(load_argv) if load_argv is not None else None
    _check_counts(images, repeats, counters)
    for a in (full, load):
        if a is not None:
            _check_found(a)
    return full, load


def command_cell_id(argv: Sequence[str], counters: str) -> str:
    digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()[:10]
    return f"command__{digest}__{counters}"


def _check_rc(rc: int | None, argv: Sequence[str]) -> None:
    if rc not in (0, None):
        raise PerfmodelError(f"command exited with code {rc}: {shlex.join(argv)}")


def _run_software(argv: Sequence[str], timeout: float | None) -> tuple[float, dict[str, Reading]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:  # in its own process group, ended as a whole past the timeout (perfmodel.procs)
        proc = run_bounded(list(argv), timeout=timeout)
    except FileNotFoundError:
        raise PerfmodelError(f"command not found: {argv[0]!r}") from None
    wall = time.monotonic() - t0
    _check_rc(proc.returncode, argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    src = "getrusage(RUSAGE_CHILDREN)"
    cpu_ms = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1e3
    vals = {
        "task_clock_ms": ("ms", cpu_ms),
        "user_time_ms": ("ms", (after.ru_utime - before.ru_utime) * 1e3),
        "system_time_ms": ("ms", (after.ru_stime - before.ru_stime) * 1e3),
        "minor_faults": ("count", float(after.ru_minflt - before.ru_minflt)),
        "major_faults": ("count", float(after.ru_majflt - before.ru_majflt)),
        "context_switches": ("count", float(after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw)),
    }
    return wall, {n: Reading(n, v, u, src, "software") for n, (u, v) in vals.items()}


def _run_perf(argv: Sequence[str], events: Sequence[str] | None, timeout: float | None) -> tuple[float, dict[str, Reading]]:
    from perfmodel.counters.perf_event import default_events
    from perfmodel.counters.perf_stat import run_perf_stat

    t0 = time.monotonic()
    res = run_perf_stat(list(argv), list(events or default_events()), timeout=timeout)
    wall = time.monotonic() - t0
    _check_rc(res.returncode, argv)
    return wall, res.readings()


def _run_valgrind(argv: Sequence[str], geometry: Any, timeout: float | None) -> tuple[float, dict[str, Reading]]:
    import shutil

    from perfmodel.counters.valgrind import THREAD_ENV, dump_readings, parse_callgrind_file

    exe = shutil.which("valgrind")
    if exe is None:
        raise PerfmodelError("valgrind not installed; simulated counters need valgrind (callgrind)")
    with tempfile.TemporaryDirectory(prefix="perfmodel-cmd-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        vg = [exe, "--tool=callgrind", "--cache-sim=yes", "--branch-sim=yes", *geometry.valgrind_args(),
              "--dump-instr=no", "--compress-strings=no", f"--callgrind-out-file={out}"]
        env = dict(os.environ, **THREAD_ENV)
        t0 = time.monotonic()
        proc = run_bounded(vg + list(argv), env=env, timeout=timeout, text=True, what="callgrind run of the command",
                           shown=argv)
        wall = time.monotonic() - t0
        _check_rc(proc.returncode, argv)
        if not out.exists():
            raise PerfmodelError(f"callgrind wrote no output: {proc.stderr.strip()[-500:]}")
        dump = parse_callgrind_file(out)
        source = f"valgrind {dump.creator or 'callgrind'} cache-sim ({geometry.describe()}), whole command"
        return wall, dump_readings(dump, source)


def measure_command(argv: str | Sequence[str], images: int, load_argv: str | Sequence[str] | None = None,
                    counters: str = "auto", repeats: int = 1, *, events: Sequence[str] | None = None,
                    geometry: Any = None, timeout: float | None = None, run_id: str | None = None,
                    board: str | None = None, cell_id: str | None = None, workload: str | None = None,
                    framework: str = "", network: str = "", threads: int = 1, around_full=None):
    """``(records, meta)``: per-image figures of a whole command (module docstring) as long records with
    ``phase="command"``, and how they were measured (``command``, ``load_command``, ``images``, ``repeats``,
    ``counters``, ``counters_used``, ``method``, ``wall_s`` per repeat, ``geometry``; ``note``: how a per-image
    figure was made).

    ``latency_ms`` = (wall(s1) - wall(s2)) / N; ``cpu_percent`` = CPU time / wall time of the same
    difference (software counters). A per-image value that comes out <= 0 (load-only run longer than
    the full run: N too small to resolve) is NaN with that reason, never a negative count.
    ``around_full``: called with ``"start"`` and ``"end"`` around each full run (e.g. to read the machine's
    state over it, not over the load-only run).
    """
    import pandas as pd

    from perfmodel.data.schema import records_from_readings, validate

    from .meta import new_run_id, system_info

    full, load = _checked_commands(argv, load_argv, images, repeats, counters)
    images, repeats = int(images), int(repeats)
    used = counters
    if counters == "auto":
        from perfmodel.counters.perf_stat import perf_binary

        used = "perf" if perf_binary() is not None else "software"
    if used == "valgrind":
        from perfmodel.counters.valgrind import CacheGeometry

        geometry = (geometry or CacheGeometry()).validate()
        run = lambda a: _run_valgrind(a, geometry, timeout)  # noqa: E731
    elif used == "perf":
        run = lambda a: _run_perf(a, events, timeout)  # noqa: E731
    else:
        run = lambda a: _run_software(a, timeout)  # noqa: E731

    per_rep: list[dict[str, Reading]] = []
    walls: list[tuple[float, float]] = []
    for _ in range(repeats):
        if around_full is not None:
            around_full("start")
        w1, r1 = run(full)
        if around_full is not None:
            around_full("end")
        w2, r2 = run(load) if load is not None else (0.0, {})
        walls.append((w1, w2))
        per_rep.append({"__wall1": w1, "__wall2": w2, "full": r1, "load": r2})  # type: ignore[dict-item]

    method = "(s1-s2)/N" if load is not None else "s1/N (no load-only command: includes model load)"
    out: dict[str, Reading] = {}
    names = list(dict.fromkeys(n for rep in per_rep for n in rep["full"]))  # type: ignore[union-attr]
    for name in names:
        vals, unit, source, prov, reason = [], "count", "", "real", None
        for rep in per_rep:
            a = rep["full"].get(name)  # type: ignore[union-attr]
            b = rep["load"].get(name) if load is not None else None  # type: ignore[union-attr]
            if a is None:
                continue
            unit, source, prov = a.unit, a.source, a.provenance
            if not a.available:
                reason = a.reason
                continue
            if load is not None and (b is None or not b.available):
                reason = (b.reason if b is not None else None) or "missing from the load-only run"
                continue
            vals.append((a.value - (b.value if b is not None else 0.0)) / images)
        mean = sum(vals) / len(vals) if vals else math.nan
        if vals and (mean > 0 or (mean == 0 and unit != "ms")):
            out[name] = Reading(name, mean, unit, f"{source} {method}", prov)
        elif vals:
            out[name] = Reading.missing(name, f"per-image value <= 0 by {method} (load-only run counted more; "
                                              "use more images)", unit, source)
        else:
            out[name] = Reading.missing(name, reason or "not counted", unit, source)
    if used in ("perf", "software"):
        from .worker import complete_events

        out = complete_events(out, used, {})
    lat = [(w1 - w2) / images * 1e3 for w1, w2 in walls]
    if all(v > 0 for v in lat):
        out["latency_ms"] = Reading("latency_ms", sum(lat) / len(lat), "ms", f"time.monotonic {method}", "real")
    else:
        out["latency_ms"] = Reading.missing("latency_ms", f"wall time per image <= 0 by {method}; use more images",
                                            "ms", "time.monotonic")
    tc = out.get("task_clock_ms")
    if used != "valgrind" and tc is not None and tc.available and out["latency_ms"].available:
        out["cpu_percent"] = Reading("cpu_percent", 100.0 * tc.value / out["latency_ms"].value, "%",
                                     f"task_clock / wall {method}", "software")
    else:
        out["cpu_percent"] = Reading.missing("cpu_percent", "needs CPU time and wall time per image "
                                             "(not available with simulated counts)" if used == "valgrind"
                                             else "CPU time or wall time per image not available", "%")
    from .meta import usable_readings

    out = usable_readings(out)
    cid = cell_id or command_cell_id(full, counters)
    board = board or str(system_info().get("board") or "unknown")
    df = records_from_readings(out, run_id=run_id or new_run_id(), cell_id=cid, board=board,
                               framework=framework, network=network, threads=int(threads),
                               workload=workload or f"command:{Path(full[0]).name}", phase="command", repeat=0)
    df = validate(df, what="command records")
    meta = {"command": full, "load_command": load, "images": images, "repeats": repeats,
            "counters": counters, "counters_used": used, "method": method,
            "wall_s": [list(w) for w in walls],
            "geometry": geometry.describe() if used == "valgrind" else None,
            "note": ("per image = (s1 - s2) / N, mean over repeats" if load is not None else
                     "no load-only command: per image = s1 / N, which includes start-up and model load")}
    return df, meta


#: settings of a done command cell that make a new measurement of the same command not comparable
CELL_FIELDS = ("images", "load_command")


def _cell_differences(old: dict, new: dict) -> list[str]:
    return [f"{k}: {json.dumps(old.get(k))} != {json.dumps(new.get(k))}" for k in CELL_FIELDS
            if k in old and old.get(k) != new.get(k)]


def collect_command(out: str | os.PathLike, argv: str | Sequence[str], images: int,
                    load_argv: str | Sequence[str] | None = None, counters: str = "auto", repeats: int = 1, *,
                    geometry_dict: dict | None = None, resume: bool = True, force: bool = False,
                    merge: bool = False, timeout: float | None = None) -> dict[str, Any]:
    """:func:`measure_command` into the data set at ``out`` (one cell); returns a summary dict.

    Checked before anything is written: the command and load-only command parse and are found, the counts.
    On resume the spec is compared with the data set's latest command spec (images, counters, valgrind
    geometry) and a done cell of this command with its own settings (images, load-only command): a
    difference is refused unless ``merge`` (the done cell is kept: ``skipped``) or ``force`` (measured
    again). A done cell whose records file does not match its checksum is measured again (``reason``
    says so). A measurement that fails is recorded as a failed cell (an earlier good measurement of the
    cell is kept) and raised as :class:`PerfmodelError`. A run that measures nothing does not touch
    ``dataset.json``.
    """
    from perfmodel.data import Dataset
    from perfmodel.data.store import DATASET_FILE

    from .campaign import measurement_differences, open_dataset
    from .meta import new_run_id, run_metadata
    from .spec import geometry_from_dict

    full, load = _checked_commands(argv, load_argv, images, repeats, counters)
    run_id = new_run_id()
    geometry = geometry_from_dict(geometry_dict) if geometry_dict else None
    spec = {"mode": "command", "command": full, "load_command": load,
            "images": int(images), "repeats": int(repeats), "counters": counters,
            "geometry": geometry_dict if counters == "valgrind" else None}
    cid = command_cell_id(full, counters)
    cell_diffs: list[str] = []
    if resume and not force and (Path(out) / DATASET_FILE).is_file():
        existing = Dataset.open(out)
        if existing.is_done(cid):
            cell_diffs = _cell_differences(existing.cell_meta(cid), spec)
            if not cell_diffs:  # this very command, measured with these settings: nothing to do or compare
                return {"path": str(existing.path), "cell_id": cid, "status": "skipped", "reason": "already done"}

    def differences(old: dict | None) -> list[str]:
        diffs = measurement_differences(old, spec)
        fields = {d.split(":", 1)[0] for d in diffs}
        return diffs + [f"cell {cid}: {d}" for d in cell_diffs if d.split(":", 1)[0] not in fields]

    metadata = run_metadata(counters, spec["geometry"], run_id=run_id)
    ds = open_dataset(out, metadata, spec, resume=resume, merge=merge, force=force,
                      measurement_diff=differences)
    try:  # the data set's writer lock, held until the cell is stored
        if resume and not force and ds.is_done(cid):
            reason = "already done"
            if cell_diffs:  # allowed by merge
                reason += " (measured with other settings, kept: " + "; ".join(cell_diffs) + ")"
            return {"path": str(ds.path), "cell_id": cid, "status": "skipped", "reason": reason}
        again = ""
        problem = ds.unverified_cells().get(cid) if resume else None
        if problem is not None:
            again = f"measured again: {problem}"
            log.warning("%s: %s; measuring it again", cid, problem)
        cmeta = {"mode": "command", "command": full, "load_command": load, "images": int(images),
                 "repeats": int(repeats), "counters": counters, "run_id": run_id}
        t0 = time.monotonic()
        try:
            df, measured = measure_command(full, images, load_argv, counters, repeats, geometry=geometry,
                                           timeout=timeout, run_id=run_id, board=metadata["board"], cell_id=cid)
        except PerfmodelError as exc:
            kept = ds.mark_failed(cid, str(exc), cmeta)
            raise PerfmodelError(f"{exc} (cell {cid} marked failed in {ds.path}"
                                 + ("; its earlier records are kept)" if kept else ")")) from None
        how = {k: v for k, v in measured.items() if k != "note"}
        note = measured["note"]
        meta = dict(how, status="done", run_id=run_id, note=note, wall_s_total=time.monotonic() - t0)
        if again:
            meta["replaced"] = again
        ds.write_cell(cid, df, meta, attrs={"meta": how, "note": note})  # the records file keeps them too
        values = {r.metric: (None if math.isnan(r.value) else r.value) for r in df.itertuples()}
        summary = {"path": str(ds.path), "cell_id": cid, "status": "done", "note": note,
                   "per_image": values}
        if again:
            summary["reason"] = again
        return summary
    finally:
        ds.release()


# -- a quick sample of a command's progress lines, with counts per image ----------------------------------

#: the interval of ``perf stat -I`` around a line sample (ms): the counts of the sample's own window are the
#: intervals overlapping it, an edge interval by the share of it inside the window
SAMPLE_PERF_INTERVAL_MS = 100
SAMPLE_COUNTERS = ("auto", "perf", "software")


def resolve_sample_counters(counters: str) -> tuple[str, str | None]:
    """``(source, why no PMU counts)`` of a line sample: ``perf`` (``--counters perf``, or ``auto`` where perf
    is installed and the kernel exposes a CPU PMU) or ``software`` (the command's CPU time, psutil);
    the second item says why hardware counts are absent (None when perf counts them)."""
    from perfmodel.counters.perf_event import core_pmus
    from perfmodel.counters.perf_stat import perf_binary

    if counters not in SAMPLE_COUNTERS:
        raise PerfmodelError(f"a command's line sample counts with --counters {', '.join(SAMPLE_COUNTERS)}, not "
                             f"{counters!r} (valgrind: the whole command under the cache simulator, with a "
                             "model: perfmodel predict --model M -- CMD, or perfmodel collect --command)")
    if counters == "perf":
        if perf_binary() is None:
            raise PerfmodelError("--counters perf: perf not found; install linux-perf (linux-tools)")
        return "perf", None
    if counters == "software":
        return "software", "not counted: counter source 'software' (the command's CPU time only) was chosen"
    if perf_binary() is None:
        return "software", "not counted: perf is not installed (install linux-perf and give --counters perf)"
    if not core_pmus():
        return "software", ("not counted: no CPU PMU exposed to this machine (/sys/bus/event_source/devices "
                            "lists none; a VM without PMU passthrough)")
    return "perf", None


def _window_counts(text: str, a: float, b: float) -> tuple[dict[str, Reading], str]:
    """Counts of ``perf stat -x, -I`` output over ``[a, b]`` s (perf's clock, from its start): each interval
    ``(previous stamp, stamp]`` by the share of it inside the window. ``({}, reason)`` without intervals.
    An event is NaN with the reason, never an undercount, where perf's intervals end before ``b`` or where
    any interval overlapping the window did not count it (``<not counted>``, ``<not supported>``, absent)."""
    from perfmodel.counters.perf_stat import parse_perf_stat

    res = parse_perf_stat(text)
    groups = res.intervals()
    if not groups:
        return {}, "perf stat wrote no interval"
    overlapping: list[tuple[float, dict]] = []
    prev = 0.0
    for stamp, rows in groups:
        share = max(0.0, min(b, stamp) - max(a, prev)) / (stamp - prev) if stamp > prev else 0.0
        prev = stamp
        if share > 0:
            overlapping.append((share, {r.event: r for r in rows}))
    last = groups[-1][0]
    short = (f"perf stat's intervals end at {last:.3f} s, before the sample's end at {b:.3f} s (the window's end "
             "was not counted)") if last < b else ""
    from perfmodel.counters.perf_stat import canonical_name
    from perfmodel.counters.perf_event import _SOFTWARE

    events = list(dict.fromkeys(e for _, rows in overlapping for e in rows))
    out: dict[str, Reading] = {}
    for event in events:
        name = canonical_name(event)
        src = f"perf stat -I {SAMPLE_PERF_INTERVAL_MS}:{event}, the intervals overlapping the sample"
        row = next(rows[event] for _, rows in overlapping if event in rows)
        unit = "ms" if row.unit == "msec" else (row.unit or "count")
        gaps = [rows.get(event) for _, rows in overlapping if event not in rows or not rows[event].available]
        if len(gaps) == len(overlapping):
            status = next((r.status for r in gaps if r is not None and r.status), "not counted")
            reason = f"perf stat: {status} (by this machine, over the sample)"
        elif gaps:
            status = next((r.status for r in gaps if r is not None and r.status), "absent")
            reason = (f"perf stat: {status} in {len(gaps)} of the {len(overlapping)} intervals overlapping the "
                      "sample (a partial count is not a count)")
        elif short:
            reason = short
        else:
            total = sum(share * rows[event].value for share, rows in overlapping)
            out.setdefault(name, Reading(name, total, unit, src, "software" if row.base_event in _SOFTWARE
                                         else "real"))
            continue
        out.setdefault(name, Reading.missing(name, reason, unit, src))
    return out, ""


def sample_command_counted(argv: Sequence[str], *, counters: str = "auto", events: Sequence[str] | None = None,
                           sensors=None, **sample_kw):
    """A line sample of a command (:func:`perfmodel.collect.lines.sample_command`) with its counts per image:
    ``(sample, readings, how)``. ``perf``: the command runs under ``perf stat -x, -I 100`` (perf with
    ``LC_ALL=C``, the command with the user's own ``LC_ALL``: ``env LC_ALL=C perf stat ... -- env
    LC_ALL=<own> CMD``, ``env -u LC_ALL`` where it was unset) and the counts
    of the intervals overlapping the sample's window (end of the warm-up to the last counted image) are
    divided by the images counted; ``software``: the command's CPU time per image (psutil, needs
    ``sensors``' state points). Hardware events not counted are NaN with the reason, never a number."""
    from perfmodel.counters.perf_event import default_events
    from perfmodel.counters.perf_stat import perf_binary, perf_event_names

    from .lines import sample_command
    from .worker import STUDY_EVENTS, complete_events

    used, no_pmu = resolve_sample_counters(counters)
    readings: dict[str, Reading] = {}
    with tempfile.TemporaryDirectory(prefix="perfmodel-sample-stat-") as tmp:
        wrap: list[str] = []
        stat = Path(tmp) / "stat.csv"
        if used == "perf":
            names = perf_event_names(list(events or default_events()))
            # perf under LC_ALL=C (as run_perf_stat: no decimal commas in its -x, output); the command itself
            # under the user's own LC_ALL again (set back, or unset where it was unset)
            env_bin = shutil.which("env") or "/usr/bin/env"
            own = os.environ.get("LC_ALL")
            wrap = [env_bin, "LC_ALL=C", str(perf_binary()), "stat", "-x,", "-o", str(stat), "-I",
                    str(SAMPLE_PERF_INTERVAL_MS), "-e", ",".join(names), "--", env_bin,
                    *(["-u", "LC_ALL"] if own is None else [f"LC_ALL={own}"])]
        smp = sample_command(list(argv), sensors=sensors, wrap=wrap, **sample_kw,
                             linger_s=2.5 * SAMPLE_PERF_INTERVAL_MS / 1e3 if wrap else 0.0)
        if used == "perf":
            text = stat.read_text(errors="replace") if stat.exists() else ""
            window, why = _window_counts(text, smp.t_first - smp.launched, smp.t_last - smp.launched)
            if why:
                raise PerfmodelError(f"--counters perf: {why} for the sample of {shlex.join(list(argv))}")
            readings = {n: (Reading(n, r.value / smp.images, r.unit, r.source + " / images", r.provenance)
                            if r.available else r) for n, r in window.items()}
    if used == "software":
        a, b = smp.state_start, smp.state_end
        if a is not None and b is not None and math.isfinite(a.cpu_s) and math.isfinite(b.cpu_s):
            readings["task_clock_ms"] = Reading("task_clock_ms", (b.cpu_s - a.cpu_s) * 1e3 / smp.images, "ms",
                                                "psutil cpu_times of the command's process tree over the "
                                                "sample / images", "software")
        else:
            readings["task_clock_ms"] = Reading.missing("task_clock_ms", (a and a.cpu_reason) or (b and b.cpu_reason)
                                                        or "no CPU time read at both ends of the sample", "ms")
    readings = complete_events(readings, "perf", {} if no_pmu is None else dict.fromkeys(STUDY_EVENTS, no_pmu))
    how = {"counters": counters, "counters_used": used, "no_hardware_counts": no_pmu,
           "method": (f"perf stat -I {SAMPLE_PERF_INTERVAL_MS} intervals overlapping the sample / images"
                      if used == "perf" else "the command's CPU time over the sample / images (psutil)")}
    return smp, readings, how


def save_command_cell(out: str | os.PathLike, records, cell_meta: dict[str, Any], *, cell_id: str,
                      run_id: str, spec: dict[str, Any]) -> str:
    """Store one measured command sample (``phase="command"`` records, per image) as its own cell of the
    data set at ``out`` (created when absent; an existing one is joined after the campaign's
    compatibility checks: machine, versions, counter source). Returns the data set's path."""
    from .campaign import open_dataset
    from .meta import run_metadata

    metadata = run_metadata(str(spec.get("counters_used") or spec.get("counters") or "software"), None,
                            run_id=run_id)
    ds = open_dataset(out, metadata, spec, resume=True, merge=True, force=False, measurement_diff=lambda old: [])
    try:
        ds.write_cell(cell_id, records, dict(cell_meta, status="done", run_id=run_id),
                      attrs={"meta": {k: v for k, v in cell_meta.items() if k != "note"},
                             "note": cell_meta.get("note", "")})
        return str(ds.path)
    finally:
        ds.release()
