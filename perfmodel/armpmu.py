"""ARM PMU event numbers and names: the one table every importer maps raw events through.

Sources: Arm Architecture Reference Manual ARMv7-A/R (DDI 0406C), C12.8 "Event numbers and mnemonics"
(common architectural and microarchitectural events 0x00-0x1D) and Appendix "Recommended IMPLEMENTATION
DEFINED events" (0x40-0x7E, used by the Cortex-A7 / A15 PMUs); Arm Architecture Reference Manual ARMv8-A
(DDI 0487), D7.10 "PMU events and event numbers" (common events 0x00-0x30, the same numbers and
mnemonics for 0x00-0x1D). Numbers not in the table are kept as ``event_0xNN`` (never guessed).

Canonical names: events that the perfmodel vocabulary (:data:`perfmodel.metrics.EVENTS`) already names
map to it (``INST_RETIRED`` -> ``instructions``, ``CPU_CYCLES`` -> ``cycles``, ``L1D_CACHE`` ->
``l1d_accesses`` ...); every other event is its mnemonic in lower case (``SW_INCR`` -> ``sw_incr``).
Foundation module: imports no stage.
"""

from __future__ import annotations

import re

#: event number -> architectural mnemonic (ARMv7 C12.8 / ARMv8 D7.10 common events, then the ARM-recommended
#: implementation-defined events 0x40-0x7E)
ARM_EVENT_NUMBERS: dict[int, str] = {
    0x00: "SW_INCR",
    0x01: "L1I_CACHE_REFILL",
    0x02: "L1I_TLB_REFILL",
    0x03: "L1D_CACHE_REFILL",
    0x04: "L1D_CACHE",
    0x05: "L1D_TLB_REFILL",
    0x06: "LD_RETIRED",
    0x07: "ST_RETIRED",
    0x08: "INST_RETIRED",
    0x09: "EXC_TAKEN",
    0x0A: "EXC_RETURN",
    0x0B: "CID_WRITE_RETIRED",
    0x0C: "PC_WRITE_RETIRED",
    0x0D: "BR_IMMED_RETIRED",
    0x0E: "BR_RETURN_RETIRED",
    0x0F: "UNALIGNED_LDST_RETIRED",
    0x10: "BR_MIS_PRED",
    0x11: "CPU_CYCLES",
    0x12: "BR_PRED",
    0x13: "MEM_ACCESS",
    0x14: "L1I_CACHE",
    0x15: "L1D_CACHE_WB",
    0x16: "L2D_CACHE",
    0x17: "L2D_CACHE_REFILL",
    0x18: "L2D_CACHE_WB",
    0x19: "BUS_ACCESS",
    0x1A: "MEMORY_ERROR",
    0x1B: "INST_SPEC",
    0x1C: "TTBR_WRITE_RETIRED",
    0x1D: "BUS_CYCLES",
    # ARMv8 common events
    0x1E: "CHAIN",
    0x1F: "L1D_CACHE_ALLOCATE",
    0x20: "L2D_CACHE_ALLOCATE",
    0x21: "BR_RETIRED",
    0x22: "BR_MIS_PRED_RETIRED",
    0x23: "STALL_FRONTEND",
    0x24: "STALL_BACKEND",
    0x25: "L1D_TLB",
    0x26: "L1I_TLB",
    0x27: "L2I_CACHE",
    0x28: "L2I_CACHE_REFILL",
    0x29: "L3D_CACHE_ALLOCATE",
    0x2A: "L3D_CACHE_REFILL",
    0x2B: "L3D_CACHE",
    0x2C: "L3D_CACHE_WB",
    0x2D: "L2D_TLB_REFILL",
    0x2E: "L2I_TLB_REFILL",
    0x2F: "L2D_TLB",
    0x30: "L2I_TLB",
    # ARM-recommended implementation-defined events (Cortex-A7 / A15 / A53 / A57 use these numbers)
    0x40: "L1D_CACHE_LD",
    0x41: "L1D_CACHE_ST",
    0x42: "L1D_CACHE_REFILL_LD",
    0x43: "L1D_CACHE_REFILL_ST",
    0x46: "L1D_CACHE_WB_VICTIM",
    0x47: "L1D_CACHE_WB_CLEAN",
    0x48: "L1D_CACHE_INVAL",
    0x4C: "L1D_TLB_REFILL_LD",
    0x4D: "L1D_TLB_REFILL_ST",
    0x50: "L2D_CACHE_LD",
    0x51: "L2D_CACHE_ST",
    0x52: "L2D_CACHE_REFILL_LD",
    0x53: "L2D_CACHE_REFILL_ST",
    0x56: "L2D_CACHE_WB_VICTIM",
    0x57: "L2D_CACHE_WB_CLEAN",
    0x58: "L2D_CACHE_INVAL",
    0x60: "BUS_ACCESS_LD",
    0x61: "BUS_ACCESS_ST",
    0x62: "BUS_ACCESS_SHARED",
    0x63: "BUS_ACCESS_NOT_SHARED",
    0x64: "BUS_ACCESS_NORMAL",
    0x65: "BUS_ACCESS_PERIPH",
    0x66: "MEM_ACCESS_LD",
    0x67: "MEM_ACCESS_ST",
    0x68: "UNALIGNED_LD_SPEC",
    0x69: "UNALIGNED_ST_SPEC",
    0x6A: "UNALIGNED_LDST_SPEC",
    0x6C: "LDREX_SPEC",
    0x6D: "STREX_PASS_SPEC",
    0x6E: "STREX_FAIL_SPEC",
    0x70: "LD_SPEC",
    0x71: "ST_SPEC",
    0x72: "LDST_SPEC",
    0x73: "DP_SPEC",
    0x74: "ASE_SPEC",
    0x75: "VFP_SPEC",
    0x76: "PC_WRITE_SPEC",
    0x78: "BR_IMMED_SPEC",
    0x79: "BR_RETURN_SPEC",
    0x7A: "BR_INDIRECT_SPEC",
    0x7C: "ISB_SPEC",
    0x7D: "DSB_SPEC",
    0x7E: "DMB_SPEC",
}

