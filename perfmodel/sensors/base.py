"""Shared pieces of the sensor sources: the source protocol, sysfs readers, text parsers, the command runner.

Every reader here returns a value *or* a reason, never an exception and never a guessed value: a missing,
unreadable, empty or garbled file gives ``(None, reason)``; the sources turn that into
``Reading.missing(...)`` (NaN + reason).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.readings import Reading

#: Runs a command (argv) and returns its stdout; raises ``FileNotFoundError`` when the program does not
#: exist, ``subprocess.TimeoutExpired`` / ``OSError`` / ``subprocess.CalledProcessError`` on failure.
CommandRunner = Callable[[Sequence[str]], str]

#: Seconds a sensor command (``vcgencmd``) may take.
COMMAND_TIMEOUT_S = 2.0


def run_command(argv: Sequence[str]) -> str:
    """The default :data:`CommandRunner`: run ``argv`` with a timeout and return stdout (text)."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=True)
    return proc.stdout


def command_exists(program: str) -> bool:
    return shutil.which(program) is not None


def sysfs_path(root: str | Path, path: str) -> Path:
    """``path`` (absolute, e.g. ``/sys/class/thermal``) under ``root`` (``/`` on a real system)."""
    return Path(root) / path.lstrip("/")


_INT_RE = re.compile(r"[+-]?\d+")


def parse_int(text: str) -> tuple[int | None, str | None]:
    """Parse a sysfs integer file's content (one decimal integer, optional trailing newline).

    Returns ``(value, None)`` or ``(None, reason)``. Anything but exactly one integer is refused: a
    truncated or garbled file must not become a made-up number.
    """
    s = text.strip()
    if not s:
        return None, "empty file"
    if not _INT_RE.fullmatch(s):
        shown = s if len(s) <= 40 else s[:37] + "..."
        return None, f"not an integer: {shown!r}"
    return int(s), None


def read_text(path: Path) -> tuple[str | None, str | None]:
    """The content of a (small) sysfs file, or ``(None, reason)``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(4096)
    except FileNotFoundError:
        return None, f"{path} missing"
    except OSError as exc:  # EIO, EACCES, ENODATA (a sensor that cannot be read right now), ...
        return None, f"{path}: {exc.strerror or exc}"
    return _decoded(data, path)


def _decoded(data: bytes, path: Path) -> tuple[str | None, str | None]:
    """The text of a sysfs file's bytes (trailing NULs dropped), or ``(None, reason)``."""
    try:
        return data.decode("utf-8", errors="strict").rstrip("\x00"), None
    except UnicodeDecodeError:
        return None, f"{path}: not text"


def read_int(path: Path) -> tuple[int | None, str | None]:
    """A sysfs integer file as ``(value, None)`` or ``(None, reason)``."""
    return _int_of(path, *read_text(path))


def _int_of(path: Path, text: str | None, reason: str | None) -> tuple[int | None, str | None]:
    """:func:`parse_int` of a file's ``text``, or ``(None, reason)`` naming the file."""
    if text is None:
        return None, reason
    value, reason = parse_int(text)
    if value is None:
        return None, f"{path}: {reason}"
    return value, None


def read_str(path: Path) -> str | None:
    """A sysfs string file stripped, or None when missing/unreadable/empty."""
    text, _ = read_text(path)
    if text is None:
        return None
    text = text.strip()
    return text or None


