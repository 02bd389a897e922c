"""Per-image timing of any command from the lines it prints: a quick sample, or a trace.

The command runs in its own process group (:mod:`perfmodel.procs`) with stdout piped; perfmodel stamps
each line with ``time.monotonic()`` as it arrives. By default every stdout line stands for one finished
image; ``regex`` picks the progress lines out of other output. Python commands get
``PYTHONUNBUFFERED=1`` so their lines are not held back in a block buffer; other programs must flush
each line (e.g. ``stdbuf -oL CMD``).

Warm-up (as the runners' ``warmup_images`` / ``warmup_min_s``): the first ``warmup_lines`` (2) progress
lines are skipped, and then every line until one arrives ``warmup_s`` (0.5 s) or more after the first
line; the sample's clock starts at that last skipped line, so each counted line is one whole image after
it. (The start-up before the first line, e.g. model loading, is never timed.)

:func:`sample_command` counts images until ``images`` were counted or an image ends ``seconds`` after
the start (whichever first), then ends the command's process group. :func:`trace_command` counts for
``duration_s`` and closes an interval at the first line ``period_s`` after its start (``phase="trace"``
records with ``images`` per interval, as :func:`perfmodel.collect.trace.run_trace` writes).

A command that prints no line within ``timeout`` (hung), exits non-zero before the sample is complete
(failing), or exits without a progress line (silent) raises :class:`PerfmodelError` with what it
printed on stderr; its process group is ended in every case, Ctrl-C included.
"""

from __future__ import annotations

import math
import os
import queue
import re
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.procs import CommandTimeout, end_group
from perfmodel.readings import Reading

WARMUP_LINES = 2
WARMUP_S = 0.5
#: sample bound when neither images nor seconds is given
DEFAULT_SECONDS = 3.0


def _stderr_tail(fh, n: int = 5) -> str:
    try:
        fh.seek(0)
        lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    except (OSError, ValueError):
        return ""
    return (": stderr: " + " | ".join(lines[-n:])) if lines else ""


