"""A board farm on Dask distributed: one scheduler, one Dask worker per board, campaigns across them.

* ``perfmodel fleet scheduler`` -> :func:`serve_scheduler` (loopback unless told; TLS with :func:`make_security`).
* ``perfmodel fleet worker ADDRESS --board NAME`` -> :func:`serve_board`: a :class:`BoardWorker` with one thread
  and one resource slot ``board-NAME=1`` (cells on one board never overlap), named after the board; it
  publishes the board's facts (:func:`board_facts`: machine, library versions, counter and sensor sources) in
  the scheduler's metadata under ``perfmodel-boards/NAME``. It executes only perfmodel's cell tasks
  (:func:`run_board_cell` under a ``perfmodel-cell-`` key) and has Dask's ``run`` / ``run_coroutine`` /
  ``plugin-add`` / ``upload_file`` / actor handlers removed (docs/fleet.md says what this does and does not
  protect against).
* ``perfmodel collect --scheduler ADDRESS`` -> :func:`run_fleet_campaign`: every chosen board gets the
  campaign's cells; on the board each cell runs as in :func:`~perfmodel.collect.campaign.run_campaign` (a fresh
  worker process, :func:`~perfmodel.collect.campaign.run_timing_cell`); the records come back to the client,
  which writes each cell atomically into one data set (:meth:`perfmodel.data.Dataset.write_cell`). Cell ids are
  ``<board>@<cell id>``, every record's ``board`` column is the board name, the data set's metadata lists each
  board's facts (``metadata["fleet"]["boards"]``). A board lost mid-cell: Dask keeps its cells waiting for a
  worker with that board's resource (re-run when it returns); after ``board_timeout_s`` without it they are
  marked failed with the reason. A board whose framework versions differ from the client's is refused, naming
  them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from perfmodel.errors import PerfmodelError
from perfmodel.readings import json_safe

from .campaign import (CampaignResult, CellFailed, CellOutcome, _cell_meta, _progress_bar, _record_keys,
                       image_paths, measurement_differences, open_dataset, run_timing_cell, run_valgrind_cell)
from .spec import CampaignSpec, Cell

DEFAULT_PORT = 8786
META_KEY = "perfmodel-boards"
TASK_PREFIX = "perfmodel-cell-"
#: how long fetching a finished cell's result may take: a board killed between finishing a cell and the fetch
#: takes the result with it, and an unbounded wait would hang the campaign (the board timeout never ran)
GATHER_TIMEOUT_S = 30.0
RESOURCE_PREFIX = "board-"
#: testing only: a JSON object of library versions the worker publishes instead of the installed ones
VERSIONS_OVERRIDE_ENV = "PERFMODEL_FLEET_VERSIONS_OVERRIDE"
#: Dask worker handlers that run code other than a cell task: removed from a board's worker
UNSAFE_HANDLERS = ("run", "run_coroutine", "plugin-add", "plugin-remove", "upload_file", "actor_execute",
                   "actor_attribute")
_BOARD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")


def require_dask() -> None:
    """Refuse, with the install command, where Dask distributed is not installed (it is the ``fleet`` extra)."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise PerfmodelError("the board farm needs Dask distributed, which is not installed here: "
                             "pip install -c requirements.lock -e '.[fleet]' (or pip install distributed)")


def check_board_name(name: str) -> str:
    """A board name: 1-63 letters, digits, ``.`` and ``-`` starting with a letter or digit (it becomes part of
    the cell ids and file names)."""
    if not isinstance(name, str) or not _BOARD.match(name):
        raise PerfmodelError(f"invalid board name {name!r}: use 1-63 letters, digits, '.' and '-', starting with "
                             "a letter or digit")
    return name


def board_resource(board: str) -> str:
    return RESOURCE_PREFIX + board


def fleet_cell_id(board: str, cell_id: str) -> str:
    return f"{board}@{cell_id}"