#: architectural mnemonic -> perfmodel vocabulary name, where the vocabulary has the event
VOCABULARY: dict[str, str] = {
    "CPU_CYCLES": "cycles",
    "INST_RETIRED": "instructions",
    "L1D_CACHE": "l1d_accesses",
    "L1D_CACHE_REFILL": "l1d_refills",
    "L1I_CACHE": "l1i_accesses",
    "L1I_CACHE_REFILL": "l1i_refills",
    "L2D_CACHE": "l2d_accesses",
    "L2D_CACHE_REFILL": "l2d_refills",
    "L1D_TLB_REFILL": "dtlb_refills",
    "L1I_TLB_REFILL": "itlb_refills",
    "BR_PRED": "branches",
    "BR_MIS_PRED": "branch_misses",
    "MEM_ACCESS": "mem_accesses",
    "EXC_TAKEN": "exceptions_taken",
    "EXC_RETURN": "exceptions_returned",
    "L1D_CACHE_LD": "l1d_loads",
    "L1D_CACHE_ST": "l1d_stores",
}

#: other spellings of the mnemonics (Linux perf's armv7 names as the ARMPM tools log them) -> mnemonic
ALIASES: dict[str, str] = {
    "L1D_CACHE_ACCESS": "L1D_CACHE",
    "L1I_CACHE_ACCESS": "L1I_CACHE",
    "L2D_CACHE_ACCESS": "L2D_CACHE",
    "DATA_MEM_ACCESS": "MEM_ACCESS",
    "BRANCH_PRED": "BR_PRED",
    "BRANCH_MISPRED": "BR_MIS_PRED",
    "EXCEPTION_TAKEN": "EXC_TAKEN",
    "EXCEPTION_RETURN": "EXC_RETURN",
    "INSTR_EXECUTED": "INST_SPEC",
    "CYCLE_COUNT": "CPU_CYCLES",
    "CYCLECOUNT": "CPU_CYCLES",
    "CYCLES": "CPU_CYCLES",
    "BUS_ACCESS_READ": "BUS_ACCESS_LD",
    "BUS_ACCESS_WRITE": "BUS_ACCESS_ST",
}

_NUMBER = re.compile(r"^(?:event[ _-]*)?(?:0x|r)([0-9a-f]{1,4})$", re.IGNORECASE)
_UNKNOWN = re.compile(r"^event_0x[0-9a-f]{2,4}$")
_NON_NAME = re.compile(r"[^a-z0-9]+")


def event_name(number: int) -> str:
    """Canonical name of raw event ``number``: ``0x08`` -> ``instructions``, ``0x00`` -> ``sw_incr``, an
    unknown number -> ``event_0xNN``."""
    mnemonic = ARM_EVENT_NUMBERS.get(int(number))
    if mnemonic is None:
        return f"event_0x{int(number):02x}"
    return VOCABULARY.get(mnemonic, mnemonic.lower())


def canonical_event(label: str) -> str | None:
    """Canonical name of an event column label: a mnemonic (``L1D_CACHE_REFILL``), one of its aliases
    (``DATA_MEM_ACCESS``), or a raw number (``0x13``, ``Event 0x13``, ``r13``); None when ``label`` is none
    of these."""
    text = label.strip()
    m = _NUMBER.match(text.replace(" ", "")) if text else None
    if m:
        return event_name(int(m.group(1), 16))
    up = _NON_NAME.sub("_", text.lower()).strip("_").upper()
    up = ALIASES.get(up, up)
    if up in ARM_EVENT_NUMBERS.values():
        return VOCABULARY.get(up, up.lower())
    return None


#: canonical names of every event in the table that the perfmodel vocabulary does not name
ARM_EVENT_NAMES: frozenset[str] = frozenset(
    m.lower() for m in ARM_EVENT_NUMBERS.values() if m not in VOCABULARY)


def is_arm_event(name: str) -> bool:
    """True for a canonical name this module gives that the vocabulary lacks (``sw_incr``, ``event_0x4e``)."""
    return name in ARM_EVENT_NAMES or bool(_UNKNOWN.match(name))


__all__ = ["ARM_EVENT_NUMBERS", "VOCABULARY", "ALIASES", "ARM_EVENT_NAMES", "event_name", "canonical_event",
           "is_arm_event"]
