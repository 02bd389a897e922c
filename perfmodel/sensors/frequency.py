"""CPU frequency and throttling sources.

* cpufreq: ``/sys/devices/system/cpu/cpufreq/policy*/`` (or ``cpu*/cpufreq/``) ``cpuinfo_cur_freq`` (the
  frequency read back from the hardware, often root-only) else ``scaling_cur_freq`` (the kernel's current
  frequency), both in kHz; ``scaling_governor``, ``scaling_min_freq``, ``scaling_max_freq`` are reported by
  :meth:`CpufreqSource.describe`. ``freq_mhz`` is the CPU-weighted mean over the policies that read.
* ``vcgencmd measure_clock arm`` (Raspberry Pi firmware): ``frequency(48)=1200000000`` (Hz).
* ``psutil.cpu_freq()``: on Linux psutil reads cpufreq when it exists, else ``/proc/cpuinfo`` "cpu MHz",
  which on a VM is the host's nominal figure, not a measurement; the source label says which
  (provenance ``software``).
* throttling: ``vcgencmd get_throttled`` (``throttled=0x50005``) or the firmware's sysfs file
  ``/sys/devices/platform/soc/soc:firmware/get_throttled`` (hex); :func:`decode_throttled` names the bits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfmodel.readings import Reading

from .base import (
    SensorSource,
    SysfsFile,
    VcgencmdSource,
    natural_key,
    parse_vcgencmd_clock,
    parse_vcgencmd_throttled,
    read_int,
    read_str,
    sysfs_path,
)

UNIT = "MHz"

#: Raspberry Pi firmware throttling bits (``vcgencmd get_throttled``).
THROTTLE_BITS: dict[int, str] = {
    0: "under-voltage detected",
    1: "ARM frequency capped",
    2: "currently throttled",
    3: "soft temperature limit active",
    16: "under-voltage has occurred",
    17: "ARM frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}

FIRMWARE_THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled"


def decode_throttled(mask: int) -> list[str]:
    """The names of the set bits of a ``get_throttled`` mask (unknown bits as ``"bit N"``)."""
    out = []
    for bit in range(max(int(mask).bit_length(), 0)):
        if mask >> bit & 1:
            out.append(THROTTLE_BITS.get(bit, f"bit {bit}"))
    return out


def parse_cpu_list(text: str) -> list[int] | None:
    """``"0 1 2 3"`` or ``"0-3"`` / ``"0-1,4"`` -> CPU numbers; None when garbled."""
    cpus: list[int] = []
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            return None
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a or b - a > 4096:
            return None
        cpus.extend(range(a, b + 1))
    return cpus or None


class CpufreqPolicy:
    """One cpufreq policy directory (or a per-CPU ``cpuN/cpufreq`` directory)."""

    def __init__(self, directory: Path, cpus: list[int]):
        self.directory = Path(directory)
        self.cpus = cpus
        hw = self.directory / "cpuinfo_cur_freq"
        # cpuinfo_cur_freq is read from the hardware but is usually root-only: use it when it reads now.
        value, _ = read_int(hw)
        self.file_name = "cpuinfo_cur_freq" if value is not None else "scaling_cur_freq"
        self.file = SysfsFile(self.directory / self.file_name)

    def info(self) -> dict[str, Any]:
        def khz(name: str) -> float | None:
            v, _ = read_int(self.directory / name)
            return v / 1000.0 if v is not None and v > 0 else None

        return {"cpus": self.cpus, "governor": read_str(self.directory / "scaling_governor"),
                "min_mhz": khz("scaling_min_freq"), "max_mhz": khz("scaling_max_freq"),
                "hw_min_mhz": khz("cpuinfo_min_freq"), "hw_max_mhz": khz("cpuinfo_max_freq"),
                "file": self.file_name}


def cpufreq_policies(root: str | Path = "/") -> list[CpufreqPolicy]:
    base = sysfs_path(root, "/sys/devices/system/cpu")
    out: list[CpufreqPolicy] = []
    pol_dir = base / "cpufreq"
    policies = sorted((p for p in pol_dir.glob("policy*") if re.fullmatch(r"policy\d+", p.name)),
                      key=natural_key) if pol_dir.is_dir() else []
    for p in policies:
        if not (p / "scaling_cur_freq").exists() and not (p / "cpuinfo_cur_freq").exists():
            continue
        text = read_str(p / "affected_cpus") or read_str(p / "related_cpus") or ""
        cpus = parse_cpu_list(text) or [int(p.name[len("policy"):])]
        out.append(CpufreqPolicy(p, cpus))
    if out:
        return out
    # older kernels / fake trees: per-CPU directories, deduplicated by their real path
    seen: set[Path] = set()
    cpu_dirs = sorted((p for p in base.glob("cpu*") if re.fullmatch(r"cpu\d+", p.name)), key=natural_key) \
        if base.is_dir() else []
    for c in cpu_dirs:
        d = c / "cpufreq"
        if not d.is_dir():
            continue
        real = d.resolve()
        if real in seen:
            continue
        seen.add(real)
        if (d / "scaling_cur_freq").exists() or (d / "cpuinfo_cur_freq").exists():
            out.append(CpufreqPolicy(d, [int(c.name[3:])]))
    return out


class CpufreqSource(SensorSource):
    """cpufreq: mean current frequency over all CPUs (each policy weighted by its CPU count)."""

    kind = "frequency"
    metrics = (("freq_mhz", UNIT),)

    def __init__(self, policies: list[CpufreqPolicy]):
        self.policies = policies
        files = sorted({p.file_name for p in policies})
        self.name = f"cpufreq {'/'.join(files)}"
        self.location = str(policies[0].directory.parent) if policies else ""

    def read(self) -> list[Reading]:
        total = weight = 0.0
        bad: list[str] = []
        reasons: list[str] = []
        for p in self.policies:
            value, reason = p.file.read_int()
            if value is None or value <= 0:
                bad.append(p.directory.name)
                reasons.append(reason or f"{p.file.path}: {value} kHz")
                continue
            total += value / 1000.0 * len(p.cpus)
            weight += len(p.cpus)
        if not weight:
            return self.missing("; ".join(reasons) or "no cpufreq policy")
        ncpu = int(weight)
        src = f"{self.name} (mean of {ncpu} CPU{'s' if ncpu != 1 else ''}"
        src += f"; unreadable: {', '.join(bad)})" if bad else ")"
        return [Reading("freq_mhz", total / weight, UNIT, src, "real")]

    def describe(self) -> str:
        notes = []
        for p in self.policies:
            i = p.info()
            rng = (f"{i['min_mhz']:.0f}-{i['max_mhz']:.0f} MHz" if i["min_mhz"] and i["max_mhz"] else "range n/a")
            notes.append(f"{p.directory.name}: governor {i['governor'] or 'n/a'}, {rng}")
        return "; ".join(notes)

    def close(self) -> None:
        for p in self.policies:
            p.file.close()


class VcgencmdClockSource(VcgencmdSource):
    """``vcgencmd measure_clock arm`` (Raspberry Pi firmware)."""

    kind = "frequency"
    name = "vcgencmd measure_clock arm"
    location = "vcgencmd measure_clock arm"
    metrics = (("freq_mhz", UNIT),)
    argv = ("vcgencmd", "measure_clock", "arm")
    parse = staticmethod(parse_vcgencmd_clock)


def _cpuinfo_has_mhz(root: str | Path) -> bool:
    text = read_str(sysfs_path(root, "/proc/cpuinfo")) or ""
    return "cpu MHz" in text


class PsutilFreqSource(SensorSource):
    """``psutil.cpu_freq()``; the label says whether psutil's figure comes from cpufreq or /proc/cpuinfo."""

    kind = "frequency"
    location = "psutil.cpu_freq()"
    metrics = (("freq_mhz", UNIT),)

    def __init__(self, cpu_freq: Callable[[], Any] | None = None, root: str | Path = "/"):
        if cpu_freq is None:
            import psutil

            cpu_freq = psutil.cpu_freq
        self.cpu_freq = cpu_freq
        if cpufreq_policies(root):
            self.origin = "cpufreq"
        elif _cpuinfo_has_mhz(root):
            self.origin = "/proc/cpuinfo 'cpu MHz'; on a VM a nominal figure, not a measurement"
        else:
            self.origin = "origin unknown"
        self.name = f"psutil.cpu_freq ({self.origin})"

    def read(self) -> list[Reading]:
        try:
            f = self.cpu_freq()
        except Exception as exc:  # noqa: BLE001
            return self.missing(f"psutil.cpu_freq failed: {exc}")
        cur = getattr(f, "current", None)
        if not isinstance(cur, (int, float)) or not (cur > 0) or cur != cur or cur == float("inf"):
            return self.missing(f"psutil.cpu_freq gives no frequency ({f!r})")
        return [Reading("freq_mhz", float(cur), UNIT, self.name, "software")]


