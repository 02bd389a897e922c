"""In-process hardware and software event counting with ``perf_event_open(2)`` through ctypes.

This is what perfmodel uses on a real board to count PMU events *per image* without paying for a
``perf stat`` process per image: the counters are opened once (before the framework spawns its worker
threads, so that ``inherit`` makes them count those threads too), enabled once, and read with one
``read(2)`` per event group per image.

Events are named the way ``perf list`` names them (``instructions``, ``L1-dcache-load-misses``,
``r16`` / ``r0x16`` raw events, ``task-clock``...) or by their canonical perfmodel name
(``instructions``, ``l1d_refills``, ``l2d_accesses``... see :mod:`perfmodel.metrics`), which is resolved to
the right event for the CPU architecture (ARM raw common events on Arm, generic events elsewhere).

An event the kernel refuses is *not* an error: it is recorded as unavailable with a reason made from the
errno (``ENOENT`` on a VM without a PMU becomes "not supported (no PMU exposed to this VM)"), and the other
events still count.

Counts are scaled for multiplexing the way ``perf stat`` does (``count * time_enabled / time_running``)
over each read interval, and the running fraction of every event is kept in
:attr:`PerfEventCounters.scaling` so that a data set can flag multiplexed counts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import fcntl
import math
import os
import platform
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from perfmodel.errors import PerfmodelError, UnknownNameError
from perfmodel.metrics import EVENTS as CANONICAL_EVENTS
from perfmodel.readings import Reading

# --------------------------------------------------------------------------------------------------
# Kernel ABI (include/uapi/linux/perf_event.h)
# --------------------------------------------------------------------------------------------------

#: ``__NR_perf_event_open`` per machine (``uname -m``).
SYSCALL_NUMBERS: dict[str, int] = {
    "x86_64": 298,
    "amd64": 298,
    "aarch64": 241,
    "arm64": 241,
    "armv7l": 364,
    "armv6l": 364,
    "i686": 336,
    "i386": 336,
    "riscv64": 241,
}

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_TYPE_HW_CACHE = 3
PERF_TYPE_RAW = 4
PERF_TYPE_BREAKPOINT = 5

TYPE_NAMES = {0: "hardware", 1: "software", 2: "tracepoint", 3: "hw-cache", 4: "raw", 5: "breakpoint"}

# generic hardware events
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_HW_INSTRUCTIONS = 1
PERF_COUNT_HW_CACHE_REFERENCES = 2
PERF_COUNT_HW_CACHE_MISSES = 3
PERF_COUNT_HW_BRANCH_INSTRUCTIONS = 4
PERF_COUNT_HW_BRANCH_MISSES = 5
PERF_COUNT_HW_BUS_CYCLES = 6
PERF_COUNT_HW_STALLED_CYCLES_FRONTEND = 7
PERF_COUNT_HW_STALLED_CYCLES_BACKEND = 8
PERF_COUNT_HW_REF_CPU_CYCLES = 9

# cache ids, ops, results for PERF_TYPE_HW_CACHE: config = id | (op << 8) | (result << 16)
HW_CACHE_IDS = {"L1-dcache": 0, "L1-icache": 1, "LLC": 2, "dTLB": 3, "iTLB": 4, "branch": 5, "node": 6}
HW_CACHE_OP_READ, HW_CACHE_OP_WRITE, HW_CACHE_OP_PREFETCH = 0, 1, 2
HW_CACHE_RESULT_ACCESS, HW_CACHE_RESULT_MISS = 0, 1

# software events
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_TASK_CLOCK = 1
PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_COUNT_SW_CONTEXT_SWITCHES = 3
PERF_COUNT_SW_CPU_MIGRATIONS = 4
PERF_COUNT_SW_PAGE_FAULTS_MIN = 5
PERF_COUNT_SW_PAGE_FAULTS_MAJ = 6
PERF_COUNT_SW_ALIGNMENT_FAULTS = 7
PERF_COUNT_SW_EMULATION_FAULTS = 8

# read_format
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_ID = 1 << 2
PERF_FORMAT_GROUP = 1 << 3

# bits of the flags word that follows read_format in perf_event_attr
ATTR_FLAG_BITS: dict[str, int] = {
    "disabled": 0,
    "inherit": 1,
    "pinned": 2,
    "exclusive": 3,
    "exclude_user": 4,
    "exclude_kernel": 5,
    "exclude_hv": 6,
    "exclude_idle": 7,
    "mmap": 8,
    "comm": 9,
    "freq": 10,
    "inherit_stat": 11,
    "enable_on_exec": 12,
    "task": 13,
    "watermark": 14,
    # precise_ip: bits 15-16
    "mmap_data": 17,
    "sample_id_all": 18,
    "exclude_host": 19,
    "exclude_guest": 20,
    "exclude_callchain_kernel": 21,
    "exclude_callchain_user": 22,
    "mmap2": 23,
    "comm_exec": 24,
    "use_clockid": 25,
    "context_switch": 26,
    "write_backward": 27,
    "namespaces": 28,
    "ksymbol": 29,
    "bpf_event": 30,
    "aux_output": 31,
    "cgroup": 32,
    "text_poke": 33,
    "build_id": 34,
    "inherit_thread": 35,
    "remove_on_exec": 36,
    "sigtrap": 37,
}

PERF_FLAG_FD_CLOEXEC = 1 << 3

# ioctls: _IO('$', n) and _IOR('$', 7, __u64 *)
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_RESET = 0x2403
PERF_EVENT_IOC_ID = 0x80082407
PERF_IOC_FLAG_GROUP = 1

PERF_ATTR_SIZE_VER5 = 112
PERF_ATTR_SIZE_VER7 = 128


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` up to ``sig_data`` (``PERF_ATTR_SIZE_VER7`` = 128 bytes).

    The bit-field word after ``read_format`` is one ``flags`` integer here; set bits with
    :func:`attr_flags` (bit positions in :data:`ATTR_FLAG_BITS`, as in the kernel header). Unions are
    represented by their first member (``sample_period``, ``wakeup_events``, ``bp_addr``/``config1``,
    ``bp_len``/``config2``).
    """

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("reserved_3", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
    ]


