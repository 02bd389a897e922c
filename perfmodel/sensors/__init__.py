"""Board sensors: temperature, CPU frequency, power, throttling, sampled on a timeline.

Sources, best first per kind (the first one that reads wins; the next is used when it fails):

* temperature (``temperature_c``): thermal zones (CPU/SoC zones first), hwmon ``temp*_input`` (CPU chips
  first), ``vcgencmd measure_temp``.
* frequency (``freq_mhz``): cpufreq (``cpuinfo_cur_freq`` / ``scaling_cur_freq``), ``vcgencmd measure_clock
  arm``, ``psutil.cpu_freq()`` (software; on a VM without cpufreq it is ``/proc/cpuinfo``'s nominal MHz and
  the source label says so).
* power (``power_w``, ``voltage_v``, ``current_a``): an external analyzer log when one is given, hwmon power
  monitors (INA219 / INA3221 ..., board-input channel first), RAPL powercap.
* throttle (``throttled``, bit mask, see :func:`decode_throttled`): the firmware's ``get_throttled`` sysfs
  file, ``vcgencmd get_throttled``.

Commands (``vcgencmd``) and psutil are only used on the real system (``root="/"``) unless a ``runner`` /
``cpu_freq`` is injected, so a fake sysfs tree under ``root`` never mixes with this machine's readings.

Public API: :func:`discover`, :func:`read_sensors`, :class:`Sampler`.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.readings import Reading

from .base import CommandRunner, SensorSource, command_exists, sysfs_path
from .frequency import (
    FIRMWARE_THROTTLED,
    CpufreqSource,
    FirmwareThrottleSource,
    PsutilFreqSource,
    VcgencmdClockSource,
    VcgencmdThrottleSource,
    cpufreq_policies,
    decode_throttled,
)
from .power import HwmonPowerChannel, RaplSource, hwmon_power_channels, rank_power_channels, rapl_zones
from .powerlog import PowerLog, PowerLogSource, load_power_log, parse_power_log_text
from .temperature import HwmonTempSource, ThermalZoneSource, VcgencmdTempSource, hwmon_dirs, thermal_zones

__all__ = [
    "discover", "read_sensors", "Sampler", "SensorSet", "decode_throttled", "load_power_log",
    "parse_power_log_text", "PowerLog", "MIN_PERIOD_S", "MAX_PERIOD_S",
]

MIN_PERIOD_S = 0.01
MAX_PERIOD_S = 10.0

#: metric -> reason when no source of that kind exists at all
ABSENT = {
    "temperature_c": "no thermal zone, hwmon temperature or vcgencmd on this machine",
    "freq_mhz": "no cpufreq, vcgencmd or psutil frequency on this machine",
    "power_w": "no power sensor (hwmon power/current monitor, RAPL powercap) and no power log given",
    "voltage_v": "no voltage sensor",
    "current_a": "no current sensor",
    "throttled": "no throttling flags (firmware get_throttled / vcgencmd)",
}
ALWAYS = ("temperature_c", "freq_mhz", "power_w")
_KIND_OF = {"temperature_c": "temperature", "freq_mhz": "frequency", "power_w": "power", "voltage_v": "power",
            "current_a": "power", "throttled": "throttle"}
_CPU_ZONE_RE = re.compile(r"cpu|soc|x86_pkg|package|core|tcpu", re.IGNORECASE)
_CPU_CHIP_RE = re.compile(r"coretemp|k10temp|zenpower|cpu|soc", re.IGNORECASE)


def _is_available(src: SensorSource, readings: list[Reading]) -> tuple[bool, str]:
    ok = [r for r in readings if r.available]
    if ok:
        return True, "ok"
    if getattr(src, "_last", None) is not None:  # RAPL: energy read; power needs a second read
        return True, "ok (energy counter reads; power needs two samples)"
    reasons = sorted({r.reason for r in readings if r.reason})
    return False, "; ".join(reasons) or "no reading"


class SensorSet:
    """The sensor sources found under ``root``, probed once; :meth:`read` takes one snapshot."""

    def __init__(self, root: str | Path = "/", power_log: str | Path | PowerLog | None = None,
                 power_log_offset_s: float = 0.0, *, runner: CommandRunner | None = None,
                 cpu_freq: Callable[[], Any] | None = None, clock: Callable[[], float] = time.monotonic):
        self.root = Path(root)
        self.clock = clock
        real_system = self.root.resolve() == Path("/")
        self.entries: list[dict[str, Any]] = []
        self.sources: list[SensorSource] = []  # available ones, in priority order
        self._all: list[SensorSource] = []
        # a log given by path is parsed first: one that does not parse is the caller's input error
        # (InputFileError with the parser's message), not a sensor that failed
        self.log: PowerLog | None = None if power_log is None else (
            power_log if isinstance(power_log, PowerLog) else load_power_log(power_log))
        self.log_offset_s = float(power_log_offset_s)
        use_commands = runner is not None or (real_system and command_exists("vcgencmd"))
        vc_reason = "vcgencmd not installed (Raspberry Pi firmware tool)" if real_system else \
            "vcgencmd not used for a sysfs tree under a root other than / (no runner given)"
        def temperature_zones() -> None:
            zones = [ThermalZoneSource(z) for z in thermal_zones(root)]
            zones.sort(key=lambda s: not _CPU_ZONE_RE.search(s.zone_type))
            self._add_many("temperature", "thermal zone", zones,
                           "no /sys/class/thermal/thermal_zone*", sysfs_path(root, "/sys/class/thermal"))

        def temperature_hwmon() -> None:
            chips = [HwmonTempSource(d) for d in hwmon_dirs(root)]
            chips = [c for c in chips if c.channels]
            chips.sort(key=lambda s: not _CPU_CHIP_RE.search(s.chip))
            self._add_many("temperature", "hwmon temperature", chips, "no hwmon temp*_input",
                           sysfs_path(root, "/sys/class/hwmon"))

        def frequency_cpufreq() -> None:
            policies = cpufreq_policies(root)
            self._add_many("frequency", "cpufreq", [CpufreqSource(policies)] if policies else [],
                           "no cpufreq policy (no cpufreq driver, e.g. a VM)",
                           sysfs_path(root, "/sys/devices/system/cpu/cpufreq"))

        def frequency_psutil() -> None:
            if cpu_freq is not None or real_system:
                try:
                    src = PsutilFreqSource(cpu_freq, root)
                except ImportError:
                    self._add_absent("frequency", "psutil", "psutil not installed", "psutil.cpu_freq()")
                else:
                    self._add_many("frequency", "psutil", [src], "", "psutil.cpu_freq()")
            else:
                self._add_absent("frequency", "psutil", "psutil not used for a sysfs tree under a root other "
                                 "than /", "psutil.cpu_freq()")

        def power_log_source() -> None:
            if self.log is not None:
                self._add_many("power", "power log", [PowerLogSource(self.log, self.log_offset_s, clock)], "",
                               self.log.path)

        def power_hwmon() -> None:
            channels: list[HwmonPowerChannel] = []
            for d in hwmon_dirs(root):
                channels.extend(hwmon_power_channels(d))
            self._add_many("power", "hwmon power monitor", rank_power_channels(channels),
                           "no hwmon power*/curr*_input (no INA2xx/INA3221-style monitor)",
                           sysfs_path(root, "/sys/class/hwmon"))

        def power_rapl() -> None:
            zones_rapl = rapl_zones(root)
            self._add_many("power", "RAPL powercap", [RaplSource(zones_rapl, clock)] if zones_rapl else [],
                           "no /sys/class/powercap/intel-rapl:* (no RAPL exposed)",
                           sysfs_path(root, "/sys/class/powercap"))

        def throttle_firmware() -> None:
            fw = sysfs_path(root, FIRMWARE_THROTTLED)
            self._add_many("throttle", "firmware get_throttled",
                           [FirmwareThrottleSource(fw)] if fw.exists() else [],
                           "no firmware get_throttled file (not a Raspberry Pi)", fw)

        # each source family is discovered on its own: one that fails (e.g. an unreadable sysfs listing) is
        # recorded as a broken source with the reason, and costs no other source, of its kind or another
        steps: list[tuple[str, str, Any, Callable[[], None]]] = [
            ("temperature", "thermal zone", sysfs_path(root, "/sys/class/thermal"), temperature_zones),
            ("temperature", "hwmon temperature", sysfs_path(root, "/sys/class/hwmon"), temperature_hwmon),
            ("temperature", "vcgencmd measure_temp", "vcgencmd measure_temp",
             lambda: self._add_cmd("temperature", "vcgencmd measure_temp", use_commands,
                                   lambda: VcgencmdTempSource(runner), vc_reason)),
            ("frequency", "cpufreq", sysfs_path(root, "/sys/devices/system/cpu/cpufreq"), frequency_cpufreq),
            ("frequency", "vcgencmd measure_clock arm", "vcgencmd measure_clock arm",
             lambda: self._add_cmd("frequency", "vcgencmd measure_clock arm", use_commands,
                                   lambda: VcgencmdClockSource(runner), vc_reason)),
            ("frequency", "psutil", "psutil.cpu_freq()", frequency_psutil),
            ("power", "power log", self.log.path if self.log is not None else "", power_log_source),
            ("power", "hwmon power monitor", sysfs_path(root, "/sys/class/hwmon"), power_hwmon),
            ("power", "RAPL powercap", sysfs_path(root, "/sys/class/powercap"), power_rapl),
            ("throttle", "firmware get_throttled", sysfs_path(root, FIRMWARE_THROTTLED), throttle_firmware),
            ("throttle", "vcgencmd get_throttled", "vcgencmd get_throttled",
             lambda: self._add_cmd("throttle", "vcgencmd get_throttled", use_commands,
                                   lambda: VcgencmdThrottleSource(runner), vc_reason)),
        ]
        for kind, name, where, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the reason is kept with every reading of this kind
                self.entries.append({"kind": kind, "name": name, "source": f"{name} (discovery failed)",
                                     "available": False, "reason": f"{type(exc).__name__}: {exc}",
                                     "path_or_command": str(where)})

        self.metrics = list(ALWAYS) + [m for m in ("voltage_v", "current_a", "throttled")
                                       if any(m in dict(s.metrics) for s in self._all)]

    # -- discovery helpers
    def _add_absent(self, kind: str, name: str, reason: str, where: Any) -> None:
        self.entries.append({"kind": kind, "name": name, "source": "none", "available": False,
                             "reason": reason, "path_or_command": str(where)})

    def _add_many(self, kind: str, name: str, sources: list[SensorSource], absent: str, where: Any) -> None:
        if not sources:
            self._add_absent(kind, name, absent, where)
            return
        for src in sources:
            self._all.append(src)
            try:
                readings = src.read()
            except Exception as exc:  # noqa: BLE001 - a broken source is reported, not fatal
                readings = src.missing(f"{type(exc).__name__}: {exc}")
            ok, reason = _is_available(src, readings)
            note = src.describe() if ok else ""
            self.entries.append({"kind": kind, "name": name, "source": src.name, "available": ok,
                                 "reason": reason + (f"; {note}" if note else ""),
                                 "path_or_command": src.location})
            if ok:
                self.sources.append(src)

    def _add_cmd(self, kind: str, name: str, use: bool, make: Callable[[], SensorSource], reason: str) -> None:
        if not use:
            self._add_absent(kind, name, reason, name)
        else:
            self._add_many(kind, name, [make()], "", name)

    # -- reading
    def read(self) -> dict[str, Reading]:
        """One snapshot: the best available reading per metric, NaN + reason for the others."""
        out: dict[str, Reading] = {}
        failed: dict[str, Reading] = {}
        for src in self.sources:
            if all(m in out for m, _ in src.metrics):
                continue
            try:
                readings = src.read()
            except Exception as exc:  # noqa: BLE001
                readings = src.missing(f"{type(exc).__name__}: {exc}")
            for r in readings:
                if r.name in out:
                    continue
                if r.available:
                    out[r.name] = r
                else:
                    failed.setdefault(r.name, r)
        for m in self.metrics:
            if m in out:
                continue
            if m in failed:
                out[m] = failed[m]
            else:
                tried = [e for e in self.entries if e["kind"] == _KIND_OF[m] and e["source"] != "none"]
                reason = ABSENT[m] if not tried else \
                    f"no working {_KIND_OF[m]} source: " + "; ".join(f"{e['source']}: {e['reason']}" for e in tried)
                out[m] = Reading.missing(m, reason, _unit(m))
        return out

    @property
    def needs_two_reads(self) -> bool:
        return any(isinstance(s, RaplSource) for s in self.sources)

    def close(self) -> None:
        for s in self._all:
            s.close()


def _unit(metric: str) -> str:
    return {"temperature_c": "degC", "freq_mhz": "MHz", "power_w": "W", "voltage_v": "V", "current_a": "A",
            "throttled": "flags"}.get(metric, "")


def discover(root: str | Path = "/", power_log: str | Path | PowerLog | None = None,
             power_log_offset_s: float = 0.0, *, runner: CommandRunner | None = None,
             cpu_freq: Callable[[], Any] | None = None) -> list[dict]:
    """Every sensor source looked for, with ``kind``, ``name``, ``source``, ``available``, ``reason`` and
    ``path_or_command``; kinds with nothing found get one unavailable entry saying what was looked for."""
    sset = SensorSet(root, power_log, power_log_offset_s, runner=runner, cpu_freq=cpu_freq)
    try:
        return [dict(e) for e in sset.entries]
    finally:
        sset.close()


def read_sensors(root: str | Path = "/", power_log: str | Path | PowerLog | None = None,
                 power_log_offset_s: float = 0.0, *, runner: CommandRunner | None = None,
                 cpu_freq: Callable[[], Any] | None = None, rapl_gap_s: float = 0.1) -> dict[str, Reading]:
    """One snapshot: ``temperature_c``, ``freq_mhz``, ``power_w`` always (NaN + reason when absent), plus
    ``voltage_v``, ``current_a``, ``throttled`` where a source exists. When RAPL is a power source, two reads
    ``rapl_gap_s`` apart give its power (the first read alone cannot)."""
    sset = SensorSet(root, power_log, power_log_offset_s, runner=runner, cpu_freq=cpu_freq)
    try:
        snap = sset.read()
        if not snap["power_w"].available and sset.needs_two_reads and rapl_gap_s > 0:
            time.sleep(rapl_gap_s)
            snap = sset.read()
        return snap
    finally:
        sset.close()


class Sampler:
    """Reads sensor snapshots every ``period_s`` on a daemon thread, timestamped on ``clock``.

    ``clock`` is ``time.monotonic`` by default (system-wide on Linux, so timestamps taken in another process
    align). A snapshot is taken at :meth:`start` and at :meth:`stop` too, and :meth:`snapshot` takes one on
    demand: an interval shorter than the period (a 3-image cell) is covered by a snapshot taken right before
    it and one right after it, counted by :meth:`window` with ``margin_s``.
    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, period_s: float = 0.1, root: str | Path = "/",
                 power_log: str | Path | PowerLog | None = None, power_log_offset_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, *, runner: CommandRunner | None = None,
                 cpu_freq: Callable[[], Any] | None = None):
        try:
            period = float(period_s)
        except (TypeError, ValueError):
            raise PerfmodelError(f"sensor period must be a number of seconds, got {period_s!r}") from None
        if not (MIN_PERIOD_S <= period <= MAX_PERIOD_S):
            raise PerfmodelError(f"sensor period must be between {MIN_PERIOD_S} s and {MAX_PERIOD_S} s, "
                                 f"got {period_s!r}")
        self.period_s = period
        self.root = root
        self.log = power_log if (power_log is None or isinstance(power_log, PowerLog)) else load_power_log(power_log)
        self.log_offset_s = float(power_log_offset_s)
        self.clock = clock
        self._runner = runner
        self._cpu_freq = cpu_freq
        self._samples: list[tuple[float, dict[str, Reading]]] = []
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()  # one SensorSet.read at a time (thread tick or snapshot())
        #: metric -> reason, for the metrics no source on this machine gives (fixed at start())
        self._no_source: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._set: SensorSet | None = None
        self.errors: list[str] = []

    # -- lifecycle
    def start(self) -> "Sampler":
        if self._thread is not None:
            raise PerfmodelError("sampler already started")
        self._set = SensorSet(self.root, self.log, self.log_offset_s, runner=self._runner,
                              cpu_freq=self._cpu_freq, clock=self.clock)
        self._stop.clear()
        self._sample()
        first = self._samples[-1][1] if self._samples else {}
        sourced = {m for src in self._set.sources for m, _ in src.metrics}
        self._no_source = {m: r.reason for m, r in first.items()
                           if not r.available and m not in sourced and r.reason
                           and not (self.log is not None and m in self.log.columns)}
        self._thread = threading.Thread(target=self._run, name="perfmodel-sensors", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sample()
        if self._set is not None:
            self._set.close()
            self._set = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def snapshot(self) -> float | None:
        """Take one sample now (besides the thread's); return its timestamp, None when not running."""
        return self._sample()

    def _sample(self) -> float | None:
        with self._read_lock:
            sset = self._set
            if sset is None:
                return None
            try:
                snap = sset.read()
            except Exception as exc:  # noqa: BLE001 - the sampler must survive a broken source
                self.errors.append(f"{type(exc).__name__}: {exc}")
                snap = {m: Reading.missing(m, f"sensor read failed: {type(exc).__name__}: {exc}", _unit(m))
                        for m in ALWAYS}
            t = self.clock()
            with self._lock:
                self._samples.append((t, snap))
            return t

    def _run(self) -> None:
        nxt = time.monotonic() + self.period_s
        while not self._stop.wait(max(0.0, nxt - time.monotonic())):
            self._sample()
            nxt += self.period_s
            now = time.monotonic()
            if nxt < now:  # fell behind (slow source, busy machine): skip the missed ticks
                nxt = now + self.period_s

    # -- results
    def samples(self) -> list[tuple[float, dict[str, Reading]]]:
        with self._lock:
            return list(self._samples)

    def window(self, t0: float, t1: float, margin_s: float = 0.0) -> dict[str, Reading]:
        """Mean of each metric over the samples timestamped in ``[t0 - margin_s, t1 + margin_s]``
        (``throttled``: OR of the masks).

        ``margin_s``: how far outside the interval a sample still counts - the snapshots taken right
        before and right after an interval shorter than the period (:meth:`snapshot`). Metrics from a power
        log are the log's time-weighted mean over ``[t0, t1]`` itself instead. A metric with no sample, or
        only missing ones, in the interval is NaN + reason; one that no source on this machine gives has
        that reason (e.g. no thermal zone), whatever the interval.
        """
        if t1 < t0:
            t0, t1 = t1, t0
        margin = max(0.0, float(margin_s)) if margin_s == margin_s else 0.0
        samples = self.samples()
        sel = [snap for t, snap in samples if t0 - margin <= t <= t1 + margin]
        metrics: list[str] = list(ALWAYS)
        for _, snap in samples:
            metrics.extend(m for m in snap if m not in metrics)
        out: dict[str, Reading] = {}
        for m in metrics:
            if m in self._no_source:
                source = next((snap[m].source for snap in sel if m in snap), "none")
                out[m] = Reading.missing(m, self._no_source[m], _unit(m), source)
                continue
            if not sel:
                out[m] = Reading.missing(m, f"no sensor sample in [{t0:.3f}, {t1:.3f}] s (period {self.period_s} s)",
                                         _unit(m))
                continue
            readings = [s[m] for s in sel if m in s]
            ok = [r for r in readings if r.available]
            if not ok:
                last = readings[-1].reason if readings else ABSENT.get(m, "not measured")
                out[m] = Reading.missing(m, f"{last} (all {len(sel)} samples in the window missing)", _unit(m),
                                         readings[-1].source if readings else "none")
                continue
            if m == "throttled":
                mask = 0
                for r in ok:
                    mask |= int(r.value)
                value = float(mask)
            else:
                value = math.fsum(r.value for r in ok) / len(ok)
            src = Counter(r.source for r in ok).most_common(1)[0][0]
            provs = {r.provenance for r in ok}
            prov = provs.pop() if len(provs) == 1 else "derived"
            out[m] = Reading(m, value, ok[0].unit, src, prov)
        if self.log is not None:
            for m, r in self.log.mean(t0, t1, self.log_offset_s).items():
                out[m] = r
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Every reading of every sample as ``{t_s, metric, value, unit, source, provenance, reason}``."""
        return [{"t_s": t, "metric": r.name, "value": r.value, "unit": r.unit, "source": r.source,
                 "provenance": r.provenance, "reason": r.reason}
                for t, snap in self.samples() for r in snap.values()]
