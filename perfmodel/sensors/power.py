"""Power sources: hwmon power monitors (INA219 / INA2xx / INA3221 ...) and RAPL powercap.

hwmon (``/sys/class/hwmon/hwmon*``), per channel ``N``:

* ``powerN_input``: microwatts -> ``power_w`` (provenance ``real``);
* ``currN_input``: milliamps -> ``current_a``; ``inN_input``: millivolts -> ``voltage_v``;
* without ``powerN_input``, ``power_w = voltage_v * current_a`` only when both ``inN_input`` and
  ``currN_input`` exist for the *same* channel ``N`` (provenance ``derived``). This pairs the INA3221's
  bus voltage ``inN`` with its ``currN``, and the INA219 / ina2xx bus voltage ``in1`` with ``curr1`` (that
  driver also has ``power1_input``, which wins). ``inN_label`` / ``currN_label`` / ``powerN_label`` name
  the channel (e.g. ``VDD_IN``).

Only chips that have a ``power*_input`` or ``curr*_input`` file are power sources (a motherboard chip's
voltage rails alone are not). Channels are ranked: a label that looks like the board input (``*_IN``,
``IN``, ``total``, ``sys``, ``5V``) first, then channel order.

RAPL (``/sys/class/powercap/intel-rapl:N``, top-level zones only, i.e. packages): ``energy_uj`` is a
counter that wraps at ``max_energy_range_uj``. ``power_w`` = energy delta / time delta between two reads
(summed over packages); the first read gives NaN + "needs two samples".
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path

from perfmodel.readings import Reading

from .base import SensorSource, SysfsFile, natural_key, read_int, read_str, sysfs_path

_CHANNEL_RE = re.compile(r"^(power|curr|in)(\d+)_input$")
_TOTAL_LABEL_RE = re.compile(r"(^|[_\s-])(in|total|sys|system|board|5v)([_\s-]|$)", re.IGNORECASE)


class HwmonPowerChannel(SensorSource):
    """One channel ``N`` of a hwmon power monitor: ``power_w``, ``voltage_v``, ``current_a`` where present."""

    kind = "power"

    def __init__(self, hwmon_dir: Path, channel: int, chip: str | None = None):
        self.hwmon_dir = Path(hwmon_dir)
        self.channel = channel
        self.chip = chip or read_str(self.hwmon_dir / "name") or "unknown"
        n = channel
        self.files: dict[str, SysfsFile] = {}
        for kind in ("power", "curr", "in"):
            p = self.hwmon_dir / f"{kind}{n}_input"
            if p.exists():
                self.files[kind] = SysfsFile(p)
        label = None
        for kind in ("power", "curr", "in"):
            label = read_str(self.hwmon_dir / f"{kind}{n}_label")
            if label:
                break
        self.label = label
        self.name = f"hwmon:{self.hwmon_dir.name}({self.chip}):ch{n}" + (f"[{label}]" if label else "")
        self.location = str(self.hwmon_dir)
        m = []
        if "power" in self.files or ("in" in self.files and "curr" in self.files):
            m.append(("power_w", "W"))
        if "in" in self.files:
            m.append(("voltage_v", "V"))
        if "curr" in self.files:
            m.append(("current_a", "A"))
        self.metrics = tuple(m)

    @property
    def looks_like_total(self) -> bool:
        return bool(self.label and _TOTAL_LABEL_RE.search(self.label))

    def read(self) -> list[Reading]:
        vals: dict[str, float] = {}
        reasons: dict[str, str] = {}
        scale = {"power": 1e-6, "curr": 1e-3, "in": 1e-3}
        for kind, f in self.files.items():
            v, reason = f.read_int()
            if v is None:
                reasons[kind] = reason or "unreadable"
            else:
                vals[kind] = v * scale[kind]
        out: list[Reading] = []
        if "power" in self.files:
            if "power" in vals:
                out.append(Reading("power_w", vals["power"], "W", self.name, "real"))
            else:
                out.append(Reading.missing("power_w", reasons["power"], "W", self.name))
        elif "in" in self.files and "curr" in self.files:
            if "in" in vals and "curr" in vals:
                out.append(Reading("power_w", vals["in"] * vals["curr"], "W", f"{self.name} V*I", "derived"))
            else:
                why = "; ".join(reasons[k] for k in ("in", "curr") if k in reasons)
                out.append(Reading.missing("power_w", f"V*I needs both: {why}", "W", self.name))
        for kind, metric, unit in (("in", "voltage_v", "V"), ("curr", "current_a", "A")):
            if kind in self.files:
                if kind in vals:
                    out.append(Reading(metric, vals[kind], unit, self.name, "real"))
                else:
                    out.append(Reading.missing(metric, reasons[kind], unit, self.name))
        return out

    def describe(self) -> str:
        files = ", ".join(f"{k}{self.channel}_input" for k in self.files)
        derived = "" if "power" in self.files or "power_w" not in dict(self.metrics) else "; power = V*I (derived)"
        return f"{files}{derived}"

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def hwmon_power_channels(hwmon_dir: Path) -> list[HwmonPowerChannel]:
    """The power channels of one hwmon chip (empty when it has no power or current file)."""
    hwmon_dir = Path(hwmon_dir)
    channels: dict[int, set[str]] = {}
    for p in hwmon_dir.glob("*_input"):
        m = _CHANNEL_RE.match(p.name)
        if m:
            channels.setdefault(int(m.group(2)), set()).add(m.group(1))
    if not any({"power", "curr"} & kinds for kinds in channels.values()):
        return []
    chip = read_str(hwmon_dir / "name") or "unknown"
    out = [HwmonPowerChannel(hwmon_dir, n, chip) for n, kinds in sorted(channels.items())
           if {"power", "curr"} & kinds]
    return out


def rank_power_channels(channels: list[HwmonPowerChannel]) -> list[HwmonPowerChannel]:
    """Board-input-looking channels first, then those that give power, then the rest (stable)."""
    return sorted(channels, key=lambda c: (not c.looks_like_total, "power_w" not in dict(c.metrics)))


# --- RAPL ---------------------------------------------------------------------------------------------------


def rapl_zones(root: str | Path = "/") -> list[Path]:
    base = sysfs_path(root, "/sys/class/powercap")
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if re.fullmatch(r"intel-rapl:\d+", p.name)), key=natural_key)


def energy_delta_uj(e0: int, e1: int, max_range_uj: int | None) -> tuple[int | None, str | None]:
    """Energy used between two counter values, allowing one wrap-around at ``max_range_uj``."""
    if e1 >= e0:
        return e1 - e0, None
    if not max_range_uj or max_range_uj <= 0:
        return None, "energy counter went backwards and max_energy_range_uj is unknown"
    if e0 > max_range_uj:
        return None, f"energy counter {e0} above max_energy_range_uj {max_range_uj}"
    return e1 + max_range_uj - e0, None


class RaplSource(SensorSource):
    """RAPL package energy counters -> mean power between consecutive reads (summed over packages)."""

    kind = "power"
    metrics = (("power_w", "W"),)
    #: seconds after which an energy counter that has not moved is judged a stub
    MIN_STUCK_S = 0.05

    def __init__(self, zones: list[Path], clock: Callable[[], float] = time.monotonic):
        self.zones = [Path(z) for z in zones]
        self.clock = clock
        self.files = [SysfsFile(z / "energy_uj") for z in self.zones]
        self.max_range: list[int | None] = [read_int(z / "max_energy_range_uj")[0] for z in self.zones]
        names = [read_str(z / "name") or z.name for z in self.zones]
        self.zone_names = names
        self.name = f"rapl:{'+'.join(names)}"
        self.location = str(self.zones[0].parent) if self.zones else ""
        self._last: tuple[float, list[int]] | None = None

    def read(self) -> list[Reading]:
        t = self.clock()
        values: list[int] = []
        for f in self.files:
            v, reason = f.read_int()
            if v is None or v < 0:
                self._last = None
                return self.missing(reason or f"{f.path}: negative energy")
            values.append(v)
        last, self._last = self._last, (t, values)
        if last is None:
            return self.missing("needs two samples (RAPL gives energy; power = energy delta / time delta)")
        dt = t - last[0]
        if not dt > 0:
            return self.missing("needs two samples at different times")
        total = 0
        deltas = []
        for e0, e1, mx in zip(last[1], values, self.max_range):
            d, reason = energy_delta_uj(e0, e1, mx)
            if d is None:
                return self.missing(reason or "bad energy delta")
            deltas.append(d)
            total += d
        if 0 in deltas:
            # RAPL counts in ~60 uJ steps about every millisecond, and a package never draws 0 W: over a long
            # enough interval a counter that did not move is a stub (a hypervisor can expose an energy counter
            # that never counts: the lent KVM machine's perf 'power/energy-psys' stayed at 0 through 2 s of a
            # numpy matrix-product loop), not 0 W. Over a shorter one it may not have ticked yet: keep the
            # older baseline for the next read.
            stuck = ", ".join(n for n, d in zip(self.zone_names, deltas) if d == 0)
            if dt < self.MIN_STUCK_S:
                self._last = last
                return self.missing(f"energy counter of {stuck} has not moved in {dt * 1e3:.1f} ms (shorter than "
                                    f"{self.MIN_STUCK_S * 1e3:.0f} ms: may not have ticked yet)")
            return self.missing(f"energy counter of {stuck} did not move in {dt * 1e3:.0f} ms: a stub RAPL "
                                "(virtual machine?), not 0 W")
        power = total * 1e-6 / dt
        if not math.isfinite(power):
            return self.missing("non-finite power")
        return [Reading("power_w", power, "W", self.name, "real")]

    def describe(self) -> str:
        return f"{len(self.zones)} package zone(s); power needs two reads"

    def close(self) -> None:
        for f in self.files:
            f.close()
