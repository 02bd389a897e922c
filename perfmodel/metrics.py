"""The canonical metric vocabulary shared by every stage.

Counters, sensors, importers and models all use these names, so a model trained on one data set can be
applied to another and the ``provenance`` of each column (real PMU / simulated / software) can be checked.

Column conventions in the wide tables the modelling stage uses:

* ``<event>_per_image``: event count per image (per-image tables and per-cell means).
* ``<event>_per_s``: event rate (count / wall time of the interval or image).
* ``<event>_per_cycle``: count / cycles, where cycles exist.
* sensor columns: ``power_w``, ``voltage_v``, ``current_a``, ``energy_j``, ``temperature_c``,
  ``freq_mhz``, ``cpu_percent``.
* timing: ``latency_ms`` (read + pre-process + inference), ``preprocess_ms``, ``inference_ms``,
  ``throughput_fps`` (= 1000 / latency_ms, as in the study).
* keys: ``board``, ``framework``, ``network``, ``threads``, ``workload``, ``cell_id``, ``run_id``.
"""

from __future__ import annotations

# name -> (description, unit)
EVENTS: dict[str, tuple[str, str]] = {
    "instructions": ("instructions retired", "count"),
    "cycles": ("CPU cycles", "count"),
    "l1d_accesses": ("L1 data cache accesses (loads+stores where the PMU counts both)", "count"),
    "l1d_loads": ("L1 data cache loads", "count"),
    "l1d_stores": ("L1 data cache stores", "count"),
    "l1d_refills": ("L1 data cache refills / misses", "count"),
    "l1i_accesses": ("L1 instruction cache accesses", "count"),
    "l1i_refills": ("L1 instruction cache refills / misses", "count"),
    "l2d_accesses": ("L2 data cache accesses", "count"),
    "l2d_refills": ("L2 data cache refills / misses", "count"),
    "llc_accesses": ("last-level cache accesses", "count"),
    "llc_misses": ("last-level cache misses", "count"),
    "dtlb_refills": ("data TLB refills / misses", "count"),
    "itlb_refills": ("instruction TLB refills / misses", "count"),
    "branches": ("branches executed / predicted", "count"),
    "branch_misses": ("branches mispredicted", "count"),
    "mem_accesses": ("data memory accesses", "count"),
    "exceptions_taken": ("exceptions taken", "count"),
    "exceptions_returned": ("exception returns", "count"),
    # software / OS events
    "task_clock_ms": ("CPU time of the task", "ms"),
    "context_switches": ("context switches", "count"),
    "cpu_migrations": ("CPU migrations", "count"),
    "page_faults": ("page faults", "count"),
    "minor_faults": ("minor page faults", "count"),
    "major_faults": ("major page faults", "count"),
}

SENSORS: dict[str, tuple[str, str]] = {
    "power_w": ("power", "W"),
    "voltage_v": ("voltage", "V"),
    "current_a": ("current", "A"),
    "energy_j": ("energy", "J"),
    "temperature_c": ("temperature", "degC"),
    "freq_mhz": ("CPU frequency", "MHz"),
    "cpu_percent": ("CPU utilisation (100 = one core busy)", "%"),
    "throttled": ("throttling flags (board specific bit mask)", "flags"),
}

TIMING: dict[str, tuple[str, str]] = {
    "latency_ms": ("read + pre-process + inference per image", "ms"),
    "read_ms": ("read image file", "ms"),
    "preprocess_ms": ("decode + resize + normalise", "ms"),
    "inference_ms": ("inference", "ms"),
    "throughput_fps": ("images per second (1 / latency)", "img/s"),
}


def per_image(event: str) -> str:
    return f"{event}_per_image"


def per_second(event: str) -> str:
    return f"{event}_per_s"


def per_cycle(event: str) -> str:
    return f"{event}_per_cycle"


