"""One writer per data set: an OS file lock on ``<dataset>/.perfmodel.lock`` plus a record of its holder.

Every writer (``collect``, ``trace``, ``collect --command``, the pipeline's campaign, :func:`merge`,
``calibrate --attach``) holds :class:`DatasetLock` while it writes. The lock is ``fcntl.flock`` on the lock
file: the kernel drops it when the holding process ends, however it ends (kill -9 included), so a crash never
leaves a lock that blocks. The file also holds a JSON record of the holder (pid, host, start time, command),
which the refusal names. A record left by a process that died (the OS lock was free) is taken over with a
note. The collect parent passes the lock's descriptor to its workers, so an orphaned worker still holds the
data set until it ends: a resume cannot start while it still measures.

Readers take no lock (every file is replaced atomically; see :mod:`perfmodel.data.store`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

from perfmodel.errors import PerfmodelError

LOCK_FILE = ".perfmodel.lock"

log = logging.getLogger("perfmodel.data")


class DatasetLockedError(PerfmodelError):
    """Another process holds the data set's lock (the message names it)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _read_record(fd: int) -> dict | None:
    try:
        raw = os.pread(fd, 65536, 0)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(record: dict | None) -> str:
    """``pid 123 on host h, since 2024-...Z (perfmodel collect ...)`` for a holder record."""
    if not record:
        return "a process that has not written its record yet (pid unknown)"
    text = f"pid {record.get('pid', '?')} on host {record.get('host', '?')}, since {record.get('started', '?')}"
    if record.get("command"):
        text += f" ({record['command']})"
    return text


class _Held:
    """The OS lock this process holds on one folder, shared by its :class:`DatasetLock` handles."""

    def __init__(self, key: str, fd: int, record: dict):
        self.key, self.fd, self.record, self.count = key, fd, record, 0


#: realpath of the folder -> the lock this process holds on it
_HELD: dict[str, _Held] = {}


class DatasetLock:
    """The lock of one data set folder, exclusive between processes; :meth:`acquire` it, :meth:`release` it
    (or let the process end). Handles acquired in one process share its one OS lock (one writer = one process;
    the lock is dropped when the last handle is released).

    ``fd`` is the lock file's descriptor: pass it to a child process (``pass_fds``) to let the child hold the
    lock too, until it ends.
    """

    def __init__(self, path: Path, held: _Held):
        self.path = path
        self._held: _Held | None = held
        held.count += 1

    @property
    def fd(self) -> int | None:
        return self._held.fd if self._held is not None else None

    @property
    def record(self) -> dict:
        return self._held.record if self._held is not None else {}

    @classmethod
    def acquire(cls, folder: str | os.PathLike, *, what: str | None = None) -> "DatasetLock":
        """Lock ``folder`` (created if missing) for writing; :class:`DatasetLockedError` naming the holder when
        another process holds it."""
        import fcntl

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(folder)
        if key in _HELD:
            return cls(folder, _HELD[key])
        path = folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_record(fd)
                raise DatasetLockedError(cls._refusal(folder, holder)) from None
            old = _read_record(fd)
            host = socket.gethostname()
            if old and old.get("pid") != os.getpid():
                alive = old.get("host") == host and isinstance(old.get("pid"), int) and _pid_alive(old["pid"])
                why = ("which no longer runs" if old.get("host") == host and not alive
                       else "whose OS lock was free")
                log.warning("note: %s: taking over the stale lock of %s, %s", folder, describe_holder(old), why)
            record = {"pid": os.getpid(), "host": host,
                      "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "command": what or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
            data = (json.dumps(record) + "\n").encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except BaseException:
            os.close(fd)
            raise
        _HELD[key] = held = _Held(key, fd, record)
        return cls(folder, held)

    @staticmethod
    def _refusal(folder: Path, holder: dict | None) -> str:
        text = f"data set {folder} is being written by another perfmodel process: {describe_holder(holder)}"
        if holder and holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            if holder["pid"] != os.getpid() and not _pid_alive(holder["pid"]):
                text += (f"; pid {holder['pid']} has ended but a process it started (a measuring worker) still "
                         "holds the lock: it ends when that worker ends")
        return text + "; wait until it has finished, or write to another folder"

    @property
    def held(self) -> bool:
        return self._held is not None

    def release(self) -> None:
        """Let go of this handle; the last one of the process clears the holder record and drops the OS lock
        (nothing when already released)."""
        held, self._held = self._held, None
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        _HELD.pop(held.key, None)
        fd = held.fd
        import fcntl

        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> "DatasetLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a lost reference must not keep the data set locked
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def lock_holder(folder: str | os.PathLike) -> dict | None:
    """The holder record of ``folder``'s lock when some process holds it, else None (no lock is taken)."""
    import fcntl

    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_record(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