class VcgencmdThrottleSource(VcgencmdSource):
    """``vcgencmd get_throttled``: the firmware's throttling bit mask (``throttled`` metric, unit ``flags``)."""

    kind = "throttle"
    name = "vcgencmd get_throttled"
    location = "vcgencmd get_throttled"
    metrics = (("throttled", "flags"),)
    argv = ("vcgencmd", "get_throttled")
    parse = staticmethod(parse_vcgencmd_throttled)


_HEX_RE = re.compile(r"(?:0x)?([0-9a-fA-F]{1,16})")


def parse_hex(text: str) -> tuple[int | None, str | None]:
    s = text.strip()
    m = _HEX_RE.fullmatch(s)
    if not m:
        return None, f"not a hex number: {s[:40]!r}" if s else "empty file"
    return int(m.group(1), 16), None


class FirmwareThrottleSource(SensorSource):
    """The Raspberry Pi firmware's ``get_throttled`` sysfs file (hex mask, same bits as vcgencmd)."""

    kind = "throttle"
    metrics = (("throttled", "flags"),)

    def __init__(self, path: Path):
        self.file = SysfsFile(path)
        self.location = str(path)
        self.name = "firmware get_throttled"

    def read(self) -> list[Reading]:
        text, reason = self.file.read_text()
        if text is None:
            return self.missing(reason or "unreadable")
        value, reason = parse_hex(text)
        if value is None:
            return self.missing(f"{self.file.path}: {reason}")
        return [Reading("throttled", float(value), "flags", self.name, "real")]

    def close(self) -> None:
        self.file.close()
