"""Where framework log noise goes: the run's log file, never the terminal (unless ``--verbose``).

TensorFlow / Keras / tf2onnx / the TFLite converter write banners and warnings straight to file descriptors 1
and 2 from C++ (absl) as well as through Python. Commands that load or export models in-process wrap that work
in :func:`native_output_to_log`, which points both descriptors at the log file for its duration; worker
processes' stderr is appended to the same file (:func:`log_file`). ``--verbose`` (``PERFMODEL_VERBOSE=1``)
leaves the terminal as it is, so the noise is shown.

The log file: ``PERFMODEL_LOG`` when set (``perfmodel pipeline`` / ``collect`` set it to a file in their output
folder), else ``<cache>/logs/perfmodel.log``. Foundation module: imports no stage.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LOG_ENV = "PERFMODEL_LOG"
VERBOSE_ENV = "PERFMODEL_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes")


def set_run_log(path: str | os.PathLike | None, *, verbose: bool = False) -> None:
    """Make ``path`` this process's (and its children's) log file; ``verbose``: leave framework output on the
    terminal."""
    if path is not None:
        os.environ[LOG_ENV] = str(Path(path).resolve())
    if verbose:
        os.environ[VERBOSE_ENV] = "1"


def log_path() -> Path:
    env = os.environ.get(LOG_ENV)
    if env:
        return Path(env)
    from perfmodel.paths import cache_dir

    return cache_dir() / "logs" / "perfmodel.log"


def _header(what: str) -> bytes:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return f"--- {now} pid {os.getpid()}: {what}\n".encode()


@contextlib.contextmanager
def log_file(what: str) -> Iterator[IO[bytes] | None]:
    """The log file opened for appending (binary) with a header line; None when it cannot be opened (the
    caller then drops what it would have written: a log must never stop a measurement)."""
    try:
        path = log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "ab")
    except OSError:
        yield None
        return
    with fh:
        fh.write(_header(what))
        fh.flush()
        yield fh


@contextlib.contextmanager
def native_output_to_log(what: str) -> Iterator[Path | None]:
    """Send file descriptors 1 and 2 to the log file while the block runs (C++ and Python output alike);
    yields the log's path (None in verbose mode or when the log cannot be opened: output stays where it is).
    Anything written to ``sys.stdout`` / ``sys.stderr`` meanwhile goes to the log too, so callers that show
    progress write it to a console opened before (:func:`terminal_stream`). The descriptors are process-wide:
    do not run two of these blocks at once in threads of one process (their restores would cross); today's
    callers (model exports: the campaign parent, a quick sample, a fleet board's single task slot) run one at
    a time."""
    if verbose():
        yield None
        return
    with log_file(what) as fh:
        if fh is None:
            yield None
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = []
        try:
            saved = [os.dup(1), os.dup(2)]
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
        except OSError:  # no descriptors to redirect (an embedded interpreter): leave them
            for fd in saved:
                os.close(fd)
            yield None
            return
        try:
            yield log_path()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def terminal_stream() -> IO[str]:
    """A text stream on a duplicate of the current stderr descriptor: progress written to it stays on the
    terminal while :func:`native_output_to_log` redirects descriptor 2."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (OSError, ValueError, AttributeError):  # no real descriptor (captured in tests)
        return sys.stderr


def tail(n: int = 20) -> list[str]:
    """The last ``n`` lines of the log file (for an error message); empty if there is none."""
    try:
        with open(log_path(), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            return fh.read().decode("utf-8", "replace").splitlines()[-n:]
    except OSError:
        return []


__all__ = ["LOG_ENV", "VERBOSE_ENV", "log_file", "log_path", "native_output_to_log", "set_run_log", "tail",
           "terminal_stream", "verbose"]
