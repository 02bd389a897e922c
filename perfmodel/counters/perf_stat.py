"""Whole-command measurement with ``perf stat -x,`` and a parser for its CSV output.

``perf stat -x SEP`` prints one line per event with these fields, in this order (``perf-stat(1)``,
"CSV FORMAT"):

1. optional time stamp in seconds (interval mode ``-I msecs``)
2. optional CPU / core / socket / die identifier and number of aggregated CPUs (``-A``, ``--per-*``)
3. counter value (``<not supported>`` / ``<not counted>`` when the event could not be measured)
4. unit of the counter value, or empty
5. event name (with modifiers such as ``:u``, or a PMU form such as ``cpu_core/instructions/``)
6. run time of the counter (ns)
7. percentage of measurement time the counter was running (< 100 when multiplexed)
8. optional variance (``-r``; perf prints it right after the event name, as ``0.52%``)
9. optional metric value
10. optional unit of the metric

Counts are already scaled by perf for multiplexing; the percentage is kept so that multiplexed counts
can be flagged. The parser is lenient: empty lines, ``#`` comments, extra trailing fields from newer perf
versions and truncated lines are tolerated; a line it cannot read is kept in ``StatResult.skipped`` and
never turned into a value. Every number in a result is one that appears in the input text.

:func:`two_phase` implements the study's method: counts of the full command (s1) minus counts of a
command that only loads the model (s2), divided by the number of images, over repeats (mean and std).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.metrics import EVENTS as CANONICAL_EVENTS
from perfmodel.readings import Reading

from .perf_event import ARM_COMMON_EVENTS, CANONICAL_TO_PERF, _CANONICAL_OF, _SOFTWARE, arch_family

NOT_SUPPORTED = "<not supported>"
NOT_COUNTED = "<not counted>"
MIN_INTERVAL_MS = 10

_NUM_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ARM_NAMES = {mnemonic.lower(): canonical for mnemonic, canonical in ARM_COMMON_EVENTS.values() if canonical}


def _is_number(tok: str) -> bool:
    return bool(_NUM_RE.match(tok.strip()))


def _is_value(tok: str) -> bool:
    t = tok.strip()
    return _is_number(t) or t.startswith("<not ")


def _num(tok: str | None) -> float:
    """The number in ``tok``, or NaN when there is none (never a guess)."""
    if tok is None:
        return math.nan
    t = tok.strip()
    if not _is_number(t):
        return math.nan
    try:
        return float(t)
    except ValueError:  # pragma: no cover - guarded by the regex
        return math.nan


@dataclass(frozen=True)
class StatRow:
    """One parsed ``perf stat`` CSV line."""

    event: str  #: the event name as perf printed it
    value: float  #: NaN when ``status`` is not "ok"
    unit: str = ""
    status: str = "ok"  #: "ok", "not supported", "not counted"
    run_time_ns: float = math.nan
    percent_running: float = math.nan
    variance_percent: float = math.nan
    metric_value: float = math.nan
    metric_unit: str = ""
    timestamp_s: float = math.nan  #: interval mode only
    aggregation: str = ""  #: CPU/core/socket prefix fields, joined with the separator
    line_no: int = 0

    @property
    def base_event(self) -> str:
        """Event name without PMU prefix and modifiers: ``cpu_core/instructions/u`` -> ``instructions``."""
        return split_event(self.event)[1]

    @property
    def pmu(self) -> str:
        return split_event(self.event)[0]

    @property
    def modifiers(self) -> str:
        return split_event(self.event)[2]

    @property
    def multiplexed(self) -> bool:
        """True when perf says the counter ran for less than all of the measurement time."""
        return not math.isnan(self.percent_running) and self.percent_running < 100.0

    @property
    def available(self) -> bool:
        return self.status == "ok" and not math.isnan(self.value)


def split_event(name: str) -> tuple[str, str, str]:
    """``(pmu, event, modifiers)`` of a perf event name.

    ``instructions:u`` -> ``("", "instructions", "u")``; ``cpu_core/instructions/`` ->
    ``("cpu_core", "instructions", "")``; ``cpu/event=0x16,umask=0x1/uk`` ->
    ``("cpu", "event=0x16,umask=0x1", "uk")``.
    """
    name = name.strip()
    m = re.match(r"^([^/]+)/(.*)/([a-zA-Z]*)$", name)
    if m:
        return m.group(1), m.group(2), m.group(3)
    if ":" in name:
        base, mods = name.split(":", 1)
        return "", base, mods
    return "", name, ""


def canonical_name(event: str, machine: str | None = None) -> str:
    """The perfmodel name of a perf event name, or the name itself when there is none."""
    _, base, _ = split_event(event)
    if base in _CANONICAL_OF:
        return _CANONICAL_OF[base]
    if base in ("cache-references", "cache-misses"):
        arm = arch_family(machine) == "arm"
        if base == "cache-references":
            return "l1d_accesses" if arm else "llc_accesses"
        return "l1d_refills" if arm else "llc_misses"
    if base.lower() in _ARM_NAMES:
        return _ARM_NAMES[base.lower()]
    m = re.match(r"^r(?:0x)?([0-9a-fA-F]+)$", base) or re.match(r"^event=(0x[0-9a-fA-F]+|\d+)$", base)
    if m and arch_family(machine) == "arm":
        code = int(m.group(1), 0) if base.startswith("event=") else int(m.group(1), 16)
        if code in ARM_COMMON_EVENTS and ARM_COMMON_EVENTS[code][1]:
            return ARM_COMMON_EVENTS[code][1]
    if base == "cpu-clock":
        return "cpu_clock_ms"
    return base


def _merge_pmu_fields(fields: list[str]) -> list[str]:
    """Re-join an event such as ``cpu/event=0x16,umask=0x1/`` that the separator split."""
    out: list[str] = []
    buf: list[str] | None = None
    for f in fields:
        if buf is not None:
            buf.append(f)
            if "/" in f:
                out.append(",".join(buf))
                buf = None
            continue
        if f.count("/") % 2 == 1 and not f.strip().startswith("<"):
            buf = [f]
        else:
            out.append(f)
    if buf is not None:
        out.extend(buf)
    return out


def parse_line(line: str, sep: str = ",", line_no: int = 0) -> StatRow | None:
    """Parse one CSV line; None for blank, comment and unreadable lines."""
    text = line.rstrip("\r\n")
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    fields = text.split(sep)
    if sep == ",":
        fields = _merge_pmu_fields(fields)
    # find the counter value: the first value-like field followed (two further) by an event name
    idx = None
    for i in range(min(len(fields), 4)):
        if _is_value(fields[i]) and i + 2 < len(fields) and not _is_value(fields[i + 1]):
            ev = fields[i + 2].strip()
            if ev and not _is_value(ev):
                idx = i
                break
    if idx is None:
        return None
    prefix = fields[:idx]
    timestamp = math.nan
    if prefix and _is_number(prefix[0]):
        timestamp = _num(prefix[0])
        prefix = prefix[1:]
    raw_value = fields[idx].strip()
    unit = fields[idx + 1].strip()
    event = fields[idx + 2].strip()
    rest = [f.strip() for f in fields[idx + 3:]]
    variance = math.nan
    if rest and rest[0].endswith("%") and _is_number(rest[0][:-1]):
        variance = _num(rest[0][:-1])
        rest = rest[1:]
    run_time = _num(rest[0]) if len(rest) > 0 else math.nan
    percent = _num(rest[1]) if len(rest) > 1 else math.nan
    metric_value = _num(rest[2]) if len(rest) > 2 else math.nan
    metric_unit = rest[3] if len(rest) > 3 else ""
    if raw_value.startswith("<not supported"):
        status, value = "not supported", math.nan
    elif raw_value.startswith("<not counted"):
        status, value = "not counted", math.nan
    elif raw_value.startswith("<"):
        status, value = raw_value.strip("<>"), math.nan
    else:
        status, value = "ok", _num(raw_value)
    return StatRow(event=event, value=value, unit=unit, status=status, run_time_ns=run_time,
                   percent_running=percent, variance_percent=variance, metric_value=metric_value,
                   metric_unit=metric_unit, timestamp_s=timestamp, aggregation=sep.join(prefix),
                   line_no=line_no)


@dataclass
class StatResult:
    """Parsed ``perf stat`` output."""

    rows: list[StatRow] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  #: (line number, text) not understood
    comments: list[str] = field(default_factory=list)
    returncode: int | None = None
    command: list[str] = field(default_factory=list)
    machine: str | None = None

    @property
    def interval_mode(self) -> bool:
        return any(not math.isnan(r.timestamp_s) for r in self.rows)

    def intervals(self) -> list[tuple[float, list[StatRow]]]:
        """Rows grouped by time stamp (interval mode), in time order."""
        groups: dict[float, list[StatRow]] = {}
        for r in self.rows:
            if not math.isnan(r.timestamp_s):
                groups.setdefault(r.timestamp_s, []).append(r)
        return sorted(groups.items())

    def totals(self) -> dict[str, StatRow]:
        """One row per event: the summary rows, or in interval mode the sum over intervals.

        Interval sums keep the lowest running percentage and are "not counted" only when every
        interval was.
        """
        if not self.interval_mode:
            out: dict[str, StatRow] = {}
            for r in self.rows:
                out.setdefault(r.event, r)
            return out
        acc: dict[str, StatRow] = {}
        for _, rows in self.intervals():
            for r in rows:
                prev = acc.get(r.event)
                if prev is None:
                    acc[r.event] = StatRow(r.event, r.value, r.unit, r.status, r.run_time_ns,
                                           r.percent_running, line_no=r.line_no)
                    continue
                if prev.available and r.available:
                    value, status = prev.value + r.value, "ok"
                elif prev.available or r.available:
                    value = prev.value if prev.available else r.value
                    status = "ok"
                else:
                    value, status = math.nan, prev.status
                run = _nansum(prev.run_time_ns, r.run_time_ns)
                pct = _nanmin(prev.percent_running, r.percent_running)
                acc[r.event] = StatRow(r.event, value, r.unit or prev.unit, status, run, pct,
                                       line_no=prev.line_no)
        return acc

    def readings(self) -> dict[str, Reading]:
        """The totals as :class:`~perfmodel.readings.Reading` keyed by canonical name."""
        by_name: dict[str, list[StatRow]] = {}
        for event, r in self.totals().items():
            by_name.setdefault(canonical_name(event, self.machine), []).append(r)
        out: dict[str, Reading] = {}
        for name, rows in by_name.items():
            pmus = [r.pmu for r in rows]
            if len(rows) > 1 and all(pmus) and len(set(pmus)) == len(pmus):
                # hybrid CPU (cpu_core/... + cpu_atom/...): the task ran on both kinds of core
                counted = [r for r in rows if r.available]
                events = "+".join(r.event for r in rows)
                if counted:
                    r0 = counted[0]
                    prov = "software" if r0.base_event in _SOFTWARE else "real"
                    out[name] = Reading(name, math.fsum(r.value for r in counted), _unit(r0.unit),
                                        f"perf stat:{events}", prov)
                else:
                    out[name] = Reading.missing(name, _status_reason(rows[0].status), _unit(rows[0].unit),
                                                f"perf stat:{events}")
                continue
            r = rows[0]  # the same event asked twice (e.g. with and without :u): the first one
            source = f"perf stat:{r.event}"
            if not r.available:
                out[name] = Reading.missing(name, _status_reason(r.status), unit=_unit(r.unit), source=source)
            else:
                prov = "software" if r.base_event in _SOFTWARE else "real"
                out[name] = Reading(name, r.value, _unit(r.unit), source, prov)
        return out


def _unit(unit: str) -> str:
    return "ms" if unit == "msec" else (unit or "count")


def _status_reason(status: str) -> str:
    return {"not supported": "not supported (perf stat: <not supported>)",
            "not counted": "not counted (perf stat: <not counted>)"}.get(status, status or "not counted")


def _nansum(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a + b


def _nanmin(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return min(a, b)


def parse_perf_stat(text: str, sep: str = ",", machine: str | None = None) -> StatResult:
    """Parse the output of ``perf stat -x SEP`` (with or without ``-I``). Never raises on bad lines."""
    res = StatResult(machine=machine)
    for no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            res.comments.append(stripped)
            continue
        row = parse_line(line, sep, no)
        if row is None:
            res.skipped.append((no, line))
        else:
            res.rows.append(row)
    return res


def read_perf_stat_file(path: str | Path, sep: str = ",", machine: str | None = None) -> StatResult:
    """Parse a saved ``perf stat -x`` output file."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise InputFileError(f"cannot read perf stat output {path}: {exc.strerror}") from exc
    return parse_perf_stat(text, sep, machine)