def natural_key(path: Path) -> tuple:
    """Sort ``thermal_zone10`` after ``thermal_zone2``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name))


# --- vcgencmd (Raspberry Pi firmware) ----------------------------------------------------------------------

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_TEMP_RE = re.compile(rf"^temp=({_NUM})'C$")
_CLOCK_RE = re.compile(rf"^frequency\((\d+)\)=(\d+)$")
_THROTTLED_RE = re.compile(r"^throttled=0x([0-9a-fA-F]+)$")


def parse_vcgencmd_temp(text: str) -> tuple[float | None, str | None]:
    """``vcgencmd measure_temp`` -> degrees C (``"temp=48.3'C"`` -> 48.3)."""
    m = _TEMP_RE.match(text.strip())
    if not m:
        return None, f"unexpected vcgencmd measure_temp output {_shorten(text)!r}"
    value = float(m.group(1))
    return (value, None) if math.isfinite(value) else (None, "non-finite temperature")


def parse_vcgencmd_clock(text: str) -> tuple[float | None, str | None]:
    """``vcgencmd measure_clock arm`` -> MHz (``"frequency(48)=1200000000"`` -> 1200.0).

    A reading of 0 Hz is what the firmware prints for a clock it cannot measure: refused, not reported.
    """
    m = _CLOCK_RE.match(text.strip())
    if not m:
        return None, f"unexpected vcgencmd measure_clock output {_shorten(text)!r}"
    hz = int(m.group(2))
    if hz <= 0:
        return None, "firmware reports 0 Hz (clock not measurable)"
    return hz / 1e6, None


def parse_vcgencmd_throttled(text: str) -> tuple[int | None, str | None]:
    """``vcgencmd get_throttled`` -> bit mask (``"throttled=0x50005"`` -> 0x50005)."""
    m = _THROTTLED_RE.match(text.strip())
    if not m or len(m.group(1)) > 16:
        return None, f"unexpected vcgencmd get_throttled output {_shorten(text)!r}"
    return int(m.group(1), 16), None


def _shorten(text: str, n: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 3] + "..."


# --- the source protocol ------------------------------------------------------------------------------------


class SensorSource:
    """A sensor source. Subclasses set ``kind``, ``name``, ``location``, ``metrics`` and implement
    :meth:`read` (one sample: a list of :class:`~perfmodel.readings.Reading`, NaN + reason for what is
    missing; it should not raise, and the :class:`~perfmodel.sensors.Sampler` survives it if it does).
    """

    kind: str = ""
    name: str = ""
    location: str = ""
    #: (metric name, unit) pairs this source gives; used to record NaN + reason when it fails.
    metrics: tuple[tuple[str, str], ...] = ()

    def read(self) -> list[Reading]:  # pragma: no cover - interface
        raise NotImplementedError

    def missing(self, reason: str) -> list[Reading]:
        """NaN + ``reason`` for every metric of this source."""
        return [Reading.missing(m, reason, unit=u, source=self.name) for m, u in self.metrics]

    def close(self) -> None:
        """Release open files (sources that keep descriptors open override this)."""

    def describe(self) -> str:
        """A short note for ``perfmodel doctor`` (governor, channel labels, ...); empty by default."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class VcgencmdSource(SensorSource):
    """One reading parsed from the output of a ``vcgencmd`` command (Raspberry Pi firmware). Subclasses set
    ``argv``, ``parse`` (output text -> ``(value, None)`` or ``(None, reason)``) and one ``metrics`` pair;
    ``runner`` is injectable for tests."""

    argv: tuple[str, ...] = ()
    parse: Callable[[str], tuple[float | None, str | None]]

    def __init__(self, runner: CommandRunner | None = None):
        self.runner = runner or run_command

    def read(self) -> list[Reading]:
        try:
            out = self.runner(list(self.argv))
        except Exception as exc:  # noqa: BLE001 - any failure of the command is a missing reading
            return self.missing(f"vcgencmd failed: {exc}")
        value, reason = self.parse(out)
        if value is None:
            return self.missing(reason or "unparsable")
        metric, unit = self.metrics[0]
        return [Reading(metric, float(value), unit, self.name, "real")]


@dataclass
class SourceInfo:
    """One sensor source found (or looked for) by :func:`perfmodel.sensors.discover`."""

    kind: str
    name: str
    location: str
    available: bool
    reason: str
    metrics: list[str] = field(default_factory=list)
    source: SensorSource | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "location": self.location, "available": self.available,
                "reason": self.reason, "metrics": list(self.metrics)}


# --- persistent sysfs files ----------------------------------------------------------------------------------


class SysfsFile:
    """A sysfs attribute opened once and re-read with ``pread(fd, n, 0)`` (cheap enough for a 10 ms sampler).

    :meth:`read_int` / :meth:`read_text` return ``(value, None)`` or ``(None, reason)`` like the functions
    above. A file that cannot be opened is retried on the next read (a sensor that appears late, or an
    ``EACCES`` that goes away); a read error closes the descriptor so that the next read reopens it.
    """

    __slots__ = ("path", "_fd")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def _open(self) -> str | None:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return f"{self.path} missing"
        except OSError as exc:
            return f"{self.path}: {exc.strerror or exc}"
        return None

    def read_text(self) -> tuple[str | None, str | None]:
        if self._fd is None:
            reason = self._open()
            if reason:
                return None, reason
        try:
            data = os.pread(self._fd, 4096, 0)
        except OSError as exc:  # EIO / ENODATA: sensor not readable right now
            self.close()
            return None, f"{self.path}: {exc.strerror or exc}"
        return _decoded(data, self.path)

    def read_int(self) -> tuple[int | None, str | None]:
        return _int_of(self.path, *self.read_text())

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        self.close()
