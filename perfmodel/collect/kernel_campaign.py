"""Kernel profiling campaign: sampled one-kernel models and whole networks, timed interleaved, resumable.

``run_kernel_campaign(folder, units, ...)`` writes a kernel data set (:mod:`perfmodel.data.kernelset`):

* ``units.jsonl`` - each unit's configuration and, per framework, the kernels that framework runs for it
  (:func:`perfmodel.zoo.kernels.detect_kernels` on the unit's graph);
* ``timings.csv`` - one row per (round, framework, threads, item): median / min / reps of the per-call times;
* ``kernelset.json`` - the calls (plan, units, timing settings), the machine, and a speed calibration at the start
  and end of each call.

Plan: ``rounds`` rounds; in each, the framework x thread blocks in a shuffled order, each block one fresh worker
(:mod:`perfmodel.collect.kernel_worker`) timing every network (shuffled) and the round's share of the units
(units are split over the rounds, networks are timed in every round: their repeat disagreement is the noise
floor). Finished rows are appended (and fsynced) after each block, and a crashed / killed block's rows are kept
(the worker appends them as it goes); re-running the same call resumes, skipping rows already there. An item that
killed its worker is recorded with the error and not retried.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from perfmodel.paths import atomic_write_text
from perfmodel.workerproto import WorkerError, WorkerFailed, WorkerTimeout, run_worker, worker_env

TIMING_COLUMNS = ("key", "round", "framework", "threads", "kind", "item", "median_ms", "min_ms", "reps", "error",
                  "wall_s", "t_unix")
#: the file in a block's workdir where the worker names the item it starts (the one to blame if it dies)
CURRENT_FILE = "current"
#: frameworks whose per-node profile of a network is read (ONNX Runtime's profiler: op, shapes, duration;
#: OpenCV's getPerfProfile per layer, matched to the kernels of the same ONNX file; TensorFlow's step stats of a
#: v1 session, summed per kernel of the Keras layers)
PROFILED_FRAMEWORKS = ("onnxruntime", "opencv", "tensorflow")
DEFAULT_TIMING = {"unit": {"warmup": 3, "min_reps": 5, "min_time_s": 0.15, "max_reps": 200},
                  "network": {"warmup": 2, "min_reps": 7, "min_time_s": 0.5, "max_reps": 50}}


def done_keys(folder: Path) -> set[str]:
    path = folder / "timings.csv"
    if not path.is_file():
        return set()
    with open(path, newline="") as f:
        return {row["key"] for row in csv.DictReader(f)}


def append_rows(folder: Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    path = folder / "timings.csv"
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TIMING_COLUMNS, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow(r)
        f.flush()
        os.fsync(f.fileno())


def prepare_units(folder: Path, units: Sequence[Any], frameworks: Sequence[str],
                  say: Callable[[str], None] = print) -> dict[str, dict[str, str]]:
    """Export every unit (TFLite, ONNX) and record its kernels per framework in ``units.jsonl`` (appends new
    units). Returns unit id -> {format: path}."""
    from perfmodel.data.kernelset import read_jsonl
    from perfmodel.runlog import native_output_to_log
    from perfmodel.zoo.kernels import kernel_dicts
    from perfmodel.zoo.units import export_unit, unit_graph

    path = folder / "units.jsonl"
    known: dict[str, dict[str, Any]] = {d["id"]: d for d in read_jsonl(path)} if path.is_file() else {}
    files: dict[str, dict[str, str]] = {}
    t0 = time.time()
    _fresh_line(path)
    with open(path, "a") as out:
        for i, u in enumerate(units):
            with native_output_to_log(f"export unit {u.id}"):
                files[u.id] = {fmt: str(export_unit(u, fmt)) for fmt in ("tflite", "onnx")}
                have = known.get(u.id, {}).get("kernels", {})
                if any(fw not in have for fw in frameworks):  # new, or timed now on a framework it lacks
                    kernels = {**have, **kernel_dicts(unit_graph(u), [fw for fw in frameworks if fw not in have])}
                    rec = {"id": u.id, "unit": u.as_dict(), "kernels": kernels}
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    known[u.id] = rec
            if (i + 1) % 25 == 0 or i + 1 == len(units):
                say(f"  units exported: {i + 1}/{len(units)} ({time.time() - t0:.0f} s)")
    return files


def plan_blocks(frameworks: Sequence[str], threads: Sequence[int], rounds: int, seed: int) -> list[tuple[int, str, int]]:
    rng = random.Random(seed)
    blocks = []
    for r in range(rounds):
        order = [(fw, t) for fw in frameworks for t in threads]
        rng.shuffle(order)
        blocks += [(r, fw, t) for fw, t in order]
    return blocks


def run_kernel_campaign(folder: str | os.PathLike, units: Sequence[Any], *, networks: Sequence[str],
                        frameworks: Sequence[str] = ("tensorflow", "litert", "onnxruntime", "opencv"),
                        threads: Sequence[int] = (1, 2), rounds: int = 2, seed: int = 0,
                        round_offset: int = 0, network_rounds: Sequence[int] | None = None,
                        profile_networks: Sequence[str] = (), call_info: dict[str, Any] | None = None,
                        block_timeout_s: float = 3600.0, python: str | None = None,
                        say: Callable[[str], None] = print) -> Path:
    """Run (or resume) the campaign into ``folder``; see the module docstring. ``round_offset`` numbers the
    rounds of a later call (adaptive sampling adds rounds); ``network_rounds``: rounds (absolute numbers) that
    time the networks (default: all). ``python``: the interpreter that runs the workers (default this one): a
    virtual environment with another release of a framework, perfmodel importable in it. The frameworks'
    versions the workers ran are recorded in the call (``versions``)."""
    from perfmodel.collect.calibrate import safe_calibration
    from perfmodel.sysinfo import system_info

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    python = python or sys.executable
    from perfmodel.data.kernelset import KERNELSET_FILE, KERNELSET_FORMAT

    meta_path = folder / KERNELSET_FILE
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.is_file() else {
        "format": KERNELSET_FORMAT, "version": 1, "calibrations": [], "calls": []}
    say(f"kernel campaign -> {folder}: {len(units)} units, {len(networks)} networks, "
        f"{len(frameworks)} frameworks x threads {list(threads)}, {rounds} rounds")
    started = _now()
    t_export = time.time()
    files = prepare_units(folder, units, frameworks, say)
    export_s = round(time.time() - t_export, 1)
    meta["calibrations"].append({"when": _now(), "at": "start", **safe_calibration(list(threads))})
    call = {"started": started, "export_s": export_s, "units": len(units), "networks": list(networks),
            "profile_networks": list(profile_networks), **(call_info or {}), "frameworks": list(frameworks),
            "threads": list(threads), "rounds": [round_offset + r for r in range(rounds)], "seed": seed,
            "timing": DEFAULT_TIMING, "python": python}
    meta["calls"].append(call)
    meta.setdefault("machine", system_info())
    _write_json(meta_path, meta)
    done = done_keys(folder)
    rng = random.Random(seed)
    blocks = plan_blocks(frameworks, threads, rounds, seed)
    t_start = time.time()
    versions: dict[str, str] = {}
    for b, (r, fw, t) in enumerate(blocks):
        r_abs = round_offset + r
        items: list[dict[str, Any]] = []
        nets = list(networks) if network_rounds is None or r_abs in network_rounds else []
        rng.shuffle(nets)
        share = [u for i, u in enumerate(units) if i % rounds == r]
        rng.shuffle(share)
        # networks spread through the block (interleaved with units), not all first
        unit_items = [{"kind": "unit", "item": u.id, "unit": u.as_dict(), "files": files[u.id]} for u in share]
        net_items = [{"kind": "network", "item": n} for n in nets]
        if fw in PROFILED_FRAMEWORKS:  # the framework's per-node profile of each network (unprofiled timing apart)
            net_items += [{"kind": "profile", "item": n} for n in profile_networks]
            rng.shuffle(net_items)
        step = max(1, len(unit_items) // max(1, len(net_items)))
        merged: list[dict[str, Any]] = []
        for i, ni in enumerate(net_items):
            merged.append(ni)
            merged += unit_items[i * step:(i + 1) * step]
        merged += unit_items[len(net_items) * step:]
        for it in merged:
            it["key"] = f"{r_abs}|{fw}|{t}|{it['kind']}|{it['item']}"
        todo = [it for it in merged if it["key"] not in done]
        if not todo:
            continue
        say(f"  block {b + 1}/{len(blocks)} round {r_abs} {fw} x{t}: {len(todo)} items "
            f"({time.time() - t_start:.0f} s so far)")
        versions.update(_run_block(folder, fw, t, r_abs, todo, block_timeout_s, say, python))
        done = done_keys(folder)
    meta = json.loads(meta_path.read_text())
    meta["calls"][-1]["versions"] = {**meta["calls"][-1].get("versions", {}), **versions}
    meta["calibrations"].append({"when": _now(), "at": "end", **safe_calibration(list(threads))})
    meta["calls"][-1]["finished"] = _now()
    meta["calls"][-1]["wall_s"] = round(time.time() - t_start, 1)
    _write_json(meta_path, meta)
    return folder


def _run_block(folder: Path, fw: str, threads: int, r: int, todo: list[dict[str, Any]], timeout_s: float,
               say: Callable[[str], None], python: str = sys.executable) -> dict[str, str]:
    """Time ``todo`` in workers until every item has a row. A worker that dies is followed by a fresh one for the
    rest; the item it was on (the worker names it in ``current`` before starting it) gets an error row and is
    not retried. A worker that dies before starting any item twice, refuses the block, or runs past
    ``timeout_s`` stops the block with an error (finished rows are kept: re-run to resume). Returns the
    framework versions the workers reported."""
    remaining = list(todo)
    versions: dict[str, str] = {}
    early_deaths = 0
    while remaining:
        with tempfile.TemporaryDirectory(prefix="perfmodel-kblock-") as wd:
            request = {"framework": fw, "threads": threads, "items": remaining, "timing": DEFAULT_TIMING}
            err: WorkerError | None = None
            try:
                reply = run_worker([python, "-m", "perfmodel.collect.kernel_worker"], request, workdir=wd,
                                   label=f"kernels {fw} x{threads}", timeout_s=timeout_s, env=worker_env(),
                                   die_with_parent=True)
                versions.update((getattr(reply, "result", None) or {}).get("versions", {}))
            except WorkerError as exc:
                err = exc
            finally:  # also on Ctrl-C: what the worker finished is kept
                rows = _harvest(folder, Path(wd) / "rows.jsonl", remaining, r, fw, threads)
                current_path = Path(wd) / CURRENT_FILE
                current = current_path.read_text().strip() if current_path.is_file() else None
        got = {row["key"] for row in rows}
        remaining = [it for it in remaining if it["key"] not in got]
        if err is None or not remaining:
            if err is not None:
                say(f"    worker error after its last item: {str(err).splitlines()[0]}")
            return versions
        first = str(err).splitlines()[0]
        if isinstance(err, WorkerFailed):  # it replied with an error: it refused the block (framework missing, ...)
            raise err.reworded(f"kernels {fw} x{threads}: {err.error}")
        if isinstance(err, WorkerTimeout):
            raise err.reworded(f"kernels {fw} x{threads}: the block ran past {timeout_s:g} s ({len(remaining)} "
                               "items left; finished rows are kept: re-run to resume)")
        bad = next((it for it in remaining if it["key"] == current), None)
        if bad is None:  # died before starting an item: its start-up, not an item
            early_deaths += 1
            if early_deaths >= 2:
                raise err.reworded(f"kernels {fw} x{threads}: the worker died twice before timing anything: {first}")
            continue
        early_deaths = 0
        remaining.remove(bad)
        say(f"    {bad['kind']} {bad['item']} ended its worker: {first[:200]}")
        append_rows(folder, [{"key": bad["key"], "round": r, "framework": fw, "threads": threads,
                              "kind": bad["kind"], "item": bad["item"], "median_ms": math.nan, "min_ms": math.nan,
                              "reps": 0, "error": first[:300], "wall_s": math.nan, "t_unix": round(time.time(), 3)}])
    return versions


def _harvest(folder: Path, rows_path: Path, remaining: Sequence[dict[str, Any]], r: int, fw: str,
             threads: int) -> list[dict[str, Any]]:
    rows = []
    if rows_path.is_file():
        for line in rows_path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
    keys = {it["key"] for it in remaining}
    rows = [row for row in rows if row.get("key") in keys]
    profiles = [row for row in rows if row.get("nodes")]
    if profiles:
        _fresh_line(folder / "profiles.jsonl")
        with open(folder / "profiles.jsonl", "a") as f:
            for row in profiles:
                f.write(json.dumps({"key": row["key"], "round": r, "framework": fw, "threads": threads,
                                    "network": row["item"], "nodes": row["nodes"]}) + "\n")
            f.flush()
            os.fsync(f.fileno())
    append_rows(folder, [{**row, "round": r, "framework": fw, "threads": threads} for row in rows])
    return rows


def _fresh_line(path: Path) -> None:
    """End a JSON-lines file cut mid-line by a kill with a newline, so what is appended starts on its own line
    (the cut line is skipped by the reader)."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str))


__all__ = ["DEFAULT_TIMING", "TIMING_COLUMNS", "run_kernel_campaign", "prepare_units", "done_keys"]