class LineStream:
    """A running command whose stdout lines are read by a thread and handed out with their arrival times."""

    def __init__(self, argv: Sequence[str], regex: str | None = None):
        self.argv = [str(a) for a in argv]
        if not self.argv:
            raise PerfmodelError("empty command")
        try:
            self.pattern = re.compile(regex) if regex else None
        except re.error as exc:
            raise PerfmodelError(f"--progress-regex {regex!r} is not a regular expression: {exc}") from None
        self.shown = shlex.join(self.argv)
        self.lines_seen = 0  #: stdout lines (all, matched or not)
        self._q: queue.Queue = queue.Queue()
        self._err = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.launched = time.monotonic()  #: just before the command started
        try:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        except (FileNotFoundError, PermissionError) as exc:
            self._err.close()
            raise PerfmodelError(f"cannot start the command {self.shown}: {exc}") from None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for raw in iter(self.proc.stdout.readline, b""):
                self._q.put((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\r\n")))
        except (ValueError, OSError):  # the pipe was closed under us (the group was ended)
            pass
        self._q.put(None)

    def next_progress(self, deadline: float, what: str) -> float | None:
        """Arrival time of the next progress line; None when the command closed its output (exited).
        Past ``deadline`` (monotonic) the group is ended and :class:`CommandTimeout` raised."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise CommandTimeout(f"the command printed no {what} in time (hung?): ended it and its child "
                                     f"processes (process group {self.proc.pid}) after {self.lines_seen} "
                                     f"stdout line(s): {self.shown} (give a longer --timeout if it needs more)"
                                     + _stderr_tail(self._err))
            try:
                item = self._q.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if item is None:
                return None
            t, line = item
            self.lines_seen += 1
            if self.pattern is None or self.pattern.search(line):
                return t

    def exit_code(self, wait_s: float = 5.0) -> int | None:
        try:
            return self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:  # closed stdout but still running: it is ended with the group
            return None

    def stderr_tail(self) -> str:
        return _stderr_tail(self._err)

    def cpu_seconds(self) -> tuple[float, str]:
        """CPU seconds (user + system) the command's process tree has used so far: the command, its live
        descendants and the children it has reaped (psutil); ``(NaN, reason)`` when unreadable."""
        try:
            import psutil
        except ImportError:
            return math.nan, "psutil not installed"
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
            total = 0.0
            for i, p in enumerate(procs):
                try:
                    ct = p.cpu_times()
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                total += ct.user + ct.system + (ct.children_user + ct.children_system if i == 0 else 0.0)
            return total, ""
        except (psutil.Error, OSError) as exc:
            return math.nan, f"the command's CPU time is unreadable: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        """End the command's process group (if anything of it still runs) and free the pipes."""
        end_group(self.proc)
        self._reader.join(timeout=5)
        self._err.close()


@dataclass
class StatePoint:
    """The machine's state at one moment of a sample: sensor readings (``temperature_c``, ``freq_mhz``, ...;
    NaN + reason where no sensor gave one) and the CPU seconds the command had used."""

    t: float  #: time.monotonic()
    readings: dict[str, Reading] = field(default_factory=dict)
    cpu_s: float = math.nan
    cpu_reason: str = ""


@dataclass
class LineSample:
    images: int  #: counted images (lines after the warm-up)
    elapsed_s: float  #: from the end of the warm-up to the last counted line
    fps: float
    rel_se: float  #: relative standard error of the mean per-image time (sd / mean / sqrt(n))
    warmup_lines: int
    warmup_s: float
    stopped_by: str  #: "images", "seconds" or "exit" (the command ended first, exit code 0)
    intervals_s: list[float] = field(default_factory=list)
    #: the state at the end of the warm-up and at the last counted image (with ``sensors`` only)
    state_start: StatePoint | None = None
    state_end: StatePoint | None = None
    #: time.monotonic() of the command's launch, of the sample's start (end of the warm-up) and last image
    launched: float = math.nan
    t_first: float = math.nan
    t_last: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "elapsed_s": self.elapsed_s, "sample_fps": self.fps,
                "rel_se": self.rel_se, "warmup_lines": self.warmup_lines, "warmup_s": self.warmup_s,
                "stopped_by": self.stopped_by}


def _warm(stamps: list[float], warmup_lines: int, warmup_s: float) -> bool:
    """Whether the newest line ends the warm-up: at least ``warmup_lines`` lines, the newest ``warmup_s`` or
    more after the first (the sample's clock starts at it; the next line is the first counted image)."""
    return len(stamps) >= max(1, warmup_lines) and stamps[-1] - stamps[0] >= warmup_s


def _failure(stream: LineStream, rc: int | None, n_lines: int, need: str) -> PerfmodelError:
    err = stream.stderr_tail()
    if rc not in (0, None):
        return PerfmodelError(f"the command failed: exited with code {rc} after {n_lines} progress line(s), "
                              f"before {need}: {stream.shown}{err}")
    if n_lines == 0:
        return PerfmodelError(f"the command printed no progress line ({stream.lines_seen} stdout line(s); "
                              "perfmodel expects one stdout line per image, or lines matching "
                              f"--progress-regex) and exited with code {rc}: {stream.shown}{err}")
    return PerfmodelError(f"the command exited (code {rc}) after {n_lines} progress line(s), too few for "
                          f"{need}: {stream.shown}{err}")


def sample_command(argv: Sequence[str], *, images: int | None = None, seconds: float | None = None,
                   regex: str | None = None, timeout: float = 600.0, warmup_lines: int = WARMUP_LINES,
                   warmup_s: float = WARMUP_S,
                   sensors: Callable[[], dict[str, Reading]] | None = None,
                   wrap: Sequence[str] = (), linger_s: float = 0.0) -> LineSample:
    """A quick sample of a command's throughput from its progress lines (module docstring). With neither
    ``images`` nor ``seconds``: :data:`DEFAULT_SECONDS`. At least 2 counted images are needed.

    ``sensors``: a snapshot of the machine's sensors (:meth:`perfmodel.sensors.SensorSet.read`), taken with
    the command's CPU time at the end of the warm-up and at the last counted image (``state_start`` /
    ``state_end``: the sample's own state). ``wrap``: a prefix the command runs under (e.g. ``perf stat
    ... --``); the command's lines and process group are still its own. ``linger_s``: how long the command
    runs on after the sample's last image before its group is ended (``perf stat -I`` writes the interval
    covering the sample's end)."""
    if images is not None and (isinstance(images, bool) or int(images) < 2):
        raise PerfmodelError(f"a command's sample needs at least 2 images, got {images}")
    if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
        raise PerfmodelError(f"sample seconds must be a finite number > 0, got {seconds}")
    if not timeout > 0:
        raise PerfmodelError(f"--timeout must be > 0, got {timeout}")
    if images is None and seconds is None:
        seconds = DEFAULT_SECONDS
    need = f"{images} image(s)" if seconds is None else f"{seconds:g} s" if images is None else \
        f"{images} image(s) or {seconds:g} s"
    need = f"a sample of {need} after a warm-up of {warmup_lines} line(s) and {warmup_s:g} s"
    stream = LineStream([*wrap, *argv], regex)
    deadline = time.monotonic() + float(timeout)
    stamps: list[float] = []
    t0: float | None = None
    i0 = -1
    stopped = "exit"
    points: list[StatePoint] = []

    def mark() -> None:
        if sensors is not None:
            cpu, why = stream.cpu_seconds()
            points.append(StatePoint(time.monotonic(), sensors(), cpu, why))

    try:
        while True:
            t = stream.next_progress(deadline, "progress line" if stamps else "first progress line")
            if t is None:
                break
            stamps.append(t)
            if t0 is None:
                if _warm(stamps, warmup_lines, warmup_s):
                    i0 = len(stamps) - 1
                    t0 = stamps[i0]
                    mark()
                continue
            n = len(stamps) - i0 - 1
            if images is not None and n >= int(images):
                stopped = "images"
                mark()
                break
            if seconds is not None and t - t0 >= seconds and n >= 2:
                stopped = "seconds"
                mark()
                break
        if stopped == "exit":
            if t0 is not None:
                mark()
            rc = stream.exit_code()
            counted = len(stamps) - i0 - 1 if t0 is not None else 0
            if rc not in (0, None) or counted < 2:
                raise _failure(stream, rc, len(stamps), need)
        elif linger_s > 0:
            time.sleep(linger_s)
    finally:
        stream.close()
    counted = stamps[i0:]
    dts = [b - a for a, b in zip(counted, counted[1:])]
    n, el = len(dts), counted[-1] - counted[0]
    if not el > 0:
        raise PerfmodelError(f"the command's {n} counted lines arrived at once (its output is buffered: flush "
                             "each line, e.g. stdbuf -oL CMD): no per-image timing")
    mean = el / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in dts) / (n - 1)) if n > 1 else math.nan
    rel = sd / mean / math.sqrt(n) if n > 1 and mean > 0 else 0.0
    return LineSample(n, el, n / el, rel, i0 + 1, stamps[i0] - stamps[0], stopped, dts,
                      points[0] if points else None, points[-1] if len(points) > 1 else None,
                      stream.launched, counted[0], counted[-1])


