"""Run a campaign: every cell in a fresh worker, each finished cell written atomically into a data set.

:func:`run_campaign` is what ``perfmodel collect`` and the pipeline command call::

    result = run_campaign(CampaignSpec(frameworks=["onnxruntime"], images=20), "runs/ort")
    result.done, result.failed          # cell ids

Guarantees
----------
* The parent writes each finished cell with :meth:`perfmodel.data.Dataset.write_cell` (atomic), so a
  crash, a killed worker or Ctrl-C never loses a finished cell.
* A worker that fails, crashes, is killed or runs past ``spec.cell_timeout_s`` marks its cell failed
  (:meth:`~perfmodel.data.Dataset.mark_failed`, with the reason) and the campaign goes on. Ctrl-C kills
  the current worker, leaves that cell not done and stops cleanly (``result.interrupted``).
* A re-run into the same folder skips done cells (``resume=True``, the default) and retries failed
  ones; a done cell whose records file does not match its checksum (corrupt or modified) is measured
  again, and the outcome and a warning say so. It refuses a data set collected on another machine /
  library versions / counter source / cache geometry (the geometry only where both involve valgrind
  cells), or with a spec that measures cells differently (images, warm-up, ...: see
  :data:`~perfmodel.collect.spec.MEASUREMENT_FIELDS`, compared with the latest spec of the same mode:
  campaign, command or trace), unless ``merge=True`` (different spec allowed: only missing cells are
  added) or ``force=True`` (anything; with ``resume=False`` every cell is measured again and replaced).
  Nothing is overwritten silently; a re-measure that fails keeps the cell's earlier good records
  (:meth:`~perfmodel.data.Dataset.mark_failed`). A run that measures nothing leaves ``dataset.json``
  as it was.
* Models are exported in the parent before the workers start, so workers never race on the cache.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.workerproto import worker_env

from .spec import CampaignSpec, Cell, spec_differences

WORKER_MODULE = "perfmodel.collect.worker"

log = logging.getLogger("perfmodel.collect")


class CellFailed(Exception):
    """A cell's worker failed; ``str(exc)`` is the reason stored in the data set."""


@dataclass
class CellOutcome:
    cell_id: str
    status: str  # done | failed | skipped | interrupted
    reason: str = ""
    wall_s: float = 0.0
    rows: int = 0
    spawn_s: float | None = None  #: parent Popen -> first line of the worker module


@dataclass
class CampaignResult:
    path: str
    run_id: str
    outcomes: list[CellOutcome] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0

    def _ids(self, status: str) -> list[str]:
        return [o.cell_id for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[str]:
        return self._ids("done")

    @property
    def failed(self) -> list[str]:
        return self._ids("failed")

    @property
    def skipped(self) -> list[str]:
        return self._ids("skipped")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "run_id": self.run_id, "interrupted": self.interrupted,
                "wall_s": self.wall_s, "done": len(self.done), "failed": len(self.failed),
                "skipped": len(self.skipped), "cells": [asdict(o) for o in self.outcomes]}


# --------------------------------------------------------------------------------------------------
# workers