def attr_flags(**bits: bool) -> int:
    """The ``flags`` word for ``perf_event_attr`` from named bits (``disabled=True, inherit=True``)."""
    word = 0
    for name, on in bits.items():
        if name not in ATTR_FLAG_BITS:
            raise ValueError(f"unknown perf_event_attr flag {name!r}")
        if on:
            word |= 1 << ATTR_FLAG_BITS[name]
    return word


# --------------------------------------------------------------------------------------------------
# Event vocabulary
# --------------------------------------------------------------------------------------------------

#: ARMv7/ARMv8 PMU common architectural and micro-architectural event numbers (Arm ARM, D7/D11 "PMU
#: events"; the same numbers ``perf list`` shows as ``armv8_pmuv3/...``). Value: (mnemonic, canonical name
#: or None).
ARM_COMMON_EVENTS: dict[int, tuple[str, str | None]] = {
    0x00: ("SW_INCR", None),
    0x01: ("L1I_CACHE_REFILL", "l1i_refills"),
    0x02: ("L1I_TLB_REFILL", "itlb_refills"),
    0x03: ("L1D_CACHE_REFILL", "l1d_refills"),
    0x04: ("L1D_CACHE", "l1d_accesses"),
    0x05: ("L1D_TLB_REFILL", "dtlb_refills"),
    0x06: ("LD_RETIRED", None),
    0x07: ("ST_RETIRED", None),
    0x08: ("INST_RETIRED", "instructions"),
    0x09: ("EXC_TAKEN", "exceptions_taken"),
    0x0A: ("EXC_RETURN", "exceptions_returned"),
    0x0B: ("CID_WRITE_RETIRED", None),
    0x0C: ("PC_WRITE_RETIRED", None),
    0x0D: ("BR_IMMED_RETIRED", None),
    0x0E: ("BR_RETURN_RETIRED", None),
    0x0F: ("UNALIGNED_LDST_RETIRED", None),
    0x10: ("BR_MIS_PRED", "branch_misses"),
    0x11: ("CPU_CYCLES", "cycles"),
    0x12: ("BR_PRED", "branches"),
    0x13: ("MEM_ACCESS", "mem_accesses"),
    0x14: ("L1I_CACHE", "l1i_accesses"),
    0x15: ("L1D_CACHE_WB", None),
    0x16: ("L2D_CACHE", "l2d_accesses"),
    0x17: ("L2D_CACHE_REFILL", "l2d_refills"),
    0x18: ("L2D_CACHE_WB", None),
    0x19: ("BUS_ACCESS", None),
    0x1A: ("MEMORY_ERROR", None),
    0x1B: ("INST_SPEC", None),
    0x1C: ("TTBR_WRITE_RETIRED", None),
    0x1D: ("BUS_CYCLES", None),
    0x1E: ("CHAIN", None),
    0x1F: ("L1D_CACHE_ALLOCATE", None),
    0x20: ("L2D_CACHE_ALLOCATE", None),
    0x21: ("BR_RETIRED", None),
    0x22: ("BR_MIS_PRED_RETIRED", None),
    0x23: ("STALL_FRONTEND", None),
    0x24: ("STALL_BACKEND", None),
    0x25: ("L1D_TLB", None),
    0x26: ("L1I_TLB", None),
    0x2A: ("L3D_CACHE_REFILL", "llc_misses"),
    0x2B: ("L3D_CACHE", "llc_accesses"),
    0x2D: ("L2D_TLB_REFILL", None),
    0x2F: ("L2D_TLB", None),
    0x40: ("L1D_CACHE_RD", "l1d_loads"),
    0x41: ("L1D_CACHE_WR", "l1d_stores"),
    0x42: ("L1D_CACHE_REFILL_RD", None),
    0x43: ("L1D_CACHE_REFILL_WR", None),
    0x50: ("L2D_CACHE_RD", None),
    0x51: ("L2D_CACHE_WR", None),
    0x52: ("L2D_CACHE_REFILL_RD", None),
    0x53: ("L2D_CACHE_REFILL_WR", None),
}

ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv6l", "armv8l")

_HARDWARE = {
    "cycles": PERF_COUNT_HW_CPU_CYCLES,
    "cpu-cycles": PERF_COUNT_HW_CPU_CYCLES,
    "instructions": PERF_COUNT_HW_INSTRUCTIONS,
    "cache-references": PERF_COUNT_HW_CACHE_REFERENCES,
    "cache-misses": PERF_COUNT_HW_CACHE_MISSES,
    "branch-instructions": PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
    "branches": PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
    "branch-misses": PERF_COUNT_HW_BRANCH_MISSES,
    "bus-cycles": PERF_COUNT_HW_BUS_CYCLES,
    "stalled-cycles-frontend": PERF_COUNT_HW_STALLED_CYCLES_FRONTEND,
    "stalled-cycles-backend": PERF_COUNT_HW_STALLED_CYCLES_BACKEND,
    "ref-cycles": PERF_COUNT_HW_REF_CPU_CYCLES,
}