def trace_intervals(argv: Sequence[str], duration_s: float, period_s: float = 1.0, *, regex: str | None = None,
                    timeout: float = 60.0, warmup_lines: int = WARMUP_LINES,
                    warmup_s: float = WARMUP_S, sensors: Callable[[], dict[str, Reading]] | None = None,
                    states: list | None = None) -> tuple[list[tuple[float, float, int]], str]:
    """``[(t_start_s, t_end_s, images)]`` from the end of the warm-up for ``duration_s`` (times relative to
    it), and how it stopped (``"duration"`` or ``"exit"``). ``timeout``: the longest wait for one line.
    ``sensors`` with ``states``: a sensor snapshot taken as each interval closes is appended to ``states``
    (one per interval: the state a trace's temperature / frequency columns hold)."""
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise PerfmodelError(f"duration must be a finite number of seconds > 0, got {duration_s}")
    if not 0.01 <= period_s <= duration_s:
        raise PerfmodelError(f"the trace period must be between 0.01 s and the duration, got {period_s}")
    stream = LineStream(argv, regex)
    stamps: list[float] = []
    t0: float | None = None
    out: list[tuple[float, float, int]] = []
    start, count, how = 0.0, 0, "exit"
    try:
        while True:
            t = stream.next_progress(time.monotonic() + float(timeout),
                                     "progress line" if stamps else "first progress line")
            if t is None:
                break
            if t0 is None:
                stamps.append(t)
                if _warm(stamps, warmup_lines, warmup_s):
                    t0, start = t, 0.0
                continue
            count += 1
            if t - t0 - start >= period_s:
                out.append((start, t - t0, count))
                if sensors is not None and states is not None:
                    states.append(sensors())
                start, count = t - t0, 0
                if t - t0 >= duration_s:
                    how = "duration"
                    break
        if how == "exit":
            rc = stream.exit_code()
            if rc not in (0, None) or not out:
                raise _failure(stream, rc, len(stamps) + sum(c for *_, c in out) + count,
                               f"a trace of at least one {period_s:g} s interval")
    finally:
        stream.close()
    return out, how