def make_security(ca_file: str | None, cert: str | None, key: str | None):
    """Dask's :class:`distributed.Security` for mutual TLS (the same CA, certificate and key for the scheduler,
    the workers and the client), or None without TLS options. All three or none."""
    require_dask()
    given = [x for x in (ca_file, cert, key) if x]
    if not given:
        return None
    if len(given) != 3:
        raise PerfmodelError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
    for p in (ca_file, cert, key):
        if not os.path.isfile(str(p)):
            raise PerfmodelError(f"TLS file {p} does not exist")
    from distributed.security import Security

    return Security(tls_ca_file=str(ca_file), tls_client_cert=str(cert), tls_client_key=str(key),
                    tls_scheduler_cert=str(cert), tls_scheduler_key=str(key), tls_worker_cert=str(cert),
                    tls_worker_key=str(key), require_encryption=True)


def _check_address(address: str, security) -> str:
    if "://" not in address:
        address = ("tls://" if security is not None else "tcp://") + address
    if security is not None and not address.startswith("tls://"):
        raise PerfmodelError(f"with TLS options the scheduler address must be tls://..., got {address}")
    return address


# --------------------------------------------------------------------------------------------------
# board side


def board_facts(board: str) -> dict[str, Any]:
    """What the scheduler and ``fleet status`` know of a board: :func:`perfmodel.sysinfo.system_info`, library
    versions, counter sources (:func:`perfmodel.counters.available_sources`) and sensor sources
    (:func:`perfmodel.sensors.discover`); a part that fails is replaced by its reason."""
    from .meta import library_versions, system_info, tool_version

    facts: dict[str, Any] = {"board": board, "tool_version": tool_version(), "published": time.time()}
    try:
        facts["system"] = system_info()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        facts["system"] = {"error": f"{type(exc).__name__}: {exc}"}
    facts["versions"] = library_versions()
    override = os.environ.get(VERSIONS_OVERRIDE_ENV)
    if override:
        facts["versions"].update({str(k): str(v) for k, v in json.loads(override).items()})
        facts["versions_overridden"] = f"{VERSIONS_OVERRIDE_ENV} (testing)"
    try:
        from perfmodel.counters import available_sources

        facts["counters"] = [{k: s.get(k) for k in ("name", "available", "reason")} for s in available_sources()]
    except Exception as exc:  # noqa: BLE001
        facts["counters"] = [{"name": "counters", "available": False, "reason": f"{type(exc).__name__}: {exc}"}]
    try:
        from perfmodel.sensors import discover

        facts["sensors"] = [{k: s.get(k) for k in ("kind", "name", "available", "reason")} for s in discover()]
    except Exception as exc:  # noqa: BLE001
        facts["sensors"] = [{"kind": "sensors", "name": "sensors", "available": False,
                             "reason": f"{type(exc).__name__}: {exc}"}]
    return json_safe(facts)


def run_board_cell(board: str, cell: dict, spec: dict, run_id: str, cell_id: str) -> dict[str, Any]:
    """The one task a board's worker executes: cell ``cell`` of ``spec`` as :func:`run_campaign` runs it (a
    fresh worker process), with records keyed ``cell_id`` / ``board``. Returns ``{"ok", "records", "meta",
    "task_s"}`` or ``{"ok": False, "reason"}``."""
    t0 = time.monotonic()
    from distributed import get_worker

    here = get_worker().name
    if here != board:
        return {"ok": False, "reason": f"{cell_id}: sent to worker {here!r}, not board {board!r}"}
    c = Cell(**cell)
    try:
        s = CampaignSpec.from_dict(spec).validate()
        paths = image_paths(s.images, s.image_folder, s.seed)
        from perfmodel.runners import MODEL_FORMATS
        from perfmodel.zoo import export

        try:
            model = str(export(c.network, MODEL_FORMATS[c.framework], seed=s.seed))
        except PerfmodelError as exc:
            raise CellFailed(f"{cell_id}: model export failed on board {board}: {exc}") from None
        keys = {**_record_keys(c, run_id, board), "cell_id": cell_id}
        if c.counter_source == "valgrind":
            df, meta = run_valgrind_cell(c, s, paths, keys, model)
        else:
            df, meta = run_timing_cell(c, s, paths, keys, model)
        meta.update(_cell_meta(c, s, run_id))
        meta.update(status="done", board=board, fleet={"cell": c.cell_id, "worker": get_worker().address})
        return {"ok": True, **pack_records(df), "meta": json.dumps(json_safe(meta), default=str), "task_s": time.monotonic() - t0}
    except (CellFailed, PerfmodelError) as exc:
        return {"ok": False, "reason": f"{exc} (board {board})", "task_s": time.monotonic() - t0}


