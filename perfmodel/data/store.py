"""Data-set storage: a folder of per-cell Parquet files with JSON sidecars, resumable and mergeable.

Layout of a data set folder::

    <dataset>/
        dataset.json              schema version, run metadata, campaign spec, timestamps, tool version
        records/<cell_id>.parquet the long records of one finished cell (see perfmodel.data.schema)
        records/<cell_id>.json    the cell's sidecar: its metadata (matrix coordinates, counter source,
                                  cache geometry, image count, timings, ...) and ``status``

Atomicity and resume
--------------------
Every file is written to a temporary name in the same folder, flushed, fsync'ed and renamed over the
target (``os.replace``), then the folder is fsync'ed, so a reader sees either the old file or the new
one, never a partial file. :meth:`Dataset.write_cell` removes an old sidecar first, writes the Parquet
file, and writes the sidecar **last**. A cell is *done* (:meth:`Dataset.done_cells`) only when both
files exist and the sidecar says ``"status": "done"``: a worker killed at any point leaves the cell
not done (a campaign re-runs it) and never touches other cells. Left-over temporary files are hidden
(``.<name>.tmp-<pid>``) and ignored; :meth:`Dataset.remove_stale_temp_files` clears them.
``done_cells(verify=True)`` and :meth:`Dataset.is_done` (what a resume asks) also check the records file
against the sha256 in its sidecar: a corrupt or modified file is not done and is
measured again (:meth:`Dataset.unverified_cells` says which and why).

A failed re-measure never destroys good records: :meth:`Dataset.mark_failed` on a cell that has good
records (status ``done``/``partial``, checksum matching) keeps them and its status, and appends the
failure to the sidecar's ``failed_remeasures`` list; only a cell without good records gets
``"status": "failed"``.

Runs
----
``dataset.json`` lists every run that wrote into the data set (``runs``: when, run metadata, campaign
spec) and the latest run's spec (``campaign``). Re-opening an existing data set
(``Dataset.create(..., exist_ok=True)``) records its run only when it writes something (a cell, a
failure, run metadata; :meth:`Dataset.commit_run`): a resume that finds every cell done leaves
``dataset.json`` as it was. :meth:`Dataset.latest_campaign` gives the latest recorded spec of one mode
(``"campaign"``, ``"command"``, ``"trace"``: a spec's ``mode`` key), the one a resume compares with.

Records are validated against the schema when written and when read (``validate=True``).

Versioning
----------
``dataset.json``, every sidecar and every Parquet file carry ``"schema_version": 1``. Reading a newer
version raises :class:`~perfmodel.errors.PerfmodelError` asking for a newer perfmodel.

Compatibility and merging
-------------------------
:func:`compat_fields` extracts the fields that make two data sets comparable - ``board``,
``cpu_model``, ``counter_source``, ``cache_geometry`` and library ``versions`` (compared at
major.minor) - from the run metadata (top level first, then nested dicts such as
``metadata["system"]``) and then from the campaign spec (``counters``, ``geometry``). The cache geometry
only describes simulated (valgrind) cells: it is a compatibility field only of a run that involves
valgrind (counter source ``valgrind`` or ``simulate``), and it is compared only when both sides have
one (:meth:`Dataset.compat` takes it from the data set's valgrind runs).
:func:`merge` and a resumed :meth:`Dataset.create` refuse data sets that differ in any of them and list
the differences, unless told ``allow_incompatible=True``.

Flat files
----------
:func:`write_records` / :func:`read_records` store one validated long frame (e.g. an imported external
data set) in a single Parquet file with its metadata (and optional ``attrs``, facts about the records) in the
file's key-value metadata.
:func:`read_dataset` reads either form; :func:`write_dataset` writes either form (by the path's suffix).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.paths import atomic_write_bytes, sha256_file

from .schema import SCHEMA_VERSION, coerce, empty_records, validate

log = logging.getLogger("perfmodel.data")

#: the process default of ``trust_modified`` (:func:`set_trust_modified`; the CLI's ``--trust-modified``)
_TRUST_MODIFIED = [False]


def set_trust_modified(value: bool) -> None:
    """Let every later :meth:`Dataset.read` in this process read records files that no longer match their
    sidecar's sha256 (with a warning) instead of refusing them."""
    _TRUST_MODIFIED[0] = bool(value)


def trust_modified_default() -> bool:
    return _TRUST_MODIFIED[0]


FORMAT = "perfmodel-dataset"
DATASET_FILE = "dataset.json"
#: a data set folder's log folder (framework output of the runs that wrote it: perfmodel.runlog)
LOGS_DIR = "logs"
RECORDS_DIR = "records"
PARQUET_META_KEY = b"perfmodel"
STATUSES = ("done", "failed", "partial")

_CELL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+@,-]{0,199}$")
_RESERVED_SIDECAR = ("schema_version", "cell_id", "rows", "sha256", "parquet", "written")


# --------------------------------------------------------------------------------------------------
# small helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tool_version() -> str:
    from perfmodel import __version__

    return __version__


