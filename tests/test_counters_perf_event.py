"""perf_event_open through ctypes: ABI layout, event names, scaling, fallbacks, real software events."""

from __future__ import annotations

import ctypes
import errno
import math
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from perfmodel.counters import perf_event as pe
from perfmodel.counters.perf_event import (
    PERF_FORMAT_GROUP,
    PERF_FORMAT_ID,
    PERF_FORMAT_TOTAL_TIME_ENABLED,
    PERF_FORMAT_TOTAL_TIME_RUNNING,
    PerfEventAttr,
    PerfEventCounters,
    RawCount,
    parse_event,
    parse_group_read,
    parse_single_read,
    scaled_delta,
)
from perfmodel.errors import UnknownNameError
from perfmodel.metrics import EVENTS

ALL_FMT = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID

# Offsets from include/uapi/linux/perf_event.h (PERF_ATTR_SIZE_VER0..VER7 mark the boundaries).
HEADER_OFFSETS = {
    "type": 0, "size": 4, "config": 8, "sample_period": 16, "sample_type": 24, "read_format": 32,
    "flags": 40, "wakeup_events": 48, "bp_type": 52, "config1": 56, "config2": 64,
    "branch_sample_type": 72, "sample_regs_user": 80, "sample_stack_user": 88, "clockid": 92,
    "sample_regs_intr": 96, "aux_watermark": 104, "sample_max_stack": 108, "aux_sample_size": 112,
    "sig_data": 120,
}


def test_attr_size_and_offsets_match_the_kernel_header():
    assert ctypes.sizeof(PerfEventAttr) == 128 == pe.PERF_ATTR_SIZE_VER7
    for name, off in HEADER_OFFSETS.items():
        assert getattr(PerfEventAttr, name).offset == off, name
    # the documented version boundaries
    assert PerfEventAttr.config2.offset + 8 == 72  # VER1
    assert PerfEventAttr.branch_sample_type.offset + 8 == 80  # VER2
    assert PerfEventAttr.clockid.offset + 4 == 96  # VER3
    assert PerfEventAttr.sample_regs_intr.offset + 8 == 104  # VER4
    assert PerfEventAttr.reserved_2.offset + 2 == pe.PERF_ATTR_SIZE_VER5


@pytest.mark.skipif(not (Path("/usr/include/linux/perf_event.h").exists() and shutil.which("cc")),
                    reason="needs the kernel header and a C compiler")
