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
