"""One protocol for perfmodel's worker processes (a fresh Python process per measurement).

Three workers speak it: :mod:`perfmodel.collect.worker` (campaign cells and traces),
:mod:`perfmodel.runners.worker` (``perfmodel bench`` cells, scores) and ``python -m perfmodel.counters.valgrind
--worker`` (a workload under callgrind). Why fresh processes: TensorFlow fixes its thread pools once per process,
OpenCV's thread count is process-wide, and one framework's allocator and caches must not disturb the next
measurement (pyperf runs its benchmarks in worker processes for the same reasons).

The protocol (after pyperf's runner -> worker one: a request in, a result and a metadata object out):

* **Environment** (:func:`worker_env`): the caller's environment, this checkout first on ``PYTHONPATH`` (the
  worker imports this same perfmodel, installed or not), ``TF_CPP_MIN_LOG_LEVEL=2`` unless set, optionally one
  thread for every BLAS / framework pool (:data:`SINGLE_THREAD_ENV`) and ``PERFMODEL_PARENT_PID`` for a worker
  that must die with its parent (:func:`die_with_parent`).
* **Request**: one JSON object on the worker's stdin, with ``"workdir"``: a private folder of the call where the
  worker writes its reply and any side files (records, callgrind dumps).
* **Reply**: ``<workdir>/reply.json``, written atomically by :func:`serve`: ``{"ok": true, "result": ...,
  "worker": {pid, started_monotonic, python}}`` or ``{"ok": false, "error": message, "user": bool, ...}``
  (``user``: the worker raised a :class:`~perfmodel.errors.PerfmodelError`, whose message is for the user; an
  unexpected exception comes back as ``"Type: message"`` with the last lines of its traceback).
* **stdout / stderr belong to the libraries** (C++ code writes banners straight to the descriptors): they never
  carry the reply. Lines starting with :data:`PROGRESS_PREFIX` on stdout are progress (:func:`report_progress`);
  everything else goes to the run's log file (:mod:`perfmodel.runlog`; also to the terminal with ``--verbose``),
  and the last stderr lines explain a worker that died without a reply.
* **Errors** (parent side, :func:`run_worker`): :class:`WorkerTimeout` (ran past its time: killed),
  :class:`WorkerCrashed` (ended without a reply: exit code or signal, its last output) and :class:`WorkerFailed`
  (replied with an error: the worker's message), all :class:`WorkerError` (a ``PerfmodelError``), with the
  worker's ``label``, ``exit_code`` and ``output``; :meth:`WorkerError.reworded` keeps the type and fields under a
  caller's wording.

Foundation module: imports no stage.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError

_T_IMPORTED = time.monotonic()

PROGRESS_PREFIX = "@@perfmodel-progress"
REPLY_FILE = "reply.json"
PARENT_ENV = "PERFMODEL_PARENT_PID"  #: the pid of the process that started the worker (:func:`run_worker`)
#: a pid: the worker ends when that parent does (set by a fleet board's worker, :mod:`perfmodel.collect.fleet`)
DIE_WITH_PARENT_ENV = "PERFMODEL_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1
#: stderr lines kept for the error of a worker that ends without a reply
TAIL_LINES = 40

#: one thread for every BLAS / OpenMP / framework pool (a simulated run counts one thread's work)
SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "ORT_NUM_THREADS": "1",
    "PERFMODEL_THREADS": "1",
}


# --------------------------------------------------------------------------------------------------
# environment


def checkout_root() -> str:
    """The folder that holds this ``perfmodel`` package (first on a worker's ``PYTHONPATH``)."""
    return str(Path(__file__).resolve().parents[1])


def worker_env(extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None,
               single_thread: bool = False) -> dict[str, str]:
    """A worker's environment: ``base`` (default this process's), TensorFlow's C++ log level 2 unless set, this
    checkout first on ``PYTHONPATH`` (once), :data:`SINGLE_THREAD_ENV` with ``single_thread``, then ``extra``."""
    env = dict(os.environ if base is None else base)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = checkout_root()
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *rest])
    if single_thread:
        env.update(SINGLE_THREAD_ENV)
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------------
# errors


class WorkerError(PerfmodelError):
    """A worker process that gave no result: :class:`WorkerTimeout`, :class:`WorkerCrashed` or
    :class:`WorkerFailed`. ``label`` names the work, ``exit_code`` is the worker's (negative: killed by that
    signal; None: still running when it was killed), ``output`` its last stderr lines."""

    def __init__(self, message: str, *, label: str = "", exit_code: int | None = None,
                 output: Sequence[str] = ()):
        super().__init__(message)
        self.label = label
        self.exit_code = exit_code
        self.output = list(output)

    def reworded(self, message: str) -> "WorkerError":
        """The same error (type and fields) with the caller's ``message``."""
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        Exception.__init__(new, message)
        return new