def spawn_worker(request: dict[str, Any], timeout_s: float | None,
                 on_progress: Callable[[int, int], None] | None = None, *,
                 hold_fd: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Run ``request`` in ``python -m perfmodel.collect.worker`` (the protocol of :mod:`perfmodel.workerproto`);
    returns (records, meta).

    Raises :class:`CellFailed` with the reason when the worker fails, crashes, is killed or times out;
    on ``KeyboardInterrupt`` the worker is killed and the interrupt re-raised. The worker dies with this
    process (:func:`~perfmodel.workerproto.die_with_parent`; call this from a thread that outlives the
    worker: Linux signals the worker when the thread that started it ends). ``hold_fd``: the data set's lock
    (:mod:`perfmodel.data.lock`), passed on so that a worker that outlives this process still holds the data
    set and a resume is refused until it has ended.
    """
    import pandas as pd

    from perfmodel.workerproto import WorkerError, run_worker

    label = request.get("cell_id", "cell")
    with tempfile.TemporaryDirectory(prefix="perfmodel-collect-") as tmp:
        try:
            reply = run_worker([sys.executable, "-m", WORKER_MODULE], request, workdir=tmp, label=label,
                               timeout_s=timeout_s, env=worker_env(), on_progress=on_progress,
                               die_with_parent=True, pass_fds=() if hold_fd is None else (hold_fd,))
        except WorkerError as exc:
            raise CellFailed(str(exc)) from None
        df = pd.read_pickle(Path(tmp) / "records.pkl")
        meta = reply.result
        meta["worker"] = reply.worker
        return df, meta


# --------------------------------------------------------------------------------------------------
# data set handling


def image_paths(images: int, image_folder: str | None, seed: int = 0) -> list[Path]:
    """The campaign's image files: the user's folder, or ``images`` deterministic synthetic JPEGs."""
    from perfmodel.images import default_images, list_images

    if image_folder:
        return list_images(Path(image_folder))
    return default_images(max(1, min(int(images), 100)), seed=seed)


def runs_valgrind(spec: dict | None) -> bool:
    """Whether a spec dict (campaign, command or trace) measures simulated (valgrind) cells."""
    return isinstance(spec, dict) and (spec.get("counters") == "valgrind" or bool(spec.get("simulate")))


def measurement_differences(old: dict | None, new: dict) -> list[str]:
    """:func:`~perfmodel.collect.spec.spec_differences`, with the cache ``geometry`` compared only when both
    specs measure valgrind cells (the geometry means nothing for timing cells)."""
    if not old:
        return []
    if not (runs_valgrind(old) and runs_valgrind(new)):
        old = {k: v for k, v in old.items() if k != "geometry"}
    return spec_differences(old, new)


def open_dataset(out: str | os.PathLike, metadata: dict[str, Any], campaign: dict[str, Any], *,
                 resume: bool, merge: bool, force: bool,
                 measurement_diff: Callable[[dict | None], list[str]] | None = None):
    """Create the data set, or re-open an existing one after the compatibility checks (module doc).

    ``campaign`` is the run's spec (a ``"mode"`` key for command and trace runs); ``measurement_diff(old)``
    lists its differences from ``old``, the latest recorded spec of the same mode
    (:meth:`~perfmodel.data.Dataset.latest_campaign`; default :func:`measurement_differences`). A
    difference is refused unless ``merge`` or ``force``; a compatibility difference (machine, versions,
    counter source, valgrind geometry) unless ``force``. The run is recorded in the data set (with the
    differences it was allowed to have) only when it writes something.

    The data set comes back holding its writer's lock (:mod:`perfmodel.data.lock`, taken before anything
    else; another writer is refused, naming the holder): the caller releases it (``ds.release()``).
    """

    from perfmodel.data.lock import DatasetLock
    from perfmodel.data.store import check_target

    out = Path(out)
    check_target(out)
    lock = DatasetLock.acquire(out)  # one writer per data set: before anything is read or decided
    try:
        return _open_locked(out, metadata, campaign, lock, resume=resume, merge=merge, force=force,
                            measurement_diff=measurement_diff)
    except BaseException:
        lock.release()
        raise


def _open_locked(out: Path, metadata: dict[str, Any], campaign: dict[str, Any], lock, *, resume: bool,
                 merge: bool, force: bool, measurement_diff: Callable[[dict | None], list[str]] | None):
    from perfmodel.data import Dataset
    from perfmodel.data.store import DATASET_FILE, campaign_mode, compat_differences, compat_fields

    if not (out / DATASET_FILE).exists():
        return Dataset.create(out, metadata, campaign=campaign, lock=lock)
    if not resume and not force:
        raise PerfmodelError(f"a data set already exists at {out}; resume it (--resume, the default), "
                             "choose another --out, or --force to measure every cell again")
    existing = Dataset.open(out)
    if measurement_diff is None:
        measurement_diff = lambda old: measurement_differences(old, campaign)  # noqa: E731
    mode = campaign_mode(campaign)
    diffs = measurement_diff(existing.latest_campaign(mode))
    if diffs and not (merge or force):
        raise PerfmodelError(
            f"the data set at {out} was collected with a different {mode} spec; refusing to add to it "
            "(use --merge to add the missing cells anyway, or another --out):\n  - " + "\n  - ".join(diffs))
    compat = compat_differences(existing.compat(), compat_fields(metadata, campaign))
    if compat and not force:
        raise PerfmodelError(
            f"the data set at {out} was collected with different settings; refusing to add to it (use --force "
            "to add to it anyway):\n  - " + "\n  - ".join(compat))
    ds = Dataset.create(out, metadata, campaign=campaign, exist_ok=True, allow_incompatible=force, lock=lock)
    if diffs and ds.pending_run is not None:
        ds.pending_run.update(spec_differences=diffs, allowed_by="force" if force else "merge")
    return ds


def _status(progress: bool):
    """``status(text)``: a context manager showing a spinner with ``text`` on stderr while a long step runs
    (a no-op when ``progress`` is off or stderr is not a terminal)."""
    import contextlib
    import sys

    if not progress or not sys.stderr.isatty():
        return lambda _text: contextlib.nullcontext()
    from rich.console import Console

    from perfmodel.runlog import terminal_stream

    con = Console(file=terminal_stream())  # stays on the terminal while framework output goes to the log
    return lambda text: con.status(text)


def _progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False,
                    disable=not enabled or not sys.stderr.isatty())


# --------------------------------------------------------------------------------------------------


def _record_keys(cell: Cell, run_id: str, board: str) -> dict[str, Any]:
    return {"run_id": run_id, "cell_id": cell.cell_id, "board": board, "framework": cell.framework,
            "network": cell.network, "threads": cell.threads, "workload": f"{cell.framework}/{cell.network}",
            "repeat": cell.repeat}


def _cell_meta(cell: Cell, spec: CampaignSpec, run_id: str) -> dict[str, Any]:
    return {"framework": cell.framework, "network": cell.network, "threads": cell.threads,
            "repeat": cell.repeat, "counter_source": cell.counter_source, "run_id": run_id,
            "spec_digest": spec.digest()}


def run_timing_cell(cell: Cell, spec: CampaignSpec, paths: Sequence[Path], keys: dict[str, Any],
                    model_path: str | None, on_progress=None, count_min_s: float = 0.0, *,
                    hold_fd: int | None = None) -> tuple[Any, dict[str, Any]]:
    """One timing cell in a fresh worker: ``spec.images`` counted images, or with ``count_min_s`` > 0 as
    many as fit in that many seconds (at least ``spec.images``; a quick sample of a few seconds)."""
    request = {"action": "cell", "cell_id": cell.cell_id, "framework": cell.framework, "network": cell.network,
               "threads": cell.threads, "count_min_s": float(count_min_s), "model_path": model_path,
               "options": {"seed": spec.seed},
               "counters": cell.counter_source, "images": [str(p) for p in paths], "n_images": spec.images,
               "warmup_images": spec.warmup_images, "warmup_min_s": spec.warmup_min_s,
               "sampler_period_s": spec.sampler_period_s, "power_log": spec.power_log,
               "power_log_offset_s": spec.power_log_offset_s, "keys": keys}
    df, meta = spawn_worker(request, spec.cell_timeout_s, on_progress, hold_fd=hold_fd)
    meta["images"] = {"counted": int(meta.get("counted_images", spec.images)),
                      "files": [p.name for p in paths][:200],
                      "source": spec.image_folder or "synthetic 500x375 JPEGs (perfmodel.images.default_images)"}
    return df, meta


def run_valgrind_cell(cell: Cell, spec: CampaignSpec, paths: Sequence[Path], keys: dict[str, Any],
                      model_path: str | None) -> tuple[Any, dict[str, Any]]:
    """One callgrind run of ``spec.valgrind_images`` images (per-image dumps), threads=1."""
    import pandas as pd

    from perfmodel.counters.valgrind import (COLLECTION_METHOD, SIM_DETAILS_ENV, THREAD_ENV, WorkloadSpec,
                                             helper_library, simulate)
    from perfmodel.data.schema import records_from_readings

    geometry = spec.cache_geometry()
    n = spec.valgrind_images
    marker = "client" if helper_library() is not None else "control"
    workload = WorkloadSpec("perfmodel.collect.worker:valgrind_workload",
                            {"framework": cell.framework, "network": cell.network,
                             "images": [str(p) for p in paths], "model_path": model_path, "seed": spec.seed})
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="perfmodel-simdetails-") as tmp:
        details_file = Path(tmp) / "runner.json"
        try:
            per_image = simulate(workload, n, geometry, timeout=spec.cell_timeout_s,
                                 env=worker_env({SIM_DETAILS_ENV: str(details_file)}), marker=marker)
        except PerfmodelError as exc:
            raise CellFailed(f"{cell.cell_id}: {exc}") from None
        try:  # the runner's settings under the simulator, to compare with the timing cells' (code_path_differences)
            runner_details = json.loads(details_file.read_text())
        except (OSError, ValueError) as exc:
            runner_details = {"error": f"the simulated worker wrote no runner details ({type(exc).__name__})"}
    frames = [records_from_readings(r, **keys, phase="image", image_index=i) for i, r in enumerate(per_image)]
    meta = {"simulated_images": n, "images": {"counted": n, "files": [paths[i % len(paths)].name for i in range(n)]},
            "cache_geometry": spec.geometry, "geometry": geometry.describe(), "marker": marker,
            "collection": COLLECTION_METHOD,
            "thread_env": THREAD_ENV, "wall_s": time.monotonic() - t0, "runner": runner_details,
            "per_image_work": "read file + pre-process + inference (model load and one warm-up image not counted)",
            "note": "simulated counts of this machine's build of the framework, not of the target board"}
    return pd.concat(frames, ignore_index=True), meta


def run_campaign(spec: CampaignSpec, out: str | os.PathLike, resume: bool = True, progress: bool = True,
                 merge: bool = False, *, force: bool = False,
                 on_cell: Callable[[CellOutcome], None] | None = None, calibrate: bool = True) -> CampaignResult:
    """Measure every cell of ``spec`` that is not done in the data set at ``out`` (module docstring).

    ``calibrate``: when timing cells are left to measure, first measure the machine's streaming bandwidth
    and compute speed at the spec's thread counts (:mod:`.calibrate`, ~2 s) into this run's metadata
    (``metadata["calibration"]``; a failure is recorded there, not raised): the throughput model prices
    FC weights with it.
    """
    from perfmodel.runners import MODEL_FORMATS

    from .meta import new_run_id, run_metadata

    t_begin = time.monotonic()
    spec = spec.validate()
    paths = image_paths(spec.images, spec.image_folder, spec.seed)
    run_id = new_run_id()
    # the cache geometry describes simulated cells only: recorded (and compared) for a valgrind run only
    metadata = run_metadata(spec.counters, spec.geometry if spec.runs_valgrind else None, run_id=run_id,
                            simulate=spec.simulate)
    campaign = spec.to_dict()
    cells = spec.cells()
    ds = open_dataset(out, metadata, campaign, resume=resume, merge=merge, force=force,
                      measurement_diff=lambda old: measurement_differences(old, campaign))
    try:
        ds.remove_stale_temp_files()
        board = metadata["board"]
        result = CampaignResult(str(ds.path), run_id)
        done: set[str] = set()
        redo: dict[str, str] = {}  # done cells whose records file does not match its checksum
        if resume:
            done = set(ds.done_cells())
            redo = {cid: problem for cid, problem in ds.unverified_cells().items() if cid in done}
            done -= set(redo)
        todo = [c for c in cells if c.cell_id not in done]
        for c in cells:
            if c.cell_id in done:
                result.outcomes.append(CellOutcome(c.cell_id, "skipped", "already done"))
            elif c.cell_id in redo:
                log.warning("%s: %s; measuring it again", c.cell_id, redo[c.cell_id])
        status = _status(progress)
        if calibrate and any(c.counter_source != "valgrind" for c in todo):
            from .calibrate import safe_calibration

            with status("calibrating this machine's streaming bandwidth and GEMM speed"):
                ds.record_run_metadata(run_id, "calibration", safe_calibration(spec.threads))

        # export every model the cells need here, before any worker runs
        models: dict[tuple[str, str], str | Exception] = {}
        for c in todo:
            key = (c.framework, c.network)
            if key not in models:
                try:
                    from perfmodel.zoo import export

                    with status(f"model for {c.framework} x {c.network}: {MODEL_FORMATS[c.framework]} export "
                                "(built once, then cached; a minute or so per network on first use)"):
                        models[key] = str(export(c.network, MODEL_FORMATS[c.framework], seed=spec.seed))
                except PerfmodelError as exc:
                    models[key] = exc

        with _progress_bar(progress) as bar:
            task = bar.add_task("cells", total=len(todo))
            img_task = bar.add_task("images", total=spec.images, visible=False)
            for cell in todo:
                bar.update(task, description=f"{cell.framework} {cell.network} t={cell.threads} r={cell.repeat} "
                                             f"[{cell.counter_source}]")
                keys = _record_keys(cell, run_id, board)
                cmeta = _cell_meta(cell, spec, run_id)
                t0 = time.monotonic()
                again = f"measured again: {redo[cell.cell_id]}" if cell.cell_id in redo else ""
                outcome = CellOutcome(cell.cell_id, "done", again)
                try:
                    model = models[(cell.framework, cell.network)]
                    if isinstance(model, Exception):
                        raise CellFailed(f"{cell.cell_id}: model export failed: {model}")
                    if cell.counter_source == "valgrind":
                        bar.update(img_task, visible=False)
                        df, meta = run_valgrind_cell(cell, spec, paths, keys, model)
                    else:
                        bar.update(img_task, completed=0, total=spec.images, visible=True)
                        df, meta = run_timing_cell(cell, spec, paths, keys, model,
                                                   lambda d, n: bar.update(img_task, completed=d, total=n),
                                                   hold_fd=ds.lock.fd if ds.lock is not None else None)
                    meta.update(cmeta)
                    meta["status"] = "done"
                    if again:
                        meta["replaced"] = again
                    ds.write_cell(cell.cell_id, df, meta)
                    outcome.rows = int(len(df))
                    outcome.spawn_s = meta.get("worker", {}).get("spawn_s")
                except (CellFailed, PerfmodelError) as exc:  # PerfmodelError: records that do not validate
                    outcome.status, outcome.reason = "failed", str(exc)
                    if ds.mark_failed(cell.cell_id, str(exc), cmeta):
                        outcome.reason = f"re-measure failed, the cell's earlier records are kept: {exc}"
                except KeyboardInterrupt:
                    outcome.status, outcome.reason = "interrupted", "interrupted (Ctrl-C); not done"
                    result.interrupted = True
                outcome.wall_s = time.monotonic() - t0
                result.outcomes.append(outcome)
                if on_cell is not None:
                    on_cell(outcome)
                bar.advance(task)
                if result.interrupted:
                    break
        result.wall_s = time.monotonic() - t_begin
    finally:
        ds.release()  # the writer's lock (the workers it was passed to have ended)
    return result