def pack_records(df, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A cell's records as plain data for the trip to the client: Parquet bytes and ``attrs`` (facts the records
    file keeps, :meth:`perfmodel.data.Dataset.write_cell`) as JSON (never a pickled DataFrame: a board may run
    another pandas than the client)."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return {"records_parquet": buf.getvalue(), "attrs": json.dumps(json_safe(dict(attrs or {})), default=str)}


def unpack_records(reply: dict[str, Any]):
    """``(records, attrs)`` of :func:`pack_records`."""
    import io

    import pandas as pd

    return pd.read_parquet(io.BytesIO(reply["records_parquet"])), json.loads(reply.get("attrs") or "{}")


def task_problem(key: Any, run_spec: Any) -> str | None:
    """Why a board's worker refuses a task (None: one of perfmodel's cell tasks)."""
    if not isinstance(key, str) or not key.startswith(TASK_PREFIX):
        return f"task {key!r} refused: this worker runs only perfmodel cell tasks ({TASK_PREFIX}*)"
    if getattr(run_spec, "func", None) is not run_board_cell:
        return f"task {key!r} refused: it does not call perfmodel.collect.fleet.run_board_cell"
    return None


def _board_worker_class():
    from distributed import Worker
    from distributed.worker_state_machine import ExecuteFailureEvent

    class BoardWorker(Worker):
        """A Dask worker that executes only :func:`run_board_cell` tasks and publishes its board's facts."""

        def __init__(self, *args, board: str, facts: dict, **kwargs):
            super().__init__(*args, **kwargs)
            self.board, self.facts = board, facts
            for name in UNSAFE_HANDLERS:
                self.handlers.pop(name, None)

        async def start_unsafe(self):
            await super().start_unsafe()
            await self.scheduler.set_metadata(keys=[META_KEY, self.board], value=self.facts)
            return self

        async def execute(self, key, *, stimulus_id):
            ts = self.state.tasks.get(key)
            problem = task_problem(key, getattr(ts, "run_spec", None)) if ts is not None else None
            if problem is None and ts is not None and ts.dependencies:
                problem = f"task {key!r} refused: a cell task has no dependencies"
            if problem is not None:
                return ExecuteFailureEvent.from_exception(PermissionError(problem), key=key, run_id=ts.run_id,
                                                          stimulus_id=stimulus_id)
            return await super().execute(key, stimulus_id=stimulus_id)

    return BoardWorker


def serve_board(address: str, board: str, security=None, on_ready: Callable[[str], None] | None = None) -> None:
    """Run the board's Dask worker until the scheduler goes away or Ctrl-C."""
    require_dask()
    import asyncio

    check_board_name(board)
    address = _check_address(address, security)
    facts = board_facts(board)
    from perfmodel.workerproto import DIE_WITH_PARENT_ENV

    os.environ[DIE_WITH_PARENT_ENV] = str(os.getpid())  # its cell processes end with it (workerproto.die_with_parent)
    cls = _board_worker_class()

    import dask

    async def main():
        with dask.config.set({"distributed.worker.http.routes": []}):
            w = cls(address, nthreads=1, name=board, resources={board_resource(board): 1}, security=security,
                    board=board, facts=facts, dashboard=False, validate=False)
        async with w:
            if on_ready is not None:
                on_ready(w.address)
            await w.finished()

    try:
        asyncio.run(main())
    except (RuntimeError, ValueError, OSError) as exc:
        causes = []
        while exc is not None:
            causes.append(str(exc))
            exc = exc.__cause__ or exc.__context__
        why = "; ".join(dict.fromkeys(c for c in causes if c))
        if "name taken" in why:
            why = f"another worker is board {board!r} already (board names are unique in a fleet)"
        raise PerfmodelError(f"board {board} could not join {address}: {why}") from None