def perf_event_names(events: Sequence[str], machine: str | None = None) -> list[str]:
    """perf command-line names for perf or canonical event names."""
    family = arch_family(machine)
    out = []
    for e in events:
        if e in CANONICAL_TO_PERF["software"]:
            out.append(CANONICAL_TO_PERF["software"][e])
        elif e in CANONICAL_EVENTS and e in CANONICAL_TO_PERF[family]:
            out.append(CANONICAL_TO_PERF[family][e])
        else:
            out.append(e)
    return out


def perf_binary(perf: str = "perf") -> str | None:
    """Path of the perf executable, or None."""
    return shutil.which(perf)


def run_perf_stat(cmd: Sequence[str], events: Sequence[str], *, interval_ms: int | None = None,
                  perf: str = "perf", env: Mapping[str, str] | None = None, timeout: float | None = None,
                  extra_args: Sequence[str] = (), machine: str | None = None) -> StatResult:
    """Run ``perf stat -x, [-I ms] -e EVENTS -- CMD`` and parse what it wrote.

    The perf output goes to a temporary file (``-o``) so that the command's own stderr does not mix
    with it. ``events`` may use canonical names (mapped with :func:`perf_event_names`).
    """
    exe = perf_binary(perf)
    if exe is None:
        raise PerfmodelError(f"{perf!r} not found; install linux-perf (linux-tools) to use perf stat")
    if not cmd:
        raise PerfmodelError("perf stat: empty command")
    if interval_ms is not None and interval_ms < MIN_INTERVAL_MS:
        raise PerfmodelError(f"perf stat interval must be >= {MIN_INTERVAL_MS} ms, got {interval_ms}")
    names = perf_event_names(events, machine)
    with tempfile.TemporaryDirectory(prefix="perfmodel-stat-") as tmp:
        out = Path(tmp) / "stat.csv"
        argv = [exe, "stat", "-x,", "-o", str(out)]
        if interval_ms is not None:
            argv += ["-I", str(int(interval_ms))]
        argv += ["-e", ",".join(names), *extra_args, "--", *cmd]
        run_env = dict(os.environ if env is None else env)
        run_env["LC_ALL"] = "C"  # no locale thousands separators
        from perfmodel.procs import run_bounded

        # perf and the command in their own process group, ended as a whole past the timeout
        proc = run_bounded(argv, env=run_env, timeout=timeout, text=True, what="perf stat of the command", shown=cmd)
        text = out.read_text(errors="replace") if out.exists() else ""
    res = parse_perf_stat(text, machine=machine)
    res.returncode = proc.returncode
    res.command = list(cmd)
    if not res.rows:
        raise PerfmodelError(f"perf stat gave no counts (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return res


# --------------------------------------------------------------------------------------------------
# Two-phase method
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoPhaseEvent:
    """Per-image count of one event by the two-phase method."""

    name: str
    per_image: tuple[float, ...]  #: (s1 - s2) / N for each repeat (NaN where either was missing)
    unit: str = "count"
    multiplexed: bool = False
    reason: str | None = None  #: why some or all repeats are missing
    provenance: str = "real"  #: "real" for PMU events, "software" for kernel software events

    @property
    def valid(self) -> list[float]:
        return [v for v in self.per_image if not math.isnan(v)]

    @property
    def mean(self) -> float:
        v = self.valid
        return statistics.fmean(v) if v else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over repeats (NaN with fewer than two)."""
        v = self.valid
        return statistics.stdev(v) if len(v) >= 2 else math.nan

    def reading(self) -> Reading:
        """The mean per-image count over repeats (missing with the reason when no repeat counted)."""
        if not self.valid:
            return Reading.missing(self.name, self.reason or "no repeat measured", unit=self.unit,
                                   source="perf stat two-phase")
        return Reading(self.name, self.mean, self.unit, "perf stat two-phase (s1-s2)/N", self.provenance)


def two_phase_from_results(full: Sequence[StatResult], load: Sequence[StatResult],
                           n_images: int) -> dict[str, TwoPhaseEvent]:
    """Combine repeated full-command (s1) and load-only (s2) results: (s1 - s2) / n_images per repeat."""
    if n_images <= 0:
        raise PerfmodelError(f"n_images must be positive, got {n_images}")
    if len(full) != len(load) or not full:
        raise PerfmodelError("two-phase: need the same, non-zero number of full and load-only runs")
    per_event: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    mux: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    provs: dict[str, str] = {}
    for s1, s2 in zip(full, load):
        r1, r2 = s1.readings(), s2.readings()
        t1, t2 = s1.totals(), s2.totals()
        mux1 = {canonical_name(e, s1.machine): r.multiplexed for e, r in t1.items()}
        mux2 = {canonical_name(e, s2.machine): r.multiplexed for e, r in t2.items()}
        for name in list(dict.fromkeys([*r1, *r2])):
            a, b = r1.get(name), r2.get(name)
            if a is None or b is None or not a.available or not b.available:
                per_event.setdefault(name, []).append(math.nan)
                why = (a.reason if a is not None and not a.available else
                       b.reason if b is not None and not b.available else "missing from one phase")
                reasons[name] = why or "missing"
            else:
                per_event.setdefault(name, []).append((a.value - b.value) / n_images)
                provs[name] = a.provenance
            units[name] = (a or b).unit  # type: ignore[union-attr]
            mux[name] = mux.get(name, False) or mux1.get(name, False) or mux2.get(name, False)
    return {n: TwoPhaseEvent(n, tuple(v), units[n], mux[n], reasons.get(n), provs.get(n, "real"))
            for n, v in per_event.items()}


def two_phase(full_cmd: Sequence[str], load_cmd: Sequence[str], n_images: int, events: Sequence[str], *,
              repeats: int = 3, runner: Callable[..., StatResult] = run_perf_stat,
              **kwargs) -> dict[str, TwoPhaseEvent]:
    """The study's two-phase method with ``perf stat``.

    For each repeat: run ``full_cmd`` (load + ``n_images`` inferences) -> s1 and ``load_cmd`` (load
    only) -> s2, alternating so that drift affects both; per-image count = (s1 - s2) / n_images. Returns
    per-event mean and std over repeats (:class:`TwoPhaseEvent`).
    """
    if repeats < 1:
        raise PerfmodelError(f"repeats must be >= 1, got {repeats}")
    full, load = [], []
    for _ in range(repeats):
        full.append(runner(full_cmd, events, **kwargs))
        load.append(runner(load_cmd, events, **kwargs))
    return two_phase_from_results(full, load, n_images)