def _jsonable(obj: Any) -> Any:
    """Plain JSON data: numpy scalars -> Python, Paths -> str, dataclasses -> dicts, NaN -> None."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [_jsonable(v) for v in items]
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return _jsonable(obj.tolist())
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return _jsonable(obj.to_dict())
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise PerfmodelError(f"cannot store {type(obj).__name__} value {obj!r} in JSON metadata")


def _dumps(obj: Any) -> bytes:
    return (json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)
    _fsync_dir(path.parent)


def campaign_mode(campaign: Mapping | None) -> str | None:
    """The mode of a campaign spec dict: its ``mode`` key (``"command"``, ``"trace"``), ``"campaign"`` for a
    framework x network campaign spec (no key), None for no spec."""
    if not isinstance(campaign, Mapping):
        return None
    return str(campaign.get("mode") or "campaign")


#: dataset.json field -> (allowed types, what the message calls them); absent or null is allowed
_INFO_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "metadata": ((dict,), "a JSON object"),
    "campaign": ((dict,), "a JSON object"),
    "runs": ((list,), "a list"),
    "calibrations": ((list,), "a list"),
    "created": ((str,), "a string"),
    "updated": ((str,), "a string"),
    "tool_version": ((str,), "a string"),
}


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _check_info(info: dict, where: Path) -> None:
    """``InputFileError`` naming the field when a ``dataset.json`` field has the wrong JSON type."""
    for key, (types, what) in _INFO_TYPES.items():
        value = info.get(key)
        if value is not None and not isinstance(value, types):
            raise InputFileError(f"{where}: field '{key}' must be {what} or null, got {_json_type(value)}")
    for i, run in enumerate(info.get("runs") or []):
        if not isinstance(run, dict):
            raise InputFileError(f"{where}: field 'runs[{i}]' must be a JSON object, got {_json_type(run)}")
        for key in ("metadata", "campaign"):
            value = run.get(key)
            if value is not None and not isinstance(value, dict):
                raise InputFileError(f"{where}: field 'runs[{i}].{key}' must be a JSON object or null, got "
                                     f"{_json_type(value)}")


def _load_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{what} {path} is unreadable or corrupt: {exc}") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{what} {path} is not a JSON object")
    return data


def _check_version(version: Any, where: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputFileError(f"{where} has no valid schema_version (got {version!r})")
    if version > SCHEMA_VERSION:
        raise PerfmodelError(
            f"{where} uses data schema version {version}, but this perfmodel reads versions up to "
            f"{SCHEMA_VERSION}; upgrade perfmodel to read it")
    if version < 1:
        raise InputFileError(f"{where} has invalid schema_version {version}")


def check_target(path: Path) -> None:
    """Refuse a path that is a file, or a non-empty folder that is not a data set (its lock file and log folder
    alone are fine: a writer takes the lock and opens the run's log before the data set exists)."""
    from .lock import LOCK_FILE

    if path.exists() and not path.is_dir():
        raise PerfmodelError(f"{path} exists and is not a folder")
    if path.is_dir() and not (path / DATASET_FILE).exists() and any(p.name not in (LOCK_FILE, LOGS_DIR) for p in path.iterdir()):
        raise PerfmodelError(f"{path} is not empty and is not a perfmodel data set; choose a new path")


def check_cell_id(cell_id: str) -> str:
    """Return ``cell_id`` if it is a safe file name stem (letters, digits, ``_ . = + @ , -``)."""
    if not isinstance(cell_id, str) or not _CELL_ID.match(cell_id) or cell_id.endswith((".json", ".parquet")):
        raise PerfmodelError(
            f"invalid cell id {cell_id!r}: use 1-200 letters, digits and _ . = + @ , - (starting with a "
            "letter or digit)")
    return cell_id


def _parquet_bytes(df: pd.DataFrame, meta: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    kv = dict(table.schema.metadata or {})
    kv[PARQUET_META_KEY] = _dumps(meta)
    table = table.replace_schema_metadata(kv)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InputFileError(f"records file {path} does not exist") from None
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(f"records file {path} is unreadable or corrupt: {exc}") from None
    kv = table.schema.metadata or {}
    meta: dict = {}
    if PARQUET_META_KEY in kv:
        try:
            meta = json.loads(kv[PARQUET_META_KEY])
        except json.JSONDecodeError as exc:
            raise InputFileError(f"records file {path} has corrupt perfmodel metadata: {exc}") from None
        _check_version(meta.get("schema_version"), f"records file {path}")
    if b'"attributes"' in kv.get(b"pandas", b""):
        # files written while perfmodel kept facts in the frame's pandas attrs: pandas would restore them (and
        # deep-copy them into every result); perfmodel's own copy is meta["attrs"] (:meth:`Dataset.cell_attrs`)
        pandas_meta = json.loads(kv[b"pandas"])
        pandas_meta.pop("attributes", None)
        table = table.replace_schema_metadata({**kv, b"pandas": json.dumps(pandas_meta).encode()})
    return table.to_pandas(), meta


# --------------------------------------------------------------------------------------------------
# compatibility

#: compatibility field -> keys that may hold it (first found wins)
COMPAT_ALIASES: dict[str, tuple[str, ...]] = {
    "board": ("board",),
    "cpu_model": ("cpu_model",),
    "counter_source": ("counter_source", "counters"),
    "cache_geometry": ("cache_geometry", "geometry"),
    "versions": ("versions", "library_versions"),
}


def _find(metadata: Mapping, keys: Sequence[str]) -> Any:
    for key in keys:
        if key in metadata and metadata[key] is not None:
            return metadata[key]
    for value in metadata.values():
        if isinstance(value, Mapping):
            for key in keys:
                if key in value and value[key] is not None:
                    return value[key]
    return None


def _major_minor(version: Any) -> str:
    parts = re.findall(r"\d+", str(version))
    return ".".join(parts[:2]) if parts else str(version)


def involves_valgrind(metadata: Mapping | None, campaign: Mapping | None = None) -> bool:
    """Whether a run (its metadata and campaign spec) measures simulated (valgrind) cells: counter source
    ``valgrind``, or ``simulate`` (the valgrind pass next to the timing cells)."""
    metadata = dict(metadata or {}) if isinstance(metadata, Mapping) else {}
    campaign = dict(campaign or {}) if isinstance(campaign, Mapping) else {}
    keys = COMPAT_ALIASES["counter_source"]
    source = _find(metadata, keys)
    if source is None:
        source = _find(campaign, keys)
    return source == "valgrind" or bool(metadata.get("simulate")) or bool(campaign.get("simulate"))


def compat_fields(metadata: Mapping | None, campaign: Mapping | None = None) -> dict[str, Any]:
    """The fields two data sets must share to be merged (see the module docstring). ``cache_geometry`` is
    None unless the run involves valgrind (:func:`involves_valgrind`)."""
    metadata = dict(metadata or {})
    campaign = dict(campaign or {})
    valgrind = involves_valgrind(metadata, campaign)
    out: dict[str, Any] = {}
    for name, keys in COMPAT_ALIASES.items():
        if name == "cache_geometry" and not valgrind:
            out[name] = None
            continue
        value = _find(metadata, keys)
        if value is None and campaign:
            value = _find(campaign, keys)
        if name == "versions" and isinstance(value, Mapping):
            value = {str(k): _major_minor(v) for k, v in value.items() if v is not None}
        out[name] = _jsonable(value)
    return out


def compat_differences(a: Mapping, b: Mapping) -> list[str]:
    """Human-readable differences between two :func:`compat_fields` dicts (empty when compatible).

    The cache geometry is compared only when both have one (both involve valgrind cells)."""
    diffs = []
    for name in COMPAT_ALIASES:
        va, vb = a.get(name), b.get(name)
        if name == "cache_geometry" and (va is None or vb is None):
            continue
        if name == "versions" and isinstance(va, Mapping) and isinstance(vb, Mapping):
            for lib in sorted(set(va) | set(vb)):
                if va.get(lib) != vb.get(lib):
                    diffs.append(f"versions.{lib}: {va.get(lib, '(missing)')} != {vb.get(lib, '(missing)')}")
        elif va != vb:
            show = lambda v: "(missing)" if v is None else json.dumps(v, sort_keys=True)  # noqa: E731
            diffs.append(f"{name}: {show(va)} != {show(vb)}")
    return diffs


# --------------------------------------------------------------------------------------------------


class Dataset:
    """A data set folder (see the module docstring). Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, info: dict):
        self.path = Path(path)
        self.info = info
        #: the run of a resume not yet recorded in ``info["runs"]`` (see :meth:`create`, :meth:`commit_run`)
        self.pending_run: dict | None = None
        #: the writer's lock (:class:`~perfmodel.data.lock.DatasetLock`) of a data set opened by :meth:`create`
        self.lock = None

    def release(self) -> None:
        """Drop the writer's lock taken by :meth:`create` (nothing when none is held)."""
        if self.lock is not None:
            self.lock.release()

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        metadata: Mapping | None,
        *,
        campaign: Mapping | None = None,
        exist_ok: bool = False,
        allow_incompatible: bool = False,
        lock: Any = True,
    ) -> "Dataset":
        """Create a data set folder, or with ``exist_ok`` re-open a compatible existing one (resume).

        The returned data set holds the folder's writer lock (:mod:`perfmodel.data.lock`; ``lock``: True to
        take it here, a :class:`~perfmodel.data.lock.DatasetLock` the caller already holds, False for none)
        until :meth:`release` or the end of the process; another writer is refused, naming the holder.

        Refuses (``PerfmodelError``) to use a non-empty folder that is not a data set, an existing data
        set without ``exist_ok``, or an existing data set whose metadata differ in a compatibility field
        (unless ``allow_incompatible``: the run then records ``forced`` and the ``differences``).
        On resume the new run (metadata, campaign) is *pending* (:attr:`pending_run`): it is appended to
        ``info["runs"]`` and its campaign spec replaces ``info["campaign"]`` when the run first writes
        something (:meth:`commit_run`), so a run that measures nothing leaves ``dataset.json`` as it was.
        """
        path = Path(path)
        metadata = _jsonable(dict(metadata or {}))
        campaign = _jsonable(dict(campaign)) if campaign is not None else None
        check_target(path)
        taken = lock is True
        if taken:
            from .lock import DatasetLock

            lock = DatasetLock.acquire(path)
        try:
            ds = cls._create(path, metadata, campaign, exist_ok, allow_incompatible)
        except BaseException:
            if taken:
                lock.release()
            raise
        ds.lock = lock or None
        return ds

    @classmethod
    def _create(cls, path: Path, metadata: dict, campaign: dict | None, exist_ok: bool,
                allow_incompatible: bool) -> "Dataset":
        if path.exists() and not path.is_dir():
            raise PerfmodelError(f"{path} exists and is not a folder")
        if (path / DATASET_FILE).exists():
            if not exist_ok:
                raise PerfmodelError(
                    f"a data set already exists at {path}; resume it (exist_ok / --resume) or choose a new path")
            ds = cls.open(path)
            diffs = compat_differences(ds.compat(), compat_fields(metadata, campaign))
            if diffs and not allow_incompatible:
                raise PerfmodelError(
                    f"the data set at {path} was collected with different settings; refusing to add to it:\n  - "
                    + "\n  - ".join(diffs))
            run: dict[str, Any] = {"opened": _now(), "metadata": metadata, "campaign": campaign}
            if diffs:
                run.update(forced=True, differences=diffs)
            ds.pending_run = run
            return ds
        check_target(path)
        (path / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
        now = _now()
        info = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "tool_version": _tool_version(),
            "created": now,
            "updated": now,
            "metadata": metadata,
            "campaign": campaign,
            "runs": [{"opened": now, "metadata": metadata, "campaign": campaign}],
        }
        ds = cls(path, info)
        ds._save_info(touch=False)
        return ds

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Dataset":
        """Open an existing data set folder (``InputFileError`` if it is not one)."""
        path = Path(path)
        if not (path / DATASET_FILE).is_file():
            raise InputFileError(f"{path} is not a perfmodel data set (no {DATASET_FILE})")
        info = _load_json(path / DATASET_FILE, "data set file")
        if info.get("format") != FORMAT:
            raise InputFileError(f"{path / DATASET_FILE} is not a perfmodel data set file (format "
                                 f"{info.get('format')!r})")
        _check_version(info.get("schema_version"), f"data set {path}")
        _check_info(info, path / DATASET_FILE)
        return cls(path, info)

    # ---- properties ---------------------------------------------------------------------------

    @property
    def records_dir(self) -> Path:
        return self.path / RECORDS_DIR

    @property
    def metadata(self) -> dict:
        """The run metadata given to :meth:`create` (first run)."""
        return self.info.get("metadata") or {}

    @property
    def campaign(self) -> dict | None:
        """The campaign spec of the latest run, or None."""
        return self.info.get("campaign")

    def compat(self) -> dict:
        """:func:`compat_fields` of the data set: its metadata and latest campaign, with the cache geometry of
        the first of its runs (or merged inputs) that involved valgrind (None when none did)."""
        out = compat_fields(self.metadata, self.campaign)
        out["cache_geometry"] = None
        runs = [r for r in (self.info.get("runs") or []) if isinstance(r, Mapping)]
        merged = [m for m in (self.metadata.get("merged_from") or []) if isinstance(m, Mapping)]
        for item in [*runs, *merged, {"metadata": self.metadata, "campaign": self.campaign}]:
            meta, camp = item.get("metadata"), item.get("campaign")
            geometry = compat_fields(meta if isinstance(meta, Mapping) else None,
                                     camp if isinstance(camp, Mapping) else None)["cache_geometry"]
            if geometry is not None:
                out["cache_geometry"] = geometry
                break
        return out

    def latest_campaign(self, mode: str | None = None) -> dict | None:
        """The campaign spec of the latest recorded run (of ``mode``, see :func:`campaign_mode`), or None.

        A resume compares its spec with this one: a data set can hold framework x network campaign cells,
        whole-command cells and trace cells, each mode measured with its own spec."""
        for run in reversed(self.info.get("runs") or []):
            camp = run.get("campaign") if isinstance(run, Mapping) else None
            if isinstance(camp, dict) and (mode is None or campaign_mode(camp) == mode):
                return camp
        camp = self.campaign
        if isinstance(camp, dict) and (mode is None or campaign_mode(camp) == mode):
            return camp
        return None

    def commit_run(self) -> None:
        """Record the :attr:`pending_run` of a resume (``info["runs"]``, ``info["campaign"]``) and save
        ``dataset.json``; nothing when there is none. Every write of a run calls it first."""
        run = self.pending_run
        if run is None:
            return
        if self.info.get("runs") is None:
            self.info["runs"] = []
        self.info["runs"].append(run)
        if run.get("campaign") is not None:
            self.info["campaign"] = run["campaign"]
        self.info["tool_version"] = _tool_version()
        self._save_info()
        self.pending_run = None

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r})"

    def record_run_metadata(self, run_id: str, key: str, value: Any) -> None:
        """Add ``key: value`` to the metadata of run ``run_id`` (the run that opened the data set last), and to
        the data set's metadata when that run created it; saved at once. :class:`PerfmodelError` when the
        last run is not ``run_id``."""
        self.commit_run()
        runs = self.info.get("runs") or []
        last = runs[-1].get("metadata") if runs else None
        if not isinstance(last, dict) or last.get("run_id") != run_id:
            raise PerfmodelError(f"run {run_id} is not the run that opened {self.path} last")
        value = _jsonable(value)
        last[key] = value
        if isinstance(self.info.get("metadata"), dict) and self.info["metadata"].get("run_id") == run_id:
            self.info["metadata"][key] = value
        self._save_info()

    def _save_info(self, touch: bool = True) -> None:
        if touch:
            self.info["updated"] = _now()
        _atomic_write(self.path / DATASET_FILE, _dumps(self.info))

    def _parquet(self, cell_id: str) -> Path:
        return self.records_dir / f"{cell_id}.parquet"

    def _sidecar(self, cell_id: str) -> Path:
        return self.records_dir / f"{cell_id}.json"

    # ---- writing ------------------------------------------------------------------------------

    def write_cell(self, cell_id: str, records: pd.DataFrame, cell_meta: Mapping | None = None, *,
                   attrs: Mapping | None = None) -> Path:
        """Validate and store one cell's records and metadata atomically; return the Parquet path.

        Every row of ``records`` must have ``cell_id == cell_id``. ``cell_meta`` is any JSON-able dict;
        its ``status`` (default ``"done"``) is one of ``done``, ``failed``, ``partial``. ``attrs``: JSON-able
        facts kept in the records file itself (:meth:`cell_attrs`). Re-writing a cell replaces it (the old
        sidecar is removed first, so a crash in between leaves it not done).
        """
        check_cell_id(cell_id)
        meta = _jsonable(dict(cell_meta or {}))
        status = meta.get("status", "done")
        if status not in STATUSES:
            raise PerfmodelError(f"cell status must be one of {', '.join(STATUSES)}, got {status!r}")
        if meta.get("cell_id", cell_id) != cell_id:
            raise PerfmodelError(f"cell_meta names cell {meta['cell_id']!r}, not {cell_id!r}")
        df = validate(records, what=f"records of cell {cell_id!r}")
        wrong = df.loc[df["cell_id"] != cell_id, "cell_id"].unique()
        if len(wrong):
            raise PerfmodelError(f"records written for cell {cell_id!r} name other cells: "
                                 f"{', '.join(map(repr, wrong[:5]))}")
        data = _parquet_bytes(df, {"schema_version": SCHEMA_VERSION, "cell_id": cell_id,
                                   "attrs": _jsonable(dict(attrs or {}))})
        self.commit_run()
        self.records_dir.mkdir(parents=True, exist_ok=True)
        sidecar = self._sidecar(cell_id)
        if sidecar.exists():
            sidecar.unlink()
            _fsync_dir(self.records_dir)
        _atomic_write(self._parquet(cell_id), data)
        meta.update({
            "schema_version": SCHEMA_VERSION,
            "cell_id": cell_id,
            "status": status,
            "rows": int(len(df)),
            "parquet": self._parquet(cell_id).name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "written": _now(),
        })
        _atomic_write(sidecar, _dumps(meta))
        self._save_info()
        return self._parquet(cell_id)

    def mark_failed(self, cell_id: str, reason: str, cell_meta: Mapping | None = None) -> bool:
        """Record that a (re-)measurement of a cell failed; return True when the cell's earlier records are kept.

        A cell with good records (sidecar status ``done`` or ``partial``, records file matching its
        checksum) keeps them and its status: the failure (``reason``, ``failed_at`` and the entries of
        ``cell_meta`` that differ from the kept sidecar, e.g. ``run_id``) is appended to the sidecar's
        ``failed_remeasures`` list, so readers still read the good records, a resume counts the cell as
        done, and the failure stays visible. Any other cell gets a sidecar with ``status="failed"`` and the
        reason (it stays not done; a resume retries it); a records file that did not match its sidecar is
        removed, which the sidecar notes in ``discarded``.
        """
        check_cell_id(cell_id)
        meta = _jsonable(dict(cell_meta or {}))
        self.commit_run()
        self.records_dir.mkdir(parents=True, exist_ok=True)
        parquet = self._parquet(cell_id)
        sidecar = self._sidecar(cell_id)
        old = None
        if sidecar.is_file():
            try:
                old = _load_json(sidecar, "cell sidecar")
            except InputFileError:
                old = None
        problem = self._records_problem(cell_id, old) if old is not None else "no readable sidecar"
        if old is not None and old.get("status") in ("done", "partial") and problem is None:
            failure = {k: v for k, v in meta.items()
                       if k not in _RESERVED_SIDECAR and k not in ("status", "failed_remeasures") and old.get(k) != v}
            failure.update({"reason": str(reason), "failed_at": _now()})
            kept = dict(old)
            previous = kept.get("failed_remeasures")
            kept["failed_remeasures"] = [*(previous if isinstance(previous, list) else []), failure]
            _atomic_write(sidecar, _dumps(kept))
            self._save_info()
            return True
        meta.update({"schema_version": SCHEMA_VERSION, "cell_id": cell_id, "status": "failed",
                     "reason": str(reason), "rows": 0, "parquet": None, "sha256": None, "written": _now()})
        if parquet.exists() and old is not None and old.get("status") in ("done", "partial"):
            meta["discarded"] = f"an earlier records file ({problem})"
        if sidecar.exists():
            sidecar.unlink()
        if parquet.exists():
            parquet.unlink()
        _atomic_write(sidecar, _dumps(meta))
        self._save_info()
        return False

    def remove_cell(self, cell_id: str) -> None:
        """Delete a cell's files (sidecar first)."""
        check_cell_id(cell_id)
        for p in (self._sidecar(cell_id), self._parquet(cell_id)):
            if p.exists():
                p.unlink()
        _fsync_dir(self.records_dir)

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temporary files a killed writer left in ``records/``; return them."""
        gone = []
        if self.records_dir.is_dir():
            for p in self.records_dir.iterdir():
                if p.name.startswith(".") and ".tmp-" in p.name:
                    p.unlink(missing_ok=True)
                    gone.append(p)
        return gone

    # ---- reading ------------------------------------------------------------------------------

    def cells(self) -> dict[str, dict]:
        """cell_id -> sidecar dict, for every readable sidecar (any status)."""
        out: dict[str, dict] = {}
        if not self.records_dir.is_dir():
            return out
        for p in sorted(self.records_dir.glob("*.json")):
            if p.name.startswith("."):
                continue
            try:
                meta = _load_json(p, "cell sidecar")
            except InputFileError:
                continue  # a sidecar is written atomically; an unreadable one is not a finished cell
            _check_version(meta.get("schema_version"), f"cell sidecar {p}")
            out[p.stem] = meta
        return out

    def done_cells(self, *, verify: bool = False) -> list[str]:
        """Sorted ids of finished cells: Parquet file and sidecar present, sidecar status ``done``; with
        ``verify`` also the records file matching the sha256 in its sidecar (what a resume needs: see
        :meth:`unverified_cells` for the ones that do not)."""
        return sorted(cid for cid, meta in self.cells().items()
                      if meta.get("status") == "done" and self._parquet(cid).is_file()
                      and (not verify or self._records_problem(cid, meta) is None))

    def unverified_cells(self) -> dict[str, str]:
        """cell_id -> problem for the cells whose sidecar says ``done`` but whose records file is missing or
        does not match the sha256 in the sidecar (corrupt or modified): a resume measures them again."""
        out = {}
        for cid, meta in self.cells().items():
            if meta.get("status") == "done":
                problem = self._records_problem(cid, meta)
                if problem is not None:
                    out[cid] = problem
        return out

    def is_done(self, cell_id: str) -> bool:
        """Whether a cell is finished: sidecar status ``done`` and a records file matching its checksum."""
        check_cell_id(cell_id)
        sidecar = self._sidecar(cell_id)
        if not sidecar.is_file() or not self._parquet(cell_id).is_file():
            return False
        try:
            meta = _load_json(sidecar, "cell sidecar")
        except InputFileError:
            return False
        return meta.get("status") == "done" and self._records_problem(cell_id, meta) is None

    def _records_problem(self, cell_id: str, meta: Mapping) -> str | None:
        """Why the records file of a cell does not match its sidecar (None when it does)."""
        p = self._parquet(cell_id)
        if not p.is_file():
            return "records file missing"
        want = meta.get("sha256")
        if want and sha256_file(p) != want:
            return "records file does not match its sidecar (sha256)"
        return None

    def cell_meta(self, cell_id: str) -> dict:
        """The sidecar of one cell."""
        check_cell_id(cell_id)
        meta = _load_json(self._sidecar(cell_id), "cell sidecar")
        _check_version(meta.get("schema_version"), f"cell sidecar {self._sidecar(cell_id)}")
        return meta

    def read_cell(self, cell_id: str, *, validate: bool = True) -> pd.DataFrame:
        """The records of one cell."""
        check_cell_id(cell_id)
        df, _ = _read_parquet(self._parquet(cell_id))
        return _validate(df, f"records file {self._parquet(cell_id)}") if validate else df

    def cell_attrs(self, cell_id: str) -> dict:
        """The ``attrs`` one cell's records were written with (:meth:`write_cell`; ``{}`` when none)."""
        check_cell_id(cell_id)
        return _parquet_attrs(self._parquet(cell_id))

    def modified_cells(self, cells: Iterable[str] | None = None) -> dict[str, str]:
        """cell_id -> why, for the done cells (or ``cells``) whose records file no longer matches its sidecar
        (edited or corrupt after it was written): :meth:`read` refuses them unless trusted."""
        sidecars = self.cells()
        return self._modified(self._readable_cells(sidecars) if cells is None else [check_cell_id(c) for c in cells],
                              sidecars)

    def _readable_cells(self, sidecars: Mapping[str, dict]) -> list[str]:
        return sorted(cid for cid, meta in sidecars.items() if meta.get("status") == "done"
                      and self._parquet(cid).is_file())

    def _modified(self, ids: Iterable[str], sidecars: Mapping[str, dict]) -> dict[str, str]:
        return {cid: problem for cid in ids if cid in sidecars
                and (problem := self._records_problem(cid, sidecars[cid])) is not None}

    def unreadable_cells(self) -> dict[str, str]:
        """cell_id -> why, for the cells a reader cannot use and would otherwise miss without a word: a
        sidecar that is unreadable or corrupt, a records file without its sidecar, a sidecar saying ``done``
        whose records file is missing. (Failed and partial cells are not listed: their sidecars say so.)"""
        out: dict[str, str] = {}
        if not self.records_dir.is_dir():
            return out
        try:
            names = {p.name for p in self.records_dir.iterdir() if not p.name.startswith(".")}
        except OSError as exc:
            raise InputFileError(f"cannot list the records of {self.path}: {exc.strerror or exc}") from None
        for name in sorted(names):
            stem, suffix = os.path.splitext(name)
            if suffix == ".json":
                try:
                    meta = _load_json(self.records_dir / name, "cell sidecar")
                except InputFileError as exc:
                    out[stem] = f"its sidecar {name} cannot be used ({exc})"
                    continue
                if meta.get("status") == "done" and f"{stem}.parquet" not in names:
                    out[stem] = "its sidecar says done but its records file is missing"
            elif suffix == ".parquet" and f"{stem}.json" not in names:
                out[stem] = f"its records file {name} has no sidecar (deleted?), so it is not known to be finished"
        return out

    def read(self, *, validate: bool = True, cells: Iterable[str] | None = None,
             trust_modified: bool | None = None) -> pd.DataFrame:
        """All records of the done cells (or of ``cells``) as one long frame, validated by default.

        Every records file is checked against the sha256 in its sidecar: a file that no longer matches
        (edited or corrupt after it was written) is refused (:class:`InputFileError` naming the cells) unless
        ``trust_modified`` (default: :func:`trust_modified_default`, the CLI's ``--trust-modified``), which
        reads it with a warning. Cells that cannot be read at all (:meth:`unreadable_cells`) are left out
        with a warning on the ``perfmodel.data`` logger (stderr in the CLI); :meth:`unreadable_cells` and
        :meth:`modified_cells` list them.
        """
        trust = _TRUST_MODIFIED[0] if trust_modified is None else bool(trust_modified)
        unreadable = self.unreadable_cells() if cells is None else {}
        if unreadable:
            log.warning("warning: %s: %d cell(s) cannot be read and are left out: %s", self.path, len(unreadable),
                        "; ".join(f"{c}: {why}" for c, why in unreadable.items()))
        sidecars = self.cells()
        ids = self._readable_cells(sidecars) if cells is None else [check_cell_id(c) for c in cells]
        modified = self._modified(ids, sidecars)
        if modified:
            listed = "; ".join(f"{c}: {why}" for c, why in modified.items())
            if not trust:
                raise InputFileError(
                    f"{self.path}: {len(modified)} cell(s) were changed after they were written, refusing to use "
                    f"them ({listed}); measure them again (collect resumes them), or pass --trust-modified "
                    "(trust_modified=True) to read them as they are")
            log.warning("warning: %s: reading %d cell(s) changed after they were written (--trust-modified): %s",
                        self.path, len(modified), listed)
        frames = [df for df, _ in (_read_parquet(self._parquet(cid)) for cid in ids) if len(df)]
        df = pd.concat(frames, ignore_index=True) if frames else empty_records()
        return _validate(df, f"records of data set {self.path}") if validate else coerce(df)

    def verify(self) -> list[str]:
        """Check every done cell's Parquet file against the size and hash in its sidecar; list problems."""
        return [f"{cid}: {problem}" for cid, problem in self.unverified_cells().items()]

    def summary(self) -> dict:
        """Counts for ``--json`` output: cells by status, rows of done cells, path, created/updated."""
        cells = self.cells()
        by_status: dict[str, int] = {}
        for meta in cells.values():
            by_status[meta.get("status", "?")] = by_status.get(meta.get("status", "?"), 0) + 1
        done = set(self.done_cells())
        return {
            "path": str(self.path),
            "schema_version": self.info.get("schema_version"),
            "created": self.info.get("created"),
            "updated": self.info.get("updated"),
            "cells": by_status,
            "done_cells": len(done),
            "failed_remeasures": sum(1 for c in done if cells[c].get("failed_remeasures")),
            "rows": sum(int(cells[c].get("rows", 0)) for c in done),
        }