class WorkerTimeout(WorkerError):
    """The worker ran past its time limit and was killed."""

    def __init__(self, label: str, timeout_s: float, output: Sequence[str] = ()):
        super().__init__(f"{label}: worker did not finish within {timeout_s:g} s and was killed", label=label,
                         output=output)
        self.timeout_s = timeout_s


class WorkerCrashed(WorkerError):
    """The worker ended without a reply (a crash, a signal, an exit before it answered)."""

    def __init__(self, label: str, exit_code: int, output: Sequence[str] = ()):
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        last = "\n".join(list(output)[-8:])
        super().__init__(f"{label}: worker process {how} without a result"
                         + (f"; its last output:\n{last}" if last else ""), label=label, exit_code=exit_code,
                         output=output)


class WorkerFailed(WorkerError):
    """The worker replied with an error: ``error`` is its message (``user``: a :class:`PerfmodelError`, meant
    for the user; else ``"Type: message"`` of an unexpected exception, ``traceback`` its last lines)."""

    def __init__(self, label: str, error: str, *, user: bool, exit_code: int | None = None,
                 traceback_lines: Sequence[str] = (), output: Sequence[str] = ()):
        super().__init__(f"{label}: {error}" if label else error, label=label, exit_code=exit_code, output=output)
        self.error = error
        self.user = user
        self.traceback = list(traceback_lines)


# --------------------------------------------------------------------------------------------------
# parent side


@dataclass
class WorkerReply:
    """A worker's answer: ``result`` (None from a worker that answers only by its exit code) and ``worker``
    (pid, started_monotonic, python, and ``spawn_s``: the parent's start of the process -> the worker's start)."""

    result: Any
    worker: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0


def run_worker(argv: Sequence[str], request: Mapping[str, Any], *, workdir: str | os.PathLike, label: str,
               timeout_s: float | None = None, env: Mapping[str, str] | None = None,
               on_progress: Callable[[int, int], None] | None = None, die_with_parent: bool = False,
               pass_fds: Iterable[int] = (), reply_required: bool = True,
               quiet: Callable[[str], bool] | None = None) -> WorkerReply:
    """Run the worker ``argv`` on ``request`` (sent on stdin with ``workdir`` added) and return its reply.

    ``env``: the worker's environment (default :func:`worker_env`); ``die_with_parent`` sets
    :data:`PARENT_ENV` so that the worker (:func:`serve` with ``die_with_parent=True``) ends with this process:
    call this from a thread that outlives the worker (Linux signals the worker when the thread that started it
    ends). ``pass_fds``: descriptors the worker inherits (a data set's lock). ``reply_required=False``: a
    worker that exits 0 without a reply (one that answers by its exit code alone) succeeds with result None.
    ``quiet(line)``: stderr lines that explain nothing (e.g. valgrind's own), kept out of ``output`` unless
    there is nothing else. Raises :class:`WorkerTimeout`, :class:`WorkerCrashed` or :class:`WorkerFailed`;
    on ``KeyboardInterrupt`` (or any other exception) the worker is killed and the exception re-raised.
    """
    workdir = Path(workdir)
    reply_path = workdir / REPLY_FILE
    run_env = dict(worker_env() if env is None else env)
    if die_with_parent:
        run_env[PARENT_ENV] = str(os.getpid())
    else:
        run_env.pop(PARENT_ENV, None)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    quiet_tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with contextlib.ExitStack() as stack:
        log = _LogSink(stack, f"worker {label}")
        t_spawn = time.monotonic()
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=run_env, text=True, errors="replace", pass_fds=tuple(pass_fds))

        def pump_out() -> None:
            for line in proc.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    try:
                        done, total = map(int, line.split()[1:3])
                    except ValueError:
                        continue
                    if on_progress is not None:
                        on_progress(done, total)
                else:
                    log.write(line, echo=False)

        def pump_err() -> None:
            for line in proc.stderr:
                if line.strip():
                    (quiet_tail if quiet is not None and quiet(line) else tail).append(line.rstrip())
                    log.write(line, echo=True)

        readers = [threading.Thread(target=f, daemon=True) for f in (pump_out, pump_err)]
        for t in readers:
            t.start()
        try:
            try:
                proc.stdin.write(json.dumps({**request, "workdir": str(workdir)}))
                proc.stdin.close()
            except BrokenPipeError:  # a worker that does not read its request (reply_required=False)
                pass
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                for t in readers:
                    t.join(timeout=5)
                raise WorkerTimeout(label, float(timeout_s), list(tail or quiet_tail)) from None
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        finally:
            for t in readers:
                t.join(timeout=5)
    output = list(tail or quiet_tail)
    if not reply_path.exists():
        if rc == 0 and not reply_required:
            return WorkerReply(None, {}, rc)
        raise WorkerCrashed(label, rc, output)
    reply = json.loads(reply_path.read_text("utf-8"))
    if not reply.get("ok"):
        raise WorkerFailed(label, str(reply.get("error", "unknown error")), user=bool(reply.get("user")),
                           exit_code=rc, traceback_lines=reply.get("traceback") or (), output=output)
    worker = dict(reply.get("worker") or {})
    started = worker.get("started_monotonic")
    if started is not None:
        worker["spawn_s"] = float(started) - t_spawn
    return WorkerReply(reply.get("result"), worker, rc)