def test_attr_layout_against_compiled_header(tmp_path):
    fields = ["type", "size", "config", "sample_period", "sample_type", "read_format", "wakeup_events",
              "bp_type", "config1", "config2", "branch_sample_type", "sample_regs_user", "sample_stack_user",
              "clockid", "sample_regs_intr", "aux_watermark", "sample_max_stack", "aux_sample_size", "sig_data"]
    src = tmp_path / "layout.c"
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/perf_event.h>', "int main(void){",
             'printf("sizeof %zu\\n", sizeof(struct perf_event_attr));']
    lines += [f'printf("{f} %zu\\n", offsetof(struct perf_event_attr, {f}));' for f in fields]
    # bit positions of the flag bit-fields: set one bit, find it in the 64-bit word at offset 40
    for flag in ("disabled", "inherit", "exclude_user", "exclude_kernel", "exclude_hv", "enable_on_exec",
                 "inherit_stat", "sigtrap"):
        lines.append("{ struct perf_event_attr a = {0}; unsigned long long w; a.%s = 1;"
                     " __builtin_memcpy(&w, (char*)&a + 40, 8);"
                     ' printf("bit_%s %%d\\n", __builtin_ctzll(w)); }' % (flag, flag))
    lines.append("return 0;}")
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    proc = subprocess.run(["cc", "-o", str(exe), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"header does not compile here: {proc.stderr[:200]}")
    out = dict(line.split() for line in subprocess.run([str(exe)], capture_output=True, text=True).stdout.splitlines())
    assert int(out["sizeof"]) <= ctypes.sizeof(PerfEventAttr)  # header may be older (VER7 or less)
    for f in fields:
        if f in out and getattr(PerfEventAttr, f, None) is not None:
            assert getattr(PerfEventAttr, f).offset == int(out[f]), f
    for flag in ("disabled", "inherit", "exclude_user", "exclude_kernel", "exclude_hv", "enable_on_exec",
                 "inherit_stat", "sigtrap"):
        assert pe.ATTR_FLAG_BITS[flag] == int(out[f"bit_{flag}"]), flag


def test_attr_flags():
    assert pe.attr_flags(disabled=True) == 1
    assert pe.attr_flags(inherit=True, exclude_kernel=True, exclude_hv=True) == 0b1100010
    with pytest.raises(ValueError):
        pe.attr_flags(bogus=True)


def test_syscall_numbers():
    assert pe.SYSCALL_NUMBERS["x86_64"] == 298
    assert pe.SYSCALL_NUMBERS["aarch64"] == 241


# ---------------------------------------------------------------------------------- event names


@pytest.mark.parametrize("name,canon,typ,config", [
    ("instructions", "instructions", pe.PERF_TYPE_HARDWARE, 1),
    ("cycles", "cycles", pe.PERF_TYPE_HARDWARE, 0),
    ("branch-instructions", "branches", pe.PERF_TYPE_HARDWARE, 4),
    ("branch-misses", "branch_misses", pe.PERF_TYPE_HARDWARE, 5),
    ("L1-dcache-loads", "l1d_loads", pe.PERF_TYPE_HW_CACHE, 0x0),
    ("L1-dcache-load-misses", "l1d_refills", pe.PERF_TYPE_HW_CACHE, 0x10000),
    ("L1-dcache-stores", "l1d_stores", pe.PERF_TYPE_HW_CACHE, 0x100),
    ("LLC-load-misses", "llc_misses", pe.PERF_TYPE_HW_CACHE, 0x10002),
    ("dTLB-load-misses", "dtlb_refills", pe.PERF_TYPE_HW_CACHE, 0x10003),
    ("iTLB-load-misses", "itlb_refills", pe.PERF_TYPE_HW_CACHE, 0x10004),
    ("task-clock", "task_clock_ms", pe.PERF_TYPE_SOFTWARE, 1),
    ("page-faults", "page_faults", pe.PERF_TYPE_SOFTWARE, 2),
    ("context-switches", "context_switches", pe.PERF_TYPE_SOFTWARE, 3),
    ("cpu-migrations", "cpu_migrations", pe.PERF_TYPE_SOFTWARE, 4),
    ("minor-faults", "minor_faults", pe.PERF_TYPE_SOFTWARE, 5),
    ("major-faults", "major_faults", pe.PERF_TYPE_SOFTWARE, 6),
    ("instructions:u", "instructions", pe.PERF_TYPE_HARDWARE, 1),
])
def test_parse_event_generic(name, canon, typ, config):
    spec = parse_event(name, machine="x86_64")
    assert (spec.name, spec.type, spec.config) == (canon, typ, config)
    assert spec.name in EVENTS


@pytest.mark.parametrize("raw,canon", [("r16", "l2d_accesses"), ("r0x16", "l2d_accesses"), ("r04", "l1d_accesses"),
                                       ("r08", "instructions"), ("r17", "l2d_refills"), ("r10", "branch_misses"),
                                       ("r3", "l1d_refills"), ("r1b", "inst_spec")])
def test_raw_arm_events_named_from_the_common_event_table(raw, canon):
    spec = parse_event(raw, machine="aarch64")
    assert spec.type == pe.PERF_TYPE_RAW
    assert spec.name == canon
    assert spec.config == int(raw.lstrip("r"), 16)


def test_raw_event_on_x86_keeps_its_name_and_cache_refs_are_arch_specific():
    assert parse_event("r16", machine="x86_64").name == "r16"
    assert parse_event("cache-misses", machine="x86_64").name == "llc_misses"
    assert parse_event("cache-misses", machine="aarch64").name == "l1d_refills"


def test_canonical_names_resolve_per_architecture():
    arm = parse_event("l2d_accesses", machine="aarch64")
    assert (arm.type, arm.config, arm.name) == (pe.PERF_TYPE_RAW, 0x16, "l2d_accesses")
    x86 = parse_event("l2d_accesses", machine="x86_64")
    assert x86.unresolved and "raw event" in x86.unresolved
    assert parse_event("l1d_refills", machine="x86_64").perf_name == "L1-dcache-load-misses"
    assert parse_event("task_clock_ms").perf_name == "task-clock"


def test_unknown_event_is_a_user_error():
    with pytest.raises(UnknownNameError):
        parse_event("not-an-event")


def test_arm_table_canonical_names_are_in_the_vocabulary():
    for code, (mnemonic, canon) in pe.ARM_COMMON_EVENTS.items():
        assert canon is None or canon in EVENTS, (hex(code), mnemonic)
    for family in ("arm", "generic", "software"):
        for canon in pe.CANONICAL_TO_PERF[family]:
            assert canon in EVENTS


# ---------------------------------------------------------------------------------- read buffers


def _group_buf(enabled, running, values_ids):
    words = [len(values_ids), enabled, running]
    for v, i in values_ids:
        words += [v, i]
    return struct.pack(f"={len(words)}Q", *words)


def test_parse_group_read():
    buf = _group_buf(1000, 500, [(10, 7), (20, 8)])
    assert parse_group_read(buf, ALL_FMT | PERF_FORMAT_GROUP) == [(7, 10, 1000, 500), (8, 20, 1000, 500)]
    # without ids
    words = struct.pack("=4Q", 2, 5, 6, 0)[:32]
    assert parse_group_read(struct.pack("=3Q", 2, 5, 6), PERF_FORMAT_GROUP) == [(None, 5, 0, 0), (None, 6, 0, 0)]
    with pytest.raises(ValueError):
        parse_group_read(words[:16], ALL_FMT | PERF_FORMAT_GROUP)


def test_parse_single_read():
    buf = struct.pack("=4Q", 42, 1000, 900, 3)
    assert parse_single_read(buf, ALL_FMT) == (3, 42, 1000, 900)
    with pytest.raises(ValueError):
        parse_single_read(b"", ALL_FMT)


def test_scaling_arithmetic():
    # not multiplexed: exact
    assert scaled_delta(None, RawCount(100, 50, 50)) == (100.0, 1.0)
    # counted half of the interval: doubled, ratio recorded
    value, ratio = scaled_delta(RawCount(100, 1000, 1000), RawCount(400, 3000, 2000))
    assert ratio == pytest.approx(0.5)
    assert value == pytest.approx(300 * 2000 / 1000)
    # never running in the interval: missing, not zero
    value, ratio = scaled_delta(RawCount(5, 100, 100), RawCount(5, 200, 100))
    assert math.isnan(value) and ratio == 0.0
    # no times recorded: raw difference
    assert scaled_delta(RawCount(1, 0, 0), RawCount(3, 0, 0)) == (2.0, 1.0)


# ---------------------------------------------------------------------------------- fake kernel


class FakeBackend:
    """A scripted kernel: events by (type, config) -> errno or counts; records calls."""

    def __init__(self, refuse=None, group_inherit_einval_on_read=False, group_limit=None):
        self.refuse = refuse or {}  # (type, config) -> errno
        self.group_inherit_einval_on_read = group_inherit_einval_on_read
        self.group_limit = group_limit
        self.fds = {}  # fd -> dict
        self.next_fd = 100
        self.counts = {}  # (type, config) -> (value, enabled, running)
        self.ioctls = []

    def open(self, attr, pid, cpu, group_fd, flags):
        key = (attr.type, attr.config)
        if key in self.refuse:
            raise OSError(self.refuse[key], "refused")
        grouped = bool(attr.read_format & PERF_FORMAT_GROUP)
        if group_fd != -1 and self.group_limit is not None:
            members = [f for f, d in self.fds.items() if d["leader"] == group_fd]
            if len(members) >= self.group_limit:
                raise OSError(errno.EINVAL, "group too big")
        fd = self.next_fd
        self.next_fd += 1
        self.fds[fd] = {"key": key, "leader": fd if group_fd == -1 else group_fd, "grouped": grouped,
                        "inherit": bool(attr.flags & 2), "attr_size": attr.size, "flags": attr.flags}
        return fd

    def event_id(self, fd):
        return 1000 + fd

    def ioctl(self, fd, request, arg):
        self.ioctls.append((fd, request, arg))
        return 0

    def read(self, fd, size):
        d = self.fds[fd]
        if d["grouped"]:
            if self.group_inherit_einval_on_read and d["inherit"]:
                raise OSError(errno.EINVAL, "inherit + group read")
            members = [f for f, m in self.fds.items() if m["leader"] == fd]
            vals = [self.counts.get(self.fds[f]["key"], (0, 0, 0)) for f in members]
            enabled, running = vals[0][1], vals[0][2]
            return _group_buf(enabled, running, [(v[0], 1000 + f) for v, f in zip(vals, members)])
        v, e, r = self.counts.get(d["key"], (0, 0, 0))
        return struct.pack("=4Q", v, e, r, 1000 + fd)

    def close(self, fd):
        self.fds.pop(fd)


INSN = (pe.PERF_TYPE_HARDWARE, 1)
CYC = (pe.PERF_TYPE_HARDWARE, 0)
L2 = (pe.PERF_TYPE_RAW, 0x16)
TASK = (pe.PERF_TYPE_SOFTWARE, 1)


def test_group_read_scaled_per_interval_with_ratio_recorded():
    be = FakeBackend()
    pc = PerfEventCounters(["instructions", "cycles", "r16", "task-clock"], machine="aarch64", backend=be,
                           exclude_kernel=True)
    be.counts = {INSN: (0, 0, 0), CYC: (0, 0, 0), L2: (0, 0, 0), TASK: (0, 0, 0)}
    pc.open()
    pc.enable()
    assert pc.mode == "group"
    assert len({d["leader"] for d in be.fds.values()}) == 2  # one hardware and one software group
    assert all(d["attr_size"] == 128 for d in be.fds.values())
    assert all(d["flags"] & (1 << pe.ATTR_FLAG_BITS["exclude_kernel"]) for d in be.fds.values())
    # image 1: the hardware group ran half of the time
    be.counts = {INSN: (1000, 2000, 1000), CYC: (3000, 2000, 1000), L2: (50, 2000, 1000),
                 TASK: (2_000_000, 2000, 2000)}
    r = pc.read()
    assert r["instructions"].value == pytest.approx(2000)
    assert r["cycles"].value == pytest.approx(6000)
    assert r["l2d_accesses"].value == pytest.approx(100)
    assert r["instructions"].provenance == "real"
    assert r["task_clock_ms"].value == pytest.approx(2.0) and r["task_clock_ms"].provenance == "software"
    assert pc.scaling["instructions"] == pytest.approx(0.5)
    assert pc.scaling["task_clock_ms"] == 1.0
    # image 2: fully running; the delta uses only this interval's times
    be.counts = {INSN: (2000, 3000, 2000), CYC: (5000, 3000, 2000), L2: (60, 3000, 2000),
                 TASK: (3_000_000, 3000, 3000)}
    r = pc.read()
    assert r["instructions"].value == pytest.approx(1000)
    assert pc.scaling["instructions"] == 1.0
    pc.close()
    assert be.fds == {}


def test_unsupported_events_are_recorded_and_the_others_count():
    be = FakeBackend(refuse={INSN: errno.ENOENT, L2: errno.EACCES})
    be.counts = {CYC: (10, 1, 1)}
    with PerfEventCounters(["instructions", "cycles", "r16"], machine="aarch64", backend=be) as pc:
        be.counts = {CYC: (110, 2, 2)}
        r = pc.read()
    assert r["cycles"].value == 100
    assert not r["instructions"].available
    assert "ENOENT" in r["instructions"].reason and "not supported" in r["instructions"].reason
    assert "permission denied" in r["l2d_accesses"].reason
    assert r["instructions"].provenance == "none"


def test_fallback_to_one_fd_per_event_when_kernel_refuses_inherit_with_group_read():
    be = FakeBackend(group_inherit_einval_on_read=True)
    pc = PerfEventCounters(["instructions", "cycles"], backend=be, machine="x86_64")
    pc.open()
    assert pc.mode.startswith("per-event")
    assert all(not d["grouped"] and d["inherit"] for d in be.fds.values())
    pc.enable()
    be.counts = {INSN: (7, 10, 5), CYC: (9, 10, 10)}
    r = pc.read()
    assert r["instructions"].value == pytest.approx(14)
    assert r["cycles"].value == 9
    pc.close()


class OpenTimeGroupRefusal(FakeBackend):
    """Kernels that refuse inherit + PERF_FORMAT_GROUP already at perf_event_open."""

    def open(self, attr, pid, cpu, group_fd, flags):
        if attr.read_format & PERF_FORMAT_GROUP and attr.flags & 2:
            raise OSError(errno.EINVAL, "inherit + group")
        return super().open(attr, pid, cpu, group_fd, flags)


def test_fallback_when_group_refused_at_open_and_invalid_events_still_recorded():
    be = OpenTimeGroupRefusal(refuse={L2: errno.EINVAL})
    pc = PerfEventCounters(["r16", "instructions"], backend=be, machine="aarch64")
    pc.open()
    assert pc.mode.startswith("per-event")
    assert "invalid" in pc.unavailable["l2d_accesses"]
    assert pc.available == ["instructions"]
    pc.close()
    assert be.fds == {}


def test_full_group_starts_a_new_group():
    be = FakeBackend(group_limit=2)  # at most 2 events per group
    pc = PerfEventCounters(["instructions", "cycles", "branches", "branch-misses"], backend=be, machine="x86_64")
    pc.open()
    assert len(pc._state.leaders) == 2
    assert pc.unavailable == {}
    pc.close()


def test_errno_reasons():
    hw = parse_event("instructions", machine="x86_64")
    assert pe.errno_reason(errno.ENOENT, hw, pmus=[]) == "not supported (no PMU exposed to this VM) [ENOENT]"
    assert "PMU or kernel" in pe.errno_reason(errno.EOPNOTSUPP, hw, pmus=["cpu"])
    assert "perf_event_paranoid=3" in pe.errno_reason(errno.EACCES, hw, paranoid=3)
    assert "busy" in pe.errno_reason(errno.EBUSY, hw)


def test_exclude_kernel_follows_paranoid(tmp_path):
    assert pe.must_exclude_kernel(paranoid=2, euid=1000)
    assert not pe.must_exclude_kernel(paranoid=1, euid=1000)
    assert not pe.must_exclude_kernel(paranoid=2, euid=0)
    f = tmp_path / "paranoid"
    f.write_text("3\n")
    assert pe.perf_event_paranoid(f) == 3
    assert pe.perf_event_paranoid(tmp_path / "missing") is None


def test_core_pmus_from_a_fake_sysfs(tmp_path):
    for name in ("software", "tracepoint", "armv8_pmuv3_0", "breakpoint"):
        (tmp_path / name).mkdir()
    assert pe.core_pmus(tmp_path) == ["armv8_pmuv3_0"]


# ---------------------------------------------------------------------------------- this machine


def _perf_event_usable() -> bool:
    try:
        pc = PerfEventCounters(["task-clock"]).open()
    except OSError:
        return False
    ok = bool(pc.available)
    pc.close()
    return ok


needs_perf = pytest.mark.skipif(not _perf_event_usable(), reason="perf_event_open unusable here")


@needs_perf
def test_task_clock_increases_when_burning_cpu():
    with PerfEventCounters(["task-clock", "context-switches"]) as pc:
        pc.read()
        t0 = time.process_time()
        x = 0
        while time.process_time() - t0 < 0.05:
            x += 1
        burned = pc.read()["task_clock_ms"]
        idle = pc.read()["task_clock_ms"]
    assert burned.provenance == "software" and burned.unit == "ms"
    assert burned.value >= 40.0
    assert idle.value < burned.value


@needs_perf
def test_page_faults_when_touching_new_memory():
    with PerfEventCounters(["page-faults", "minor-faults"]) as pc:
        pc.read()
        buf = np.zeros(64 * 1024 * 1024 // 8)
        buf[::512] = 1.0  # touch every 4 KiB page
        r = pc.read()
        quiet = pc.read()
    assert r["page_faults"].value >= 16  # at least one fault per 2 MiB huge page, usually 1 per 4 KiB
    assert r["minor_faults"].value >= 16
    assert quiet["page_faults"].value < r["page_faults"].value


@needs_perf
def test_inherit_counts_threads_started_after_open():
    def burn():
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.1:
            pass

    with PerfEventCounters(["task-clock"], inherit=True) as pc:
        pc.read()
        th = threading.Thread(target=burn)
        th.start()
        th.join()
        with_thread = pc.read()["task_clock_ms"].value
    with PerfEventCounters(["task-clock"], inherit=False) as pc:
        pc.read()
        th = threading.Thread(target=burn)
        th.start()
        th.join()
        without = pc.read()["task_clock_ms"].value
    assert with_thread >= 90.0
    assert without < 50.0


@needs_perf
def test_hardware_events_are_unavailable_with_a_reason_not_an_exception():
    pc = PerfEventCounters(["instructions", "cycles", "L1-dcache-load-misses", "r16", "task-clock"])
    with pc:
        r = pc.read()
    assert r["task_clock_ms"].available
    hw = [r[n] for n in r if n != "task_clock_ms"]
    if not pe.core_pmus():  # this VM: no PMU
        for reading in hw:
            assert not reading.available
            assert reading.reason == "not supported (no PMU exposed to this VM) [ENOENT]"
    else:  # a real board: the counts are real
        assert any(x.available and x.provenance == "real" for x in hw)


@needs_perf
def test_probe_lists_every_event():
    results = pe.probe(["task-clock", "instructions", "l2d_accesses"])
    by = {r.name: r for r in results}
    assert by["task_clock_ms"].available and by["task_clock_ms"].reason is None
    if not pe.core_pmus():
        assert not by["instructions"].available and "no PMU" in by["instructions"].reason


def test_kernel_only_software_events_are_not_reported_as_zero_in_user_only_mode():
    be = FakeBackend()
    pc = PerfEventCounters(["context-switches", "cpu-migrations", "page-faults"], backend=be, exclude_kernel=True)
    with pc:
        r = pc.read()
    assert not r["context_switches"].available and "kernel" in r["context_switches"].reason
    assert not r["cpu_migrations"].available
    assert r["page_faults"].available


@needs_perf
def test_user_only_page_faults_still_count_here():
    with PerfEventCounters(["page-faults", "task-clock"], exclude_kernel=True) as pc:
        pc.read()
        # a fresh anonymous mapping: every page touched is a new fault (numpy may reuse warm memory)
        import mmap

        m = mmap.mmap(-1, 16 * 1024 * 1024)
        for off in range(0, len(m), mmap.PAGESIZE):
            m[off] = 1
        r = pc.read()
        m.close()
    assert r["page_faults"].value >= 4 and r["task_clock_ms"].value > 0