def _validate(df: pd.DataFrame, what: str) -> pd.DataFrame:
    return validate(df, what=what)


# --------------------------------------------------------------------------------------------------
# flat files and convenience functions


def write_records(path: str | os.PathLike, records: pd.DataFrame, metadata: Mapping | None = None, *,
                  attrs: Mapping | None = None) -> Path:
    """Validate ``records`` and write them to one Parquet file atomically (with metadata and ``attrs``,
    JSON-able facts about the records: :func:`records_attrs`)."""
    path = Path(path)
    df = validate(records, what=f"records for {path.name}")
    meta = {"schema_version": SCHEMA_VERSION, "format": FORMAT + "-records", "tool_version": _tool_version(),
            "written": _now(), "metadata": _jsonable(dict(metadata or {})), "attrs": _jsonable(dict(attrs or {}))}
    _atomic_write(path, _parquet_bytes(df, meta))
    return path


def read_records(path: str | os.PathLike, *, validate: bool = True) -> pd.DataFrame:
    """Read a flat records Parquet file written by :func:`write_records`."""
    path = Path(path)
    df, _ = _read_parquet(path)
    return _validate(df, f"file {path}") if validate else df


def _parquet_meta(path: Path) -> dict:
    """perfmodel's key-value metadata of a records file (``{}`` if none), read without the records."""
    import pyarrow.parquet as pq

    try:
        kv = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        raise InputFileError(f"records file {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        raise InputFileError(f"records file {path} is unreadable or corrupt: {exc}") from None
    if PARQUET_META_KEY not in kv:
        return {}
    meta = json.loads(kv[PARQUET_META_KEY])
    _check_version(meta.get("schema_version"), f"records file {path}")
    return meta


def _parquet_attrs(path: Path) -> dict:
    attrs = _parquet_meta(path).get("attrs")
    return dict(attrs) if isinstance(attrs, dict) else {}


def records_metadata(path: str | os.PathLike) -> dict:
    """The metadata stored in a flat records file (``{}`` if none)."""
    return _parquet_meta(Path(path)).get("metadata") or {}


def records_attrs(path: str | os.PathLike) -> dict:
    """The ``attrs`` a flat records file was written with (:func:`write_records`; ``{}`` if none)."""
    return _parquet_attrs(Path(path))


def write_dataset(
    path: str | os.PathLike,
    records: pd.DataFrame,
    metadata: Mapping | None = None,
    *,
    campaign: Mapping | None = None,
    exist_ok: bool = False,
) -> Path:
    """Write ``records`` as a flat file (``*.parquet``) or as a data set folder (one cell per cell_id)."""
    path = Path(path)
    if path.suffix == ".parquet":
        if path.exists() and not exist_ok:
            raise PerfmodelError(f"{path} already exists")
        return write_records(path, records, metadata)
    df = validate(records)
    ds = Dataset.create(path, metadata, campaign=campaign, exist_ok=exist_ok)
    try:
        for cell_id, group in df.groupby("cell_id", sort=True):
            ds.write_cell(str(cell_id), group.reset_index(drop=True), {"status": "done"})
    finally:
        ds.release()
    return path


def read_dataset(path: str | os.PathLike, *, validate: bool = True, trust_modified: bool | None = None) -> pd.DataFrame:
    """Records of a data set folder (:meth:`Dataset.read`: checksums checked, unreadable cells said) or a flat
    records file."""
    path = Path(path)
    if path.is_dir():
        return Dataset.open(path).read(validate=validate, trust_modified=trust_modified)
    if path.is_file():
        return read_records(path, validate=validate)
    raise InputFileError(f"{path} does not exist")


def dataset_metadata(path: str | os.PathLike) -> tuple[dict, dict | None]:
    """(metadata, campaign) of a data set folder or a flat records file."""
    path = Path(path)
    if path.is_dir():
        ds = Dataset.open(path)
        return ds.metadata, ds.campaign
    return records_metadata(path), None


def merge(
    datasets: Sequence["Dataset | str | os.PathLike"],
    out: str | os.PathLike,
    *,
    allow_incompatible: bool = False,
    on_duplicate: str = "error",
) -> Dataset:
    """Merge data sets (folders, :class:`Dataset` objects or flat records files) into a new folder.

    Refuses (``PerfmodelError``, listing the differences) when the inputs differ in a compatibility field
    (:func:`compat_fields`) unless ``allow_incompatible``; the differences are then recorded in
    ``metadata["incompatible"]``. The merged metadata is the first input's, plus ``merged_from`` (path,
    metadata and campaign of every input). A cell id present in more than one input is an error
    (``on_duplicate="error"``), keeps the first (``"first"``), or is renamed ``<cell_id>@<n>`` for the n-th
    input (``"rename"``; the records' ``cell_id`` is renamed too, the original kept in the sidecar).
    """
    if on_duplicate not in ("error", "first", "rename"):
        raise PerfmodelError(f"on_duplicate must be error, first or rename, got {on_duplicate!r}")
    if not datasets:
        raise PerfmodelError("nothing to merge")
    out = Path(out)
    sources = []
    for item in datasets:
        if isinstance(item, Dataset):
            sources.append((str(item.path), item.metadata, item.campaign, item, item.compat()))
        else:
            p = Path(item)
            meta, camp = dataset_metadata(p)
            src = Dataset.open(p) if p.is_dir() else p
            sources.append((str(p), meta, camp, src,
                            src.compat() if isinstance(src, Dataset) else compat_fields(meta, camp)))
    base = sources[0][4]
    problems = []
    for name, _, _, _, compat in sources[1:]:
        diffs = compat_differences(base, compat)
        if diffs:
            problems.append(f"{name} differs from {sources[0][0]}:\n    - " + "\n    - ".join(diffs))
    if problems and not allow_incompatible:
        raise PerfmodelError("refusing to merge data sets with incompatible metadata (call merge(..., "
                             "allow_incompatible=True) to merge anyway; the differences are then recorded):\n  "
                             + "\n  ".join(problems))
    # everything is checked before anything is written: the target, then every cell id
    from .lock import LOCK_FILE, DatasetLock, lock_holder

    if out.exists() and not out.is_dir():
        raise PerfmodelError(f"{out} exists and is not a folder")
    holder = lock_holder(out) if out.is_dir() else None
    if holder is not None:
        raise PerfmodelError(DatasetLock._refusal(out, holder))
    if (out / DATASET_FILE).exists():
        raise PerfmodelError(f"a data set already exists at {out}; choose a new path for the merged data set")
    check_target(out)
    plan: list[tuple[str, str, str, Any]] = []  # (input name, cell id, target id, Dataset or records)
    seen: set[str] = set()
    for n, (name, _, _, src, _) in enumerate(sources):
        if isinstance(src, Dataset):
            items: list[tuple[str, Any]] = [(cid, None) for cid in src.done_cells()]
        else:
            df, attrs = read_records(src), records_attrs(src)
            items = [(str(cid), (g.reset_index(drop=True), attrs)) for cid, g in df.groupby("cell_id", sort=True)]
        for cid, records in items:
            target = cid
            if cid in seen:
                if on_duplicate == "error":
                    raise PerfmodelError(f"cell {cid!r} is in more than one input (last: {name}); pass "
                                         "on_duplicate='first' or 'rename'")
                if on_duplicate == "first":
                    continue
                target = f"{cid}@{n}"
                if target in seen:
                    raise PerfmodelError(f"cell {cid!r} of {name} cannot be renamed to {target!r}: an input "
                                         "already has that cell id")
            check_cell_id(target)
            plan.append((name, cid, target, src if isinstance(src, Dataset) else records))
            seen.add(target)
    metadata = dict(sources[0][1])
    metadata["merged_from"] = [{"path": n, "metadata": m, "campaign": c} for n, m, c, _, _ in sources]
    if problems:
        metadata["incompatible"] = problems
    from .calibration_records import calibrations_of_info

    cals = [c for _, _, _, src, _ in sources if isinstance(src, Dataset) for c in calibrations_of_info(src.info)]

    # written into a hidden folder beside the target and renamed at the end: a failure or a crash on the
    # way leaves no half-made data set at ``out``
    import shutil

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-merge-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    merged = None
    try:  # the writer's lock is taken in the hidden folder and moves with it to ``out``
        merged = Dataset.create(tmp, metadata, campaign=sources[0][2])
        for name, cid, target, src in plan:
            if isinstance(src, Dataset):
                records, meta, attrs = src.read_cell(cid), src.cell_meta(cid), src.cell_attrs(cid)
            else:
                (records, attrs), meta = src, {"status": "done"}
            if target != cid:
                records = records.assign(cell_id=target)
                meta = {**meta, "original_cell_id": cid}
            meta = {k: v for k, v in meta.items() if k not in _RESERVED_SIDECAR}
            meta["merged_from"] = name
            merged.write_cell(target, records, meta, attrs=attrs)
        if cals:  # every input's calibrations (of all its runs and attached ones): merged_from has first runs only
            merged.info["calibrations"] = cals
            merged._save_info()
        if (out / LOCK_FILE).is_file() and lock_holder(out) is None and len(list(out.iterdir())) == 1:
            (out / LOCK_FILE).unlink()  # the free lock file of an earlier writer that wrote nothing
        try:
            os.rename(tmp, out)  # replaces an empty folder at ``out``
        except OSError as exc:
            holder = lock_holder(out)
            if holder is not None:
                raise PerfmodelError(DatasetLock._refusal(out, holder)) from None
            raise PerfmodelError(f"cannot move the merged data set to {out}: {exc}") from None
    except BaseException:
        if merged is not None:
            merged.release()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(out.parent)
    merged.path = out
    merged.release()
    return merged