def trace_command(argv: Sequence[str], duration_s: float, period_s: float = 1.0, *, out=None,
                  regex: str | None = None, timeout: float = 60.0, framework: str = "", network: str = "",
                  threads: int = 1, force: bool = False, sensor_root="/"):
    """A trace of a user's command (``phase="trace"`` records: ``images`` per interval, and the temperature
    and frequency read as each interval closes, NaN + reason where no sensor gives them; sensors under
    ``sensor_root``), stored as one cell in ``out`` when given; returns ``(records, meta)``."""
    import hashlib
    from pathlib import Path

    from perfmodel.data.schema import empty_records, records_from_readings, validate
    from perfmodel.readings import Reading

    from .meta import new_run_id, run_metadata

    argv = [str(a) for a in argv]
    if not argv:
        raise PerfmodelError("empty command")
    name = Path(argv[-1] if argv[0].startswith("python") and len(argv) > 1 else argv[0]).name
    digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()[:10]
    cell_id = f"trace-command__{digest}"
    spec = {"mode": "trace-command", "command": argv, "duration_s": duration_s, "period_s": period_s,
            "progress_regex": regex, "warmup_lines": WARMUP_LINES, "warmup_s": WARMUP_S}
    run_id = new_run_id()
    metadata = run_metadata("software", None, run_id=run_id)
    ds = None
    try:
        if out is not None:
            from .campaign import open_dataset

            ds = open_dataset(out, metadata, spec, resume=True, merge=True, force=force,
                              measurement_diff=lambda old: [])
        from perfmodel.sensors import SensorSet

        sset = SensorSet(sensor_root)
        states: list[dict[str, Reading]] = []
        try:  # the machine's temperature / frequency per interval: a board's traces then model the ratio
            intervals, how = trace_intervals(argv, duration_s, period_s, regex=regex, timeout=timeout,
                                             sensors=sset.read, states=states)
        finally:
            sset.close()
        keys = {"run_id": run_id, "cell_id": cell_id, "board": metadata["board"], "framework": framework or "command",
                "network": network or name, "threads": int(threads), "workload": f"command:{name}",
                "phase": "trace", "repeat": 0}
        def sensed(k: int) -> list[Reading]:
            snap = states[k] if k < len(states) else {}
            return [snap[m] for m in ("temperature_c", "freq_mhz") if m in snap]

        frames = [records_from_readings([Reading("images", float(n), "count", "perfmodel.collect.lines "
                                                  "(stdout progress lines)", "real"), *sensed(k)],
                                        **keys, t_start_s=a, t_end_s=b) for k, (a, b, n) in enumerate(intervals)]
        import pandas as pd

        df = validate(pd.concat(frames, ignore_index=True) if frames else empty_records(),
                      what="command trace records")
        meta = {"mode": "trace-command", "command": argv, "status": "done", "stopped_by": how,
                "intervals": len(intervals), "run_id": run_id, "framework": keys["framework"],
                "network": keys["network"], "threads": int(threads), "duration_s": duration_s,
                "period_s": period_s, "progress_regex": regex}
        if ds is not None:
            ds.write_cell(cell_id, df, meta)
            meta["path"] = str(ds.path)
    finally:
        if ds is not None:
            ds.release()
    return df, meta


__all__ = ["LineStream", "LineSample", "sample_command", "trace_intervals", "trace_command", "DEFAULT_SECONDS",
           "WARMUP_LINES", "WARMUP_S"]
