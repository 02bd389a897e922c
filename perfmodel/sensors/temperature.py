"""Temperature sources: thermal zones, hwmon ``temp*_input`` and ``vcgencmd measure_temp``.

* ``/sys/class/thermal/thermal_zone*/temp``: millidegrees C (``type`` names the zone, e.g. ``cpu-thermal``).
* ``/sys/class/hwmon/hwmon*/temp*_input``: millidegrees C (``temp*_label`` and the chip's ``name``).
* ``vcgencmd measure_temp``: the Raspberry Pi firmware's SoC temperature, ``temp=48.3'C``.
"""

from __future__ import annotations

import re
from pathlib import Path

from perfmodel.readings import Reading

from .base import (
    SensorSource,
    SysfsFile,
    VcgencmdSource,
    natural_key,
    parse_vcgencmd_temp,
    read_str,
    sysfs_path,
)

UNIT = "degC"


class ThermalZoneSource(SensorSource):
    """One ``/sys/class/thermal/thermal_zoneN``."""

    kind = "temperature"
    metrics = (("temperature_c", UNIT),)

    def __init__(self, zone_dir: Path):
        self.zone_dir = Path(zone_dir)
        ztype = read_str(self.zone_dir / "type") or "unknown"
        self.name = f"thermal:{self.zone_dir.name}({ztype})"
        self.zone_type = ztype
        self.location = str(self.zone_dir / "temp")
        self._file = SysfsFile(self.zone_dir / "temp")

    def read(self) -> list[Reading]:
        value, reason = self._file.read_int()
        if value is None:
            return self.missing(reason or "unreadable")
        return [Reading("temperature_c", value / 1000.0, UNIT, self.name, "real")]

    def close(self) -> None:
        self._file.close()


class HwmonTempSource(SensorSource):
    """The ``temp*_input`` channels of one hwmon chip (one reading per channel)."""

    kind = "temperature"

    def __init__(self, hwmon_dir: Path):
        self.hwmon_dir = Path(hwmon_dir)
        self.chip = read_str(self.hwmon_dir / "name") or "unknown"
        self.name = f"hwmon:{self.hwmon_dir.name}({self.chip})"
        self.location = str(self.hwmon_dir)
        self.channels = sorted(self.hwmon_dir.glob("temp*_input"), key=natural_key)
        self.metrics = tuple(("temperature_c", UNIT) for _ in self.channels)
        self._files = [SysfsFile(p) for p in self.channels]
        self._names = [self._channel_name(p) for p in self.channels]

    def _channel_name(self, path: Path) -> str:
        stem = path.name[: -len("_input")]
        label = read_str(self.hwmon_dir / f"{stem}_label")
        return f"{self.name}:{stem}" + (f"[{label}]" if label else "")

    def read(self) -> list[Reading]:
        out = []
        for f, src in zip(self._files, self._names):
            value, reason = f.read_int()
            if value is None:
                out.append(Reading.missing("temperature_c", reason or "unreadable", UNIT, src))
            else:
                out.append(Reading("temperature_c", value / 1000.0, UNIT, src, "real"))
        return out

    def missing(self, reason: str) -> list[Reading]:
        return [Reading.missing("temperature_c", reason, UNIT, n) for n in self._names]

    def close(self) -> None:
        for f in self._files:
            f.close()


class VcgencmdTempSource(VcgencmdSource):
    """``vcgencmd measure_temp`` (Raspberry Pi). ``runner`` is injectable for tests."""

    kind = "temperature"
    name = "vcgencmd measure_temp"
    location = "vcgencmd measure_temp"
    metrics = (("temperature_c", UNIT),)
    argv = ("vcgencmd", "measure_temp")
    parse = staticmethod(parse_vcgencmd_temp)


def thermal_zones(root: str | Path = "/") -> list[Path]:
    base = sysfs_path(root, "/sys/class/thermal")
    return sorted((p for p in base.glob("thermal_zone*") if re.fullmatch(r"thermal_zone\d+", p.name)),
                  key=natural_key) if base.is_dir() else []


def hwmon_dirs(root: str | Path = "/") -> list[Path]:
    base = sysfs_path(root, "/sys/class/hwmon")
    return sorted(base.glob("hwmon*"), key=natural_key) if base.is_dir() else []