_SOFTWARE = {
    "cpu-clock": PERF_COUNT_SW_CPU_CLOCK,
    "task-clock": PERF_COUNT_SW_TASK_CLOCK,
    "page-faults": PERF_COUNT_SW_PAGE_FAULTS,
    "faults": PERF_COUNT_SW_PAGE_FAULTS,
    "context-switches": PERF_COUNT_SW_CONTEXT_SWITCHES,
    "cs": PERF_COUNT_SW_CONTEXT_SWITCHES,
    "cpu-migrations": PERF_COUNT_SW_CPU_MIGRATIONS,
    "migrations": PERF_COUNT_SW_CPU_MIGRATIONS,
    "minor-faults": PERF_COUNT_SW_PAGE_FAULTS_MIN,
    "major-faults": PERF_COUNT_SW_PAGE_FAULTS_MAJ,
    "alignment-faults": PERF_COUNT_SW_ALIGNMENT_FAULTS,
    "emulation-faults": PERF_COUNT_SW_EMULATION_FAULTS,
}

# perf event name -> canonical name (architecture independent part)
_CANONICAL_OF: dict[str, str] = {
    "cycles": "cycles",
    "cpu-cycles": "cycles",
    "instructions": "instructions",
    "branch-instructions": "branches",
    "branches": "branches",
    "branch-misses": "branch_misses",
    "L1-dcache-loads": "l1d_loads",
    "L1-dcache-load-misses": "l1d_refills",
    "L1-dcache-stores": "l1d_stores",
    "L1-icache-loads": "l1i_accesses",
    "L1-icache-load-misses": "l1i_refills",
    "LLC-loads": "llc_accesses",
    "LLC-load-misses": "llc_misses",
    "dTLB-load-misses": "dtlb_refills",
    "iTLB-load-misses": "itlb_refills",
    "branch-loads": "branches",
    "branch-load-misses": "branch_misses",
    "task-clock": "task_clock_ms",
    "context-switches": "context_switches",
    "cs": "context_switches",
    "cpu-migrations": "cpu_migrations",
    "migrations": "cpu_migrations",
    "page-faults": "page_faults",
    "faults": "page_faults",
    "minor-faults": "minor_faults",
    "major-faults": "major_faults",
}

#: Which perf event gives each canonical event, per architecture family. On Arm the ARM common raw
#: events are used because they are what the study's boards report (``L2D_CACHE`` has no generic name).
CANONICAL_TO_PERF: dict[str, dict[str, str]] = {
    "arm": {
        "instructions": "r08",
        "cycles": "r11",
        "l1d_accesses": "r04",
        "l1d_loads": "r40",
        "l1d_stores": "r41",
        "l1d_refills": "r03",
        "l1i_accesses": "r14",
        "l1i_refills": "r01",
        "l2d_accesses": "r16",
        "l2d_refills": "r17",
        "llc_accesses": "r2b",
        "llc_misses": "r2a",
        "dtlb_refills": "r05",
        "itlb_refills": "r02",
        "branches": "r12",
        "branch_misses": "r10",
        "mem_accesses": "r13",
        "exceptions_taken": "r09",
        "exceptions_returned": "r0a",
    },
    "generic": {
        "instructions": "instructions",
        "cycles": "cycles",
        "l1d_loads": "L1-dcache-loads",
        "l1d_stores": "L1-dcache-stores",
        "l1d_refills": "L1-dcache-load-misses",
        "l1i_accesses": "L1-icache-loads",
        "l1i_refills": "L1-icache-load-misses",
        "llc_accesses": "LLC-loads",
        "llc_misses": "LLC-load-misses",
        "dtlb_refills": "dTLB-load-misses",
        "itlb_refills": "iTLB-load-misses",
        "branches": "branch-instructions",
        "branch_misses": "branch-misses",
    },
    "software": {
        "task_clock_ms": "task-clock",
        "context_switches": "context-switches",
        "cpu_migrations": "cpu-migrations",
        "page_faults": "page-faults",
        "minor_faults": "minor-faults",
        "major_faults": "major-faults",
    },
}

#: Software events that only ever fire in kernel mode: with ``exclude_kernel`` they read 0, which would
#: be a made-up zero, so they are reported unavailable instead.
KERNEL_MODE_SOFTWARE = (PERF_COUNT_SW_CONTEXT_SWITCHES, PERF_COUNT_SW_CPU_MIGRATIONS)

#: The default per-image event set (canonical names).
DEFAULT_HARDWARE = (
    "instructions",
    "cycles",
    "l1d_accesses",
    "l1d_refills",
    "l2d_accesses",
    "l2d_refills",
    "llc_accesses",
    "llc_misses",
    "dtlb_refills",
    "branches",
    "branch_misses",
)
DEFAULT_SOFTWARE = ("task_clock_ms", "context_switches", "cpu_migrations", "page_faults", "minor_faults", "major_faults")


def arch_family(machine: str | None = None) -> str:
    """``"arm"`` for Arm machines, ``"generic"`` otherwise."""
    machine = (machine or platform.machine()).lower()
    return "arm" if machine.startswith("arm") or machine in ARM_MACHINES else "generic"