def serve_scheduler(host: str = "127.0.0.1", port: int = DEFAULT_PORT, security=None,
                    on_ready: Callable[[str], None] | None = None) -> None:
    """Run a Dask scheduler on ``host:port`` (loopback by default) until Ctrl-C."""
    require_dask()
    import asyncio

    from distributed import Scheduler

    import dask

    async def main():
        # no dashboard, and the HTTP server Dask always starts serves no route (no cluster facts without TLS)
        with dask.config.set({"distributed.scheduler.http.routes": []}):
            s = Scheduler(host=host, port=port, security=security, protocol="tls" if security is not None else "tcp",
                          dashboard=False, dashboard_address=f"{host}:0")
        async with s:
            if on_ready is not None:
                on_ready(s.address)
            await s.finished()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------------
# client side


def connect(address: str, security=None, timeout_s: float = 20.0):
    require_dask()
    from distributed import Client

    address = _check_address(address, security)
    try:
        return Client(address, security=security, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise PerfmodelError(f"cannot reach the fleet scheduler at {address}: {exc}") from None


def fleet_boards(client) -> dict[str, dict[str, Any]]:
    """Every board the scheduler knows: ``{name: {"facts", "connected", "address", "doing"}}`` (a board that
    published its facts and left is listed with ``connected`` False)."""
    try:
        facts = client.get_metadata([META_KEY], default={}) or {}
    except KeyError:
        facts = {}
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    processing = client.processing()
    out: dict[str, dict[str, Any]] = {str(b): {"facts": f, "connected": False, "address": None, "doing": []}
                                      for b, f in facts.items()}
    for addr, w in workers.items():
        name = str(w.get("name"))
        if board_resource(name) not in (w.get("resources") or {}):
            continue  # not a board worker
        entry = out.setdefault(name, {"facts": {}, "connected": False, "address": None, "doing": []})
        entry.update(connected=True, address=addr,
                     doing=[_cell_of_key(k) for k in processing.get(addr, ())])
    return out


def _cell_of_key(key: Any) -> str:
    k = str(key)
    if k.startswith(TASK_PREFIX):
        k = k[len(TASK_PREFIX):]
        return k.rsplit("#", 1)[0]
    return k


def version_differences(spec: CampaignSpec, mine: dict[str, str], theirs: dict[str, Any]) -> list[str]:
    """The campaign's framework libraries (and perfmodel) whose versions differ between the client and a board."""
    from perfmodel.versions import FRAMEWORK_LIBRARY

    libs = [FRAMEWORK_LIBRARY[f] for f in spec.frameworks if f in FRAMEWORK_LIBRARY] + ["perfmodel"]
    return [f"{lib} {mine.get(lib, 'missing')} here, {theirs.get(lib, 'missing')} on the board"
            for lib in dict.fromkeys(libs) if str(mine.get(lib, "missing")) != str(theirs.get(lib, "missing"))]


@dataclass
class FleetResult(CampaignResult):
    boards: list[str] = field(default_factory=list)
    connect_s: float = 0.0
    task_s: dict[str, float] = field(default_factory=dict)  #: per board: time inside its cell tasks

    def per_board(self) -> dict[str, dict[str, int]]:
        out = {b: {"done": 0, "failed": 0, "skipped": 0, "interrupted": 0} for b in self.boards}
        for o in self.outcomes:
            b = o.cell_id.split("@", 1)[0]
            out.setdefault(b, {"done": 0, "failed": 0, "skipped": 0, "interrupted": 0})[o.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "boards": self.per_board(), "connect_s": self.connect_s,
                "task_s": self.task_s}


def run_fleet_campaign(spec: CampaignSpec, out, scheduler: str, *, boards: list[str] | None = None,
                       security=None, board_timeout_s: float = 300.0, resume: bool = True, merge: bool = False,
                       force: bool = False, progress: bool = True,
                       on_cell: Callable[[CellOutcome], None] | None = None) -> FleetResult:
    """Measure ``spec`` on every board of ``boards`` (None: every connected board) through the scheduler at
    ``scheduler``, into one data set at ``out`` (module docstring). Refuses (before measuring anything) a
    board that is not connected or whose framework versions differ from this machine's."""
    require_dask()
    from .meta import library_versions, new_run_id, tool_version

    t_begin = time.monotonic()
    spec = spec.validate()
    if spec.power_log:
        raise PerfmodelError("--power-log cannot be used with --scheduler (the log is on this machine, the cells "
                             "run on the boards)")
    client = connect(scheduler, security)
    try:
        known = fleet_boards(client)
        connected = sorted(b for b, e in known.items() if e["connected"])
        if boards is None:
            boards = connected
            if not boards:
                raise PerfmodelError(f"no board is connected to {scheduler} (start one with perfmodel fleet worker)")
        for b in boards:
            check_board_name(b)
        missing = [b for b in boards if b not in connected]
        if missing:
            raise PerfmodelError(f"board(s) not connected to {scheduler}: {', '.join(missing)} (connected: "
                                 f"{', '.join(connected) or 'none'})")
        mine = library_versions()
        refused = {b: version_differences(spec, mine, known[b]["facts"].get("versions") or {}) for b in boards}
        refused = {b: d for b, d in refused.items() if d}
        if refused:
            raise PerfmodelError("board(s) refused: their installed versions differ from this machine's (the "
                                 "campaign's):\n  - " + "\n  - ".join(f"{b}: {'; '.join(d)}" for b, d in
                                                                       refused.items())
                                 + "\ninstall the same versions on the board, or leave it out with --boards")
        run_id = new_run_id()
        board_info = {b: known[b]["facts"] for b in boards}
        metadata = {"board": "fleet", "cpu_model": "fleet (per board: metadata.fleet.boards)",
                    "versions": mine, "counter_source": spec.counters,
                    "cache_geometry": dict(spec.geometry) if spec.runs_valgrind else None, "tool": "perfmodel",
                    "tool_version": tool_version(), "run_id": run_id, "simulate": spec.simulate,
                    "fleet": {"scheduler": client.scheduler.address, "boards": board_info}}
        campaign = spec.to_dict()
        ds = open_dataset(out, metadata, campaign, resume=resume, merge=merge, force=force,
                          measurement_diff=lambda old: measurement_differences(old, campaign))
        ds.remove_stale_temp_files()
        result = FleetResult(str(ds.path), run_id, boards=list(boards), task_s={b: 0.0 for b in boards})
        result.connect_s = time.monotonic() - t_begin
        done: set[str] = set()
        redo: dict[str, str] = {}
        if resume:
            done = set(ds.done_cells())
            redo = {cid: p for cid, p in ds.unverified_cells().items() if cid in done}
            done -= set(redo)
        cells = spec.cells()
        futures: dict[Any, tuple[str, str, Cell]] = {}
        per_board_todo = {b: 0 for b in boards}
        for cell in cells:
            for b in boards:
                fid = fleet_cell_id(b, cell.cell_id)
                if fid in done:
                    result.outcomes.append(CellOutcome(fid, "skipped", "already done"))
                    continue
                per_board_todo[b] += 1
                fut = client.submit(run_board_cell, b, asdict(cell), campaign, run_id, fid,
                                    key=f"{TASK_PREFIX}{fid}#{run_id}", resources={board_resource(b): 1},
                                    pure=False)
                futures[fut] = (b, fid, cell)
        with _progress_bar(progress) as bar:
            bars = {b: bar.add_task(f"board {b}", total=per_board_todo[b]) for b in boards}
            pending = set(futures)
            lost_since: dict[str, float] = {}
            checked = 0.0
            try:
                while pending:
                    finished = [f for f in pending if f.done()]
                    if not finished:
                        time.sleep(0.5)
                    for fut in finished:
                        pending.discard(fut)
                        b, fid, cell = futures[fut]
                        outcome = _take(ds, fut, b, fid, cell, spec, run_id, redo, result)
                        if outcome is None:  # its result left with its board: pending again (board timeout)
                            pending.add(fut)
                            continue
                        result.outcomes.append(outcome)
                        bar.advance(bars[b])
                        if on_cell is not None:
                            on_cell(outcome)
                    if not pending:
                        break
                    now = time.monotonic()
                    if now - checked < 2.0:  # who is connected: asked of the scheduler every 2 s
                        continue
                    checked = now
                    present = {b for b, e in fleet_boards(client).items() if e["connected"]}
                    for b in boards:
                        if b in present:
                            lost_since.pop(b, None)
                            continue
                        lost_since.setdefault(b, now)
                        if now - lost_since[b] < board_timeout_s:
                            continue
                        mine_pending = [f for f in pending if futures[f][0] == b]
                        for fut in mine_pending:
                            pending.discard(fut)
                            fut.cancel()
                            _, fid, cell = futures[fut]
                            reason = (f"{fid}: board {b} left the scheduler and did not come back within "
                                      f"{board_timeout_s:g} s; run the same command again when it is back")
                            ds.mark_failed(fid, reason, {**_cell_meta(cell, spec, run_id), "board": b})
                            outcome = CellOutcome(fid, "failed", reason)
                            result.outcomes.append(outcome)
                            bar.advance(bars[b])
                            if on_cell is not None:
                                on_cell(outcome)
            except KeyboardInterrupt:
                result.interrupted = True
                for fut in pending:
                    fut.cancel()
                    result.outcomes.append(CellOutcome(futures[fut][1], "interrupted",
                                                       "interrupted (Ctrl-C); not done"))
        result.wall_s = time.monotonic() - t_begin
        return result
    finally:
        client.close()


def _take(ds, fut, board: str, fid: str, cell: Cell, spec: CampaignSpec, run_id: str, redo: dict,
          result: FleetResult) -> CellOutcome | None:
    """Write one finished cell task's records (or its failure) into the data set. None: the result could not be
    fetched within :data:`GATHER_TIMEOUT_S` (its board died between finishing the cell and the fetch; Dask then
    puts the task back, waiting for that board), so the caller keeps the cell pending and the board timeout
    applies to it as to any queued cell."""
    cmeta = {**_cell_meta(cell, spec, run_id), "board": board}
    outcome = CellOutcome(fid, "done")
    try:
        if fut.status == "finished":
            try:
                reply = fut.result(timeout=GATHER_TIMEOUT_S)
            except TimeoutError:
                return None
        else:
            try:
                exc = fut.exception()
                why = f"{type(exc).__name__}: {exc}"
            except BaseException as err:  # noqa: BLE001 - a cancelled future raises here
                why = f"{type(err).__name__}: {err}"
            reply = {"ok": False, "reason": f"{fid}: task {fut.status} on board {board}: {why}"}
        result.task_s[board] = result.task_s.get(board, 0.0) + float(reply.get("task_s") or 0.0)
        outcome.wall_s = float(reply.get("task_s") or 0.0)
        if not reply.get("ok"):
            raise CellFailed(reply.get("reason") or "unknown error")
        meta = json.loads(reply["meta"])
        records, attrs = unpack_records(reply)
        if fid in redo:
            meta["replaced"] = outcome.reason = f"measured again: {redo[fid]}"
        ds.write_cell(fid, records, meta, attrs=attrs)
        outcome.rows = int(len(records))
        outcome.spawn_s = meta.get("worker", {}).get("spawn_s")
    except (CellFailed, PerfmodelError) as exc:
        outcome.status, outcome.reason = "failed", str(exc)
        if ds.mark_failed(fid, str(exc), cmeta):
            outcome.reason = f"re-measure failed, the cell's earlier records are kept: {exc}"
    return outcome