def base_event(column: str) -> str | None:
    """``"instructions_per_s"`` -> ``"instructions"``; None if the column is not an event column. ARM PMU
    events the vocabulary lacks count too, by their :mod:`perfmodel.armpmu` names (``sw_incr_per_s``,
    ``event_0x4e_per_cycle``)."""
    from perfmodel.armpmu import is_arm_event  # noqa: PLC0415 - foundation, no cycle

    for suffix in ("_per_image", "_per_s", "_per_cycle"):
        if column.endswith(suffix) and (column[: -len(suffix)] in EVENTS or is_arm_event(column[: -len(suffix)])):
            return column[: -len(suffix)]
    return column if column in EVENTS or is_arm_event(column) else None


# -- physically possible magnitudes ------------------------------------------------------------------------
# One place for the bounds every reader checks (records at load, wide CSV tables): a value outside them is
# not a measurement (a typo, a corrupt file, an overflow), so it is refused with its column, row and reason
# instead of being trained on or silently dropped from a mean. Deliberately wide: they catch the impossible,
# not the unusual.

#: a 64-bit hardware counter's range (a count per image, interval or cell never exceeds it)
MAX_COUNT = 2.0**64
#: family -> (lowest, highest) possible value, inclusive
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "count": (-MAX_COUNT, MAX_COUNT),  # events: the two-phase (s1 - s2) / N method may give a small negative
    "rate": (-1e15, 1e15),  # events per second: 1e15 is > 1000 cores x 10 GHz x 100 events per cycle
    "per_cycle": (-1e4, 1e4),
    "ms": (0.0, 1e9),  # 11.6 days for one image or interval
    "fps": (0.0, 1e9),
    "W": (0.0, 1e5),
    "V": (0.0, 1e4),
    "A": (0.0, 1e5),
    "J": (0.0, 1e12),
    "degC": (-273.15, 1e3),
    "MHz": (0.0, 1e6),
    "%": (0.0, 1e7),  # 100 per busy core
    "MiB": (0.0, 1e9),
    "threads": (1.0, 1e5),
}
#: columns that hold whole numbers (a thread or core count)
WHOLE_NUMBER_COLUMNS = ("threads", "cores", "repeat", "run")


def plausible_range(column: str) -> tuple[str, float, float] | None:
    """``(family, lowest, highest)`` a value of metric or wide-table column ``column`` can physically take,
    or None when perfmodel knows no bound (keys, ``x_`` extras, unknown names)."""
    if column in ("threads", "cores"):
        return ("threads", *PLAUSIBLE["threads"])
    if column == "macs":
        return ("count", 0.0, MAX_COUNT)
    if column.endswith(("_ms", "_ms_std")):
        return ("ms", *PLAUSIBLE["ms"])
    if column in ("throughput_fps", "throughput_fps_std"):
        return ("fps", *PLAUSIBLE["fps"])
    for suffix, family in (("_per_image", "count"), ("_per_s", "rate"), ("_per_cycle", "per_cycle")):
        if column.endswith(suffix) and column[: -len(suffix)] in EVENTS:
            return (family, *PLAUSIBLE[family])
    if column in EVENTS:
        unit = EVENTS[column][1]
        return ("ms", *PLAUSIBLE["ms"]) if unit == "ms" else ("count", *PLAUSIBLE["count"])
    if column in TIMING:
        unit = TIMING[column][1]
        return ("fps", *PLAUSIBLE["fps"]) if unit == "img/s" else ("ms", *PLAUSIBLE["ms"])
    if column in SENSORS and SENSORS[column][1] in PLAUSIBLE:
        unit = SENSORS[column][1]
        return (unit, *PLAUSIBLE[unit])
    return None


def implausible(column: str, value: float) -> str | None:
    """Why ``value`` of ``column`` is physically impossible (None when it is possible, NaN, or unbounded)."""
    r = plausible_range(column)
    if r is None or value != value:
        return None
    family, lo, hi = r
    if not lo <= value <= hi:
        return f"{value:g} is outside the possible range {lo:g} .. {hi:g} of a {family} value"
    if column in WHOLE_NUMBER_COLUMNS and value != int(value):
        return f"{value:g} is not a whole number"
    return None