@dataclass(frozen=True)
class EventSpec:
    """One event to open: ``name`` is the reading name (canonical when known), ``perf_name`` the
    ``perf list`` spelling, ``type``/``config`` what goes into ``perf_event_attr``."""

    name: str
    perf_name: str
    type: int
    config: int
    unit: str = "count"
    #: set when the name is valid but has no event on this architecture (the event is then unavailable)
    unresolved: str | None = None

    @property
    def is_software(self) -> bool:
        return self.type == PERF_TYPE_SOFTWARE

    @property
    def provenance(self) -> str:
        return "software" if self.is_software else "real"

    def scale(self, raw: float) -> float:
        """Convert a raw kernel count to ``unit`` (task-clock/cpu-clock: ns -> ms)."""
        return raw / 1e6 if self.unit == "ms" else raw


_RAW_RE = re.compile(r"^r(?:0x)?([0-9a-fA-F]{1,16})$")
_CACHE_RE = re.compile(r"^(L1-dcache|L1-icache|LLC|dTLB|iTLB|branch|node)-(loads|load-misses|stores|store-misses|prefetches|prefetch-misses)$")


def parse_event(name: str, machine: str | None = None) -> EventSpec:
    """Resolve a perf-style or canonical event name to an :class:`EventSpec`.

    Accepted: generic hardware events (``cycles``, ``instructions``, ``cache-references``, ...), hardware
    cache events (``L1-dcache-load-misses``, ``LLC-loads``, ``dTLB-load-misses``...), raw events
    (``r16``, ``r0x16``: on Arm named by the common-event table, e.g. ``l2d_accesses``), software events
    (``task-clock``, ``page-faults``...) and canonical perfmodel names (``l2d_refills``), resolved for
    ``machine`` (default: this machine). Unknown names raise :class:`~perfmodel.errors.UnknownNameError`.
    """
    family = arch_family(machine)
    original = name.strip()
    base = original.split(":", 1)[0]  # drop modifiers such as ":u"
    if base in CANONICAL_TO_PERF["software"]:
        base = CANONICAL_TO_PERF["software"][base]
    elif base in CANONICAL_EVENTS and base not in _HARDWARE and base not in _CANONICAL_OF:
        perf_name = CANONICAL_TO_PERF[family].get(base)
        if perf_name is None:
            return EventSpec(base, "", -1, 0, CANONICAL_EVENTS[base][1],
                             unresolved=f"no generic perf event for {base} on {machine or platform.machine()} "
                                        f"(give a raw event rNN for this CPU)")
        spec = parse_event(perf_name, machine)
        return EventSpec(base, spec.perf_name, spec.type, spec.config, spec.unit)

    if base in _SOFTWARE:
        cname = _CANONICAL_OF.get(base, base.replace("-", "_"))
        unit = "ms" if base in ("task-clock", "cpu-clock") else "count"
        if base == "cpu-clock":
            cname = "cpu_clock_ms"
        return EventSpec(cname, base, PERF_TYPE_SOFTWARE, _SOFTWARE[base], unit)
    if base in _HARDWARE:
        config = _HARDWARE[base]
        cname = _CANONICAL_OF.get(base)
        if base in ("cache-references", "cache-misses"):
            # the kernel maps these to L1D on Arm (armv8 PMU driver) and to the LLC on x86
            if family == "arm":
                cname = "l1d_accesses" if base == "cache-references" else "l1d_refills"
            else:
                cname = "llc_accesses" if base == "cache-references" else "llc_misses"
        return EventSpec(cname or base.replace("-", "_"), base, PERF_TYPE_HARDWARE, config)
    m = _CACHE_RE.match(base)
    if m:
        cache, what = m.groups()
        op = (HW_CACHE_OP_READ if what.startswith("load") else
              HW_CACHE_OP_WRITE if what.startswith("store") else HW_CACHE_OP_PREFETCH)
        result = HW_CACHE_RESULT_MISS if what.endswith("misses") else HW_CACHE_RESULT_ACCESS
        config = HW_CACHE_IDS[cache] | (op << 8) | (result << 16)
        cname = _CANONICAL_OF.get(base, base)
        return EventSpec(cname, base, PERF_TYPE_HW_CACHE, config)
    m = _RAW_RE.match(base)
    if m:
        config = int(m.group(1), 16)
        cname = base
        if family == "arm" and config in ARM_COMMON_EVENTS:
            mnemonic, canonical = ARM_COMMON_EVENTS[config]
            cname = canonical or mnemonic.lower()
        return EventSpec(cname, f"r{config:x}", PERF_TYPE_RAW, config)
    valid = list(_HARDWARE) + list(_SOFTWARE) + ["L1-dcache-loads", "LLC-load-misses", "rNN"]
    valid += [c for c in CANONICAL_EVENTS]
    raise UnknownNameError("event", original, sorted(set(valid)))


def default_events(machine: str | None = None, hardware: bool = True, software: bool = True) -> list[str]:
    """The default canonical events for ``machine``: those with a perf event on its architecture."""
    family = arch_family(machine)
    out: list[str] = []
    if hardware:
        out += [e for e in DEFAULT_HARDWARE if e in CANONICAL_TO_PERF[family]]
    if software:
        out += list(DEFAULT_SOFTWARE)
    return out