class _LogSink:
    """The worker's library output -> the run's log file (opened on first use, one header per worker), and
    stderr also to the terminal in verbose mode; safe from the two reader threads."""

    def __init__(self, stack: contextlib.ExitStack, what: str):
        self._stack, self._what = stack, what
        self._lock = threading.Lock()
        self._fh: Any = None
        self._opened = self._closed = False
        stack.callback(self._close)

    def _close(self) -> None:  # a reader still running past the call (a grandchild holds the pipe) writes no more
        with self._lock:
            self._closed = True

    def write(self, line: str, *, echo: bool) -> None:
        from perfmodel.runlog import log_file, verbose

        if not line.strip():
            return
        with self._lock:
            if self._closed:
                return
            if not self._opened:
                self._opened = True
                self._fh = self._stack.enter_context(log_file(self._what))
            if self._fh is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._fh.write(line.encode("utf-8", "replace"))
                    self._fh.flush()
            if echo and verbose():
                sys.stderr.write(line)


# --------------------------------------------------------------------------------------------------
# worker side


def report_progress(done: int, total: int) -> None:
    """Tell the parent ``done`` of ``total`` steps are done (a :data:`PROGRESS_PREFIX` line on stdout)."""
    sys.stdout.write(f"{PROGRESS_PREFIX} {done} {total}\n")
    sys.stdout.flush()


def read_request(stream: Any = None) -> dict[str, Any]:
    """The request the parent wrote on stdin."""
    return json.loads((stream or sys.stdin).read())


def serve(handler: Callable[[dict[str, Any]], Any], *, started: float | None = None,
          die_with_parent: bool = False) -> int:
    """The worker's main: read the request (stdin), ``handler(request)``, write the reply into the request's
    ``workdir``. Returns the exit code: 0 with a result, 1 with an error reply (:data:`REPLY_FILE`).

    ``started``: when the worker process started (``time.monotonic()``, default this module's import);
    ``die_with_parent``: :func:`die_with_parent` first."""
    if die_with_parent:
        _die_with_parent()
    request = read_request()
    try:
        reply: dict[str, Any] = {"ok": True, "result": handler(request)}
    except PerfmodelError as exc:
        reply = {"ok": False, "error": str(exc), "user": True}
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a typed error, not a traceback dump
        tb = traceback.format_exc().strip().splitlines()
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "user": False, "traceback": tb[-12:]}
    reply["worker"] = {"pid": os.getpid(), "started_monotonic": _T_IMPORTED if started is None else started,
                       "python": sys.version.split()[0]}
    write_reply(request["workdir"], reply)
    return 0 if reply["ok"] else 1


def write_reply(workdir: str | os.PathLike, reply: Mapping[str, Any]) -> None:
    """Write ``reply`` as ``<workdir>/reply.json`` atomically (a worker killed meanwhile leaves no reply)."""
    out = Path(workdir)
    tmp = out / f".{REPLY_FILE}.tmp"
    tmp.write_text(json.dumps(reply, default=str), "utf-8")
    os.replace(tmp, out / REPLY_FILE)


def _die_with_parent() -> str:
    """Make this worker end when the process that started it ends (kill -9 of ``perfmodel collect``
    included), so that no orphan goes on measuring: Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, elsewhere (or
    when prctl fails) a thread that checks every second that the parent (``$PERFMODEL_PARENT_PID``) is still
    the parent. A worker whose parent is already gone exits at once. Returns how it is armed."""
    parent = os.environ.get(PARENT_ENV) or os.environ.get(DIE_WITH_PARENT_ENV)
    how = "none"
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            pass
    if parent is None or not parent.isdigit():
        return how
    if os.getppid() != int(parent):  # the parent ended before the death signal was armed
        os._exit(70)
    if how == "none":

        def watch() -> None:
            while True:
                time.sleep(1.0)
                if os.getppid() != int(parent):
                    os._exit(70)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
        how = "watch"
    return how


die_with_parent = _die_with_parent


__all__ = ["DIE_WITH_PARENT_ENV", "PARENT_ENV", "PROGRESS_PREFIX", "REPLY_FILE", "SINGLE_THREAD_ENV",
           "WorkerCrashed", "WorkerError", "WorkerFailed", "WorkerReply", "WorkerTimeout", "checkout_root",
           "die_with_parent", "read_request", "report_progress", "run_worker", "serve", "worker_env",
           "write_reply"]