# --------------------------------------------------------------------------------------------------
# System interface (replaceable for tests)
# --------------------------------------------------------------------------------------------------


class Backend(Protocol):
    def open(self, attr: PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int) -> int: ...
    def read(self, fd: int, size: int) -> bytes: ...
    def ioctl(self, fd: int, request: int, arg: int) -> int: ...
    def event_id(self, fd: int) -> int: ...
    def close(self, fd: int) -> None: ...


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    """libc with errno capture, loaded once (``find_library`` runs ldconfig: only as a fallback)."""
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            lib = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        lib.syscall.restype = ctypes.c_long
        _LIBC = lib
    return _LIBC


class SyscallBackend:
    """The real ``perf_event_open`` through libc ``syscall(2)``."""

    def __init__(self, machine: str | None = None):
        self.machine = (machine or platform.machine()).lower()
        if self.machine not in SYSCALL_NUMBERS:
            raise PerfmodelError(f"perf_event_open: unknown syscall number for machine {self.machine!r}")
        self.nr = SYSCALL_NUMBERS[self.machine]
        self._libc = _libc()

    def open(self, attr: PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        fd = self._libc.syscall(
            ctypes.c_long(self.nr), ctypes.byref(attr), ctypes.c_int(pid), ctypes.c_int(cpu),
            ctypes.c_int(group_fd), ctypes.c_ulong(flags),
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(fd)

    def read(self, fd: int, size: int) -> bytes:
        return os.read(fd, size)

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        return fcntl.ioctl(fd, request, arg)

    def event_id(self, fd: int) -> int:
        buf = bytearray(8)
        fcntl.ioctl(fd, PERF_EVENT_IOC_ID, buf, True)
        return struct.unpack("=Q", bytes(buf))[0]

    def close(self, fd: int) -> None:
        os.close(fd)


def perf_event_paranoid(path: str | Path = "/proc/sys/kernel/perf_event_paranoid") -> int | None:
    """The kernel's ``perf_event_paranoid`` level, or None if it cannot be read."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def must_exclude_kernel(paranoid: int | None = None, euid: int | None = None) -> bool:
    """True when an unprivileged process may count user space only (paranoid >= 2, not root)."""
    paranoid = perf_event_paranoid() if paranoid is None else paranoid
    euid = os.geteuid() if euid is None else euid
    return euid != 0 and (paranoid is None or paranoid >= 2)


def core_pmus(root: str | Path = "/sys/bus/event_source/devices") -> list[str]:
    """Names of CPU PMUs the kernel exposes (``cpu``, ``cpu_core``, ``armv8_pmuv3_0``, ...)."""
    non_core = {"software", "tracepoint", "breakpoint", "kprobe", "uprobe", "msr", "power", "intel_pt",
                "intel_bts", "cstate_core", "cstate_pkg", "i915", "amd_iommu", "ibs_fetch", "ibs_op"}
    try:
        names = sorted(p.name for p in Path(root).iterdir())
    except OSError:
        return []
    return [n for n in names if n not in non_core and not n.startswith(("uncore", "amd_df", "amd_l3",
                                                                          "power_", "cstate", "ibs"))]


def errno_reason(err: int, spec: EventSpec | None = None, paranoid: int | None = None,
                 pmus: Sequence[str] | None = None) -> str:
    """A human explanation of why ``perf_event_open`` refused ``spec`` with ``err``."""
    hw = spec is not None and not spec.is_software
    code = _errno.errorcode.get(err, str(err))
    if err in (_errno.ENOENT, _errno.EOPNOTSUPP, _errno.ENODEV):
        if hw and not (core_pmus() if pmus is None else pmus):
            return f"not supported (no PMU exposed to this VM) [{code}]"
        return f"not supported by this CPU's PMU or kernel [{code}]"
    if err in (_errno.EACCES, _errno.EPERM):
        p = perf_event_paranoid() if paranoid is None else paranoid
        return (f"permission denied (kernel.perf_event_paranoid={p}; lower it or grant CAP_PERFMON) "
                f"[{code}]")
    if err == _errno.EINVAL:
        return f"rejected as invalid by this kernel/PMU (unsupported config or modifier) [{code}]"
    if err in (_errno.EBUSY, _errno.ENOSPC):
        return f"PMU counters busy or exhausted (another tool, watchdog or too many events) [{code}]"
    if err == _errno.EMFILE:
        return f"too many open files [{code}]"
    if err == _errno.E2BIG:
        return f"perf_event_attr size not accepted by this kernel [{code}]"
    return f"perf_event_open failed: {os.strerror(err)} [{code}]"


# --------------------------------------------------------------------------------------------------
# Read buffers and scaling
# --------------------------------------------------------------------------------------------------


class RawCount(NamedTuple):
    """One event's raw value and times (ns) as the kernel returned them."""

    value: int
    enabled: int
    running: int


def parse_group_read(buf: bytes, read_format: int) -> list[tuple[int | None, int, int, int]]:
    """Decode a ``PERF_FORMAT_GROUP`` read buffer: ``[(id, value, enabled, running), ...]``.

    Layout (``perf_event_open(2)``): ``u64 nr; [u64 time_enabled]; [u64 time_running];
    { u64 value; [u64 id]; } values[nr]``.
    """
    words = _u64s(buf)
    pos = 0
    nr = _take(words, pos, "nr")
    pos += 1
    enabled = running = 0
    if read_format & PERF_FORMAT_TOTAL_TIME_ENABLED:
        enabled = _take(words, pos, "time_enabled")
        pos += 1
    if read_format & PERF_FORMAT_TOTAL_TIME_RUNNING:
        running = _take(words, pos, "time_running")
        pos += 1
    per = 2 if read_format & PERF_FORMAT_ID else 1
    if len(words) < pos + nr * per:
        raise ValueError(f"group read buffer holds {len(words)} words, expected {pos + nr * per}")
    out = []
    for i in range(nr):
        value = words[pos + i * per]
        ident = words[pos + i * per + 1] if per == 2 else None
        out.append((ident, value, enabled, running))
    return out


def parse_single_read(buf: bytes, read_format: int) -> tuple[int | None, int, int, int]:
    """Decode a non-group read buffer: ``u64 value; [time_enabled]; [time_running]; [id]``."""
    words = _u64s(buf)
    pos = 0
    value = _take(words, pos, "value")
    pos += 1
    enabled = running = 0
    ident = None
    if read_format & PERF_FORMAT_TOTAL_TIME_ENABLED:
        enabled = _take(words, pos, "time_enabled")
        pos += 1
    if read_format & PERF_FORMAT_TOTAL_TIME_RUNNING:
        running = _take(words, pos, "time_running")
        pos += 1
    if read_format & PERF_FORMAT_ID:
        ident = _take(words, pos, "id")
    return ident, value, enabled, running


def _u64s(buf: bytes) -> list[int]:
    n = len(buf) // 8
    return list(struct.unpack(f"={n}Q", buf[: n * 8]))


def _take(words: list[int], pos: int, what: str) -> int:
    if pos >= len(words):
        raise ValueError(f"read buffer too short: no {what}")
    return words[pos]


def scaled_delta(before: RawCount | None, after: RawCount) -> tuple[float, float]:
    """Multiplex-scaled count over the interval ``before -> after`` and the running fraction.

    ``count * enabled / running`` over the interval, as ``perf stat`` scales totals. Returns
    ``(nan, 0.0)`` when the event never ran in the interval (it was multiplexed out the whole time),
    and ``(count, 1.0)`` when the times were not recorded.
    """
    if before is None:
        value, enabled, running = after
    else:
        value = after[0] - before[0]
        enabled = after[1] - before[1]
        running = after[2] - before[2]
    if enabled <= 0 and running <= 0:
        return float(value), 1.0
    if running <= 0:
        return math.nan, 0.0
    ratio = min(1.0, running / enabled) if enabled > 0 else 1.0
    if ratio >= 1.0:
        return float(value), 1.0
    return value * (enabled / running), ratio


# --------------------------------------------------------------------------------------------------
# The counter set
# --------------------------------------------------------------------------------------------------


@dataclass
class _Opened:
    spec: EventSpec
    fd: int
    leader_fd: int
    event_id: int | None


@dataclass
class ProbeResult:
    """Whether one event opens here, and why not."""

    name: str
    perf_name: str
    type: str
    available: bool
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "perf_name": self.perf_name, "type": self.type,
                "available": self.available, "reason": self.reason}


@dataclass
class _State:
    opened: list[_Opened] = field(default_factory=list)
    unavailable: dict[str, tuple[EventSpec, str]] = field(default_factory=dict)
    leaders: list[int] = field(default_factory=list)


class PerfEventCounters:
    """A set of perf events counted in this process (and, with ``inherit``, the threads it starts).

    Usage, one group read per image::

        with PerfEventCounters(["instructions", "l1d_refills", "task-clock"]) as pc:
            for image in images:
                run(image)
                per_image = pc.read()          # dict[str, Reading], counts since the previous read

    ``events``: perf or canonical names (:func:`parse_event`); default :func:`default_events`.
    ``inherit``: count threads created after :meth:`open` too (open before the framework starts its
    thread pool). ``group``: read each group of events with one ``read(2)`` (``PERF_FORMAT_GROUP``);
    kernels that refuse ``inherit`` together with ``PERF_FORMAT_GROUP`` (``EINVAL``, older than 4.13
    for ``read``) make the set fall back to one fd per event, which :attr:`mode` reports.
    ``exclude_kernel``: None = automatic from ``perf_event_paranoid``.
    """

    SOURCE = "perf_event_open"

    def __init__(self, events: Iterable[str] | None = None, inherit: bool = True, *, pid: int = 0,
                 cpu: int = -1, group: bool = True, exclude_kernel: bool | None = None,
                 exclude_hv: bool = True, machine: str | None = None, backend: Backend | None = None):
        names = list(events) if events is not None else default_events(machine)
        self.specs: list[EventSpec] = []
        seen = set()
        for n in names:
            spec = parse_event(n, machine)
            if spec.name in seen:
                continue
            seen.add(spec.name)
            self.specs.append(spec)
        if not self.specs:
            raise PerfmodelError("no events to count")
        self.inherit = inherit
        self.pid = pid
        self.cpu = cpu
        self.group = group
        self.exclude_kernel = must_exclude_kernel() if exclude_kernel is None else exclude_kernel
        self.exclude_hv = exclude_hv
        self.machine = machine
        self._backend = backend
        self._state = _State()
        self._prev: dict[str, RawCount] = {}
        self._start: dict[str, RawCount] = {}
        self.mode: str = "closed"
        #: running / enabled fraction of each event over the last read (1.0 = never multiplexed)
        self.scaling: dict[str, float] = {}
        self.is_open = False
        self._groups: list[tuple[int, int, list[_Opened]]] = []
        self._sources: dict[str, str] = {}
        self._missing: dict[str, Reading] = {}

    # -- opening ---------------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = SyscallBackend(self.machine)
        return self._backend

    def _attr(self, spec: EventSpec, leader: bool, grouped: bool) -> PerfEventAttr:
        attr = PerfEventAttr()
        attr.type = spec.type
        attr.size = ctypes.sizeof(PerfEventAttr)
        attr.config = spec.config
        fmt = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID
        if grouped:
            fmt |= PERF_FORMAT_GROUP
        attr.read_format = fmt
        attr.flags = attr_flags(disabled=leader, inherit=self.inherit, exclude_kernel=self.exclude_kernel,
                                exclude_hv=self.exclude_hv)
        return attr

    def _try_open(self, spec: EventSpec, group_fd: int, grouped: bool) -> int:
        attr = self._attr(spec, leader=group_fd == -1, grouped=grouped)
        return self.backend.open(attr, self.pid, self.cpu, group_fd, PERF_FLAG_FD_CLOEXEC)

    def open(self) -> "PerfEventCounters":
        """Open every event (disabled); unsupported ones are recorded in :attr:`unavailable`."""
        if self.is_open:
            return self
        if self.group:
            try:
                self._open_all(grouped=True)
                self.mode = "group"
                self._check_group_read()
            except _GroupUnsupported:
                self._close_fds()
                self._state = _State()
                self._open_all(grouped=False)
                self.mode = "per-event (kernel refused inherit with PERF_FORMAT_GROUP)"
        else:
            self._open_all(grouped=False)
            self.mode = "per-event"
        self.is_open = True
        self._plan()
        return self

    def _open_all(self, grouped: bool) -> None:
        st = self._state
        paranoid = perf_event_paranoid()
        pmus = core_pmus()
        leaders: dict[str, int] = {}  # kind -> current leader fd
        for spec in self.specs:
            if spec.unresolved:
                st.unavailable[spec.name] = (spec, spec.unresolved)
                continue
            if self.exclude_kernel and spec.is_software and spec.config in KERNEL_MODE_SOFTWARE:
                st.unavailable[spec.name] = (spec, (
                    "not counted in user mode only: these events happen in the kernel, and kernel counting "
                    f"is excluded (perf_event_paranoid={paranoid}); use the OS counters (getrusage)"))
                continue
            kind = "sw" if spec.is_software else "hw"
            fd = None
            err: OSError | None = None
            leader = leaders.get(kind, -1) if grouped else -1
            try:
                fd = self._try_open(spec, leader, grouped)
            except OSError as exc:
                err = exc
                if grouped and leader == -1 and exc.errno == _errno.EINVAL and self.inherit:
                    # inherit + PERF_FORMAT_GROUP refused at open time by some kernels? If the event
                    # opens without PERF_FORMAT_GROUP it was the group read format, not the event.
                    try:
                        probe_fd = self._try_open(spec, -1, grouped=False)
                    except OSError:
                        pass  # the event itself is invalid here: recorded below
                    else:
                        self.backend.close(probe_fd)
                        raise _GroupUnsupported() from exc
                if leader != -1 and exc.errno in (_errno.EINVAL, _errno.ENOSPC):
                    # the group is full for this PMU: start a new group with this event as leader
                    try:
                        fd = self._try_open(spec, -1, grouped)
                        leader = -1
                        err = None
                    except OSError as exc2:
                        err = exc2
            if fd is None:
                assert err is not None
                st.unavailable[spec.name] = (spec, errno_reason(err.errno or 0, spec, paranoid, pmus))
                continue
            if leader == -1:
                leaders[kind] = fd
                st.leaders.append(fd)
                leader_fd = fd
            else:
                leader_fd = leader
            try:
                ident = self.backend.event_id(fd)
            except OSError:
                ident = None
            st.opened.append(_Opened(spec, fd, leader_fd, ident))

    def _check_group_read(self) -> None:
        for fd in self._state.leaders:
            try:
                self._read_group(fd)
            except OSError as exc:
                if exc.errno == _errno.EINVAL and self.inherit:
                    raise _GroupUnsupported() from exc
                raise

    # -- control ---------------------------------------------------------------------------------

    def enable(self) -> None:
        """Reset and start counting."""
        if not self.is_open:
            self.open()
        for fd in self._state.leaders:
            flag = PERF_IOC_FLAG_GROUP if self.mode == "group" else 0
            self.backend.ioctl(fd, PERF_EVENT_IOC_RESET, flag)
            self.backend.ioctl(fd, PERF_EVENT_IOC_ENABLE, flag)
        self._prev = self._read_raw()
        self._start = dict(self._prev)

    start = enable

    def disable(self) -> None:
        """Stop counting (counts are kept and can still be read)."""
        for fd in self._state.leaders:
            flag = PERF_IOC_FLAG_GROUP if self.mode == "group" else 0
            self.backend.ioctl(fd, PERF_EVENT_IOC_DISABLE, flag)

    stop = disable

    @property
    def unavailable(self) -> dict[str, str]:
        """Events that did not open: name -> reason."""
        return {name: reason for name, (_, reason) in self._state.unavailable.items()}

    @property
    def available(self) -> list[str]:
        return [o.spec.name for o in self._state.opened]

    # -- reading ---------------------------------------------------------------------------------

    def _read_group(self, leader_fd: int) -> list[tuple[int | None, int, int, int]]:
        members = [o for o in self._state.opened if o.leader_fd == leader_fd]
        size = 8 * (3 + 2 * len(members))
        fmt = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID | PERF_FORMAT_GROUP
        return parse_group_read(self.backend.read(leader_fd, size), fmt)

    def _plan(self) -> None:
        """Precompute what each read does (per-image reads stay cheap)."""
        st = self._state
        self._groups = []
        for leader in st.leaders:
            members = [o for o in st.opened if o.leader_fd == leader]
            self._groups.append((leader, 8 * (3 + 2 * len(members)), members))
        self._sources = {spec.name: self._source(spec) for spec in self.specs}
        self._missing = {name: Reading.missing(name, reason, unit=spec.unit, source=self._sources[name])
                         for name, (spec, reason) in st.unavailable.items()}

    def _read_raw(self) -> dict[str, RawCount]:
        out: dict[str, RawCount] = {}
        read = self.backend.read
        if self.mode == "group":
            fmt = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID | PERF_FORMAT_GROUP
            for leader, size, members in self._groups:
                entries = parse_group_read(read(leader, size), fmt)
                by_id = {ident: (v, e, r) for ident, v, e, r in entries if ident is not None}
                for i, o in enumerate(members):
                    if o.event_id is not None and o.event_id in by_id:
                        v, e, r = by_id[o.event_id]
                    elif i < len(entries):  # ids unavailable: kernel order = leader, then siblings
                        _, v, e, r = entries[i]
                    else:
                        continue
                    out[o.spec.name] = RawCount(v, e, r)
        else:
            fmt = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID
            for o in self._state.opened:
                _, v, e, r = parse_single_read(read(o.fd, 32), fmt)
                out[o.spec.name] = RawCount(v, e, r)
        return out

    def sample(self) -> dict[str, RawCount]:
        """The raw cumulative values and times now (for :meth:`delta`)."""
        if not self.is_open:
            raise PerfmodelError("perf counters are not open; call open()/start() first")
        return self._read_raw()

    def delta(self, before: dict[str, RawCount], after: dict[str, RawCount]) -> dict[str, Reading]:
        """Readings for the interval between two :meth:`sample` results (scaled for multiplexing)."""
        readings: dict[str, Reading] = {}
        scaling: dict[str, float] = {}
        sources = self._sources
        for spec in self.specs:
            name = spec.name
            missing = self._missing.get(name)
            if missing is not None:
                readings[name] = missing
                continue
            if name not in after:
                readings[name] = Reading.missing(name, "not read", unit=spec.unit, source=sources[name])
                continue
            value, ratio = scaled_delta(before.get(name), after[name])
            scaling[name] = ratio
            if value != value:  # NaN: never ran in the interval
                readings[name] = Reading.missing(
                    name, "not counted (multiplexed out for the whole interval)", unit=spec.unit,
                    source=sources[name])
            else:
                readings[name] = Reading(name, spec.scale(value), spec.unit, sources[name], spec.provenance)
        self.scaling = scaling
        return readings

    def read(self) -> dict[str, Reading]:
        """Counts since the previous :meth:`read` (or :meth:`enable`): one group read per group."""
        now = self.sample()
        out = self.delta(self._prev, now)
        self._prev = now
        return out

    def read_total(self) -> dict[str, Reading]:
        """Counts since :meth:`enable`."""
        return self.delta(self._start, self.sample())

    def _source(self, spec: EventSpec) -> str:
        mods = "u" if self.exclude_kernel else "uk"
        return f"{self.SOURCE}:{spec.perf_name}:{mods}"

    # -- closing ---------------------------------------------------------------------------------

    def _close_fds(self) -> None:
        for o in reversed(self._state.opened):
            try:
                self.backend.close(o.fd)
            except OSError:
                pass

    def close(self) -> None:
        """Close every fd (idempotent)."""
        if self.is_open:
            self._close_fds()
        self._state.opened = []
        self._state.leaders = []
        self.is_open = False
        self.mode = "closed"

    def __enter__(self) -> "PerfEventCounters":
        self.open()
        self.enable()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


class _GroupUnsupported(Exception):
    pass


def probe(events: Iterable[str] | None = None, machine: str | None = None,
          backend: Backend | None = None) -> list[ProbeResult]:
    """Try to open each event on its own here; say which open and why the others do not."""
    names = list(events) if events is not None else (
        default_events(machine) + ["cache-references", "cache-misses", "L1-dcache-loads", "LLC-loads",
                                   "iTLB-load-misses", "r16"])
    out: list[ProbeResult] = []
    seen = set()
    for n in names:
        spec = parse_event(n, machine)
        if (spec.name, spec.perf_name) in seen:
            continue
        seen.add((spec.name, spec.perf_name))
        if spec.unresolved:
            out.append(ProbeResult(spec.name, spec.perf_name, "none", False, spec.unresolved))
            continue
        pc = PerfEventCounters([n], inherit=False, group=False, machine=machine, backend=backend)
        try:
            pc.open()
            reason = pc.unavailable.get(spec.name)
        except OSError as exc:
            reason = errno_reason(exc.errno or 0, spec)
        finally:
            pc.close()
        out.append(ProbeResult(spec.name, spec.perf_name, TYPE_NAMES.get(spec.type, str(spec.type)),
                               reason is None, reason))
    return out
