"""What machine and software a run was measured on (foundation module: imports no stage).

:func:`system_info` reads ``/proc`` and ``/sys`` (cheap, no subprocess); :func:`library_versions` asks
``importlib.metadata`` (the heavy libraries are not imported). ``collect`` stores both with every run.
A figure that cannot be found is ``None`` with a ``<key>_reason`` entry saying why.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: library -> distribution names that provide it, first installed wins
LIBRARIES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "scikit-learn": ("scikit-learn",),
    "statsmodels": ("statsmodels",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64", "tf-nightly"),
    "ai-edge-litert": ("ai-edge-litert", "tflite-runtime"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
               "opencv-contrib-python"),
}

#: ARM "CPU part" -> core name (the cores of the boards this project targets, and their neighbours)
ARM_PARTS = {
    "0xc07": "Cortex-A7", "0xc09": "Cortex-A9", "0xc0f": "Cortex-A15", "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78", "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd49": "Neoverse-N2",
}


def _read(root: Path, path: str, limit: int = 1 << 20) -> str | None:
    try:
        with open(root / path.lstrip("/"), "rb") as fh:
            return fh.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return None


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks, cur = [], {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        if ":" in line:
            k, v = line.split(":", 1)
            cur.setdefault(k.strip(), v.strip())
    if cur:
        blocks.append(cur)
    return blocks


def _int_or_none(text: str | None) -> int | None:
    t = _clean(text)
    return int(t) if t is not None and re.fullmatch(r"[+-]?\d+", t) else None


def system_info(root: str | Path = "/") -> dict[str, Any]:
    """CPU, cores, board, OS, governor, frequency, memory, virtualisation and perf settings of the machine.

    ``root`` lets tests point at a fake ``/proc`` + ``/sys`` tree; ``arch``, ``kernel``, ``os``, ``hostname``
    and ``python`` always describe the running system.
    """
    root = Path(root)
    real = root.resolve() == Path("/")
    info: dict[str, Any] = {}
    cpuinfo = _read(root, "/proc/cpuinfo") or ""
    blocks = _cpuinfo_blocks(cpuinfo)
    procs = [b for b in blocks if "processor" in b and b["processor"].isdigit()]
    header = {k: v for b in blocks for k, v in b.items()}

    # CPU model
    model = header.get("model name") or header.get("Processor") or header.get("cpu model")
    part = header.get("CPU part", "").lower()
    if part in ARM_PARTS and (not model or model.startswith("ARMv")):
        model = ARM_PARTS[part] + (f" ({model})" if model else "")
    if not model and real:
        model = platform.processor() or None
    info["cpu_model"] = model
    if not model:
        info["cpu_model_reason"] = "no model name / CPU part in /proc/cpuinfo"

    # cores
    logical = len(procs) or (os.cpu_count() if real else None)
    cores = {(b.get("physical id", "0"), b["core id"]) for b in procs if "core id" in b}
    physical = len(cores) or None
    if physical is None and real:
        try:
            import psutil

            physical = psutil.cpu_count(logical=False)
        except ImportError:
            physical = None
    if physical is None and procs and not any("core id" in b for b in procs) and "CPU part" in header:
        physical = logical  # ARM cores have no SMT and /proc/cpuinfo lists one block per core
    info["cores_logical"] = logical
    info["cores_physical"] = physical
    info["cores"] = {"logical": logical, "physical": physical}

    # platform
    uname = platform.uname()
    info["arch"] = uname.machine
    info["kernel"] = uname.release
    osrel = _read(root, "/etc/os-release") or _read(Path("/"), "/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', osrel, re.MULTILINE)
    info["os"] = m.group(1) if m else f"{uname.system} {uname.release}"
    info["hostname"] = uname.node
    info["python"] = platform.python_version()
    info["python_implementation"] = platform.python_implementation()

    # board
    board, src = _clean(_read(root, "/proc/device-tree/model")), "/proc/device-tree/model"
    if not board:
        board, src = _clean(_read(root, "/sys/firmware/devicetree/base/model")), "device tree model"
    if not board:
        board = _clean(_read(root, "/sys/class/dmi/id/product_name"))
        vendor = _clean(_read(root, "/sys/class/dmi/id/sys_vendor"))
        src = "DMI product name"
        if board and vendor and not board.lower().startswith(vendor.lower()):
            board = f"{vendor} {board}"
    if not board:
        board = header.get("Model") or header.get("Hardware")
        src = "/proc/cpuinfo Model/Hardware"
    if not board:
        board, src = model, "cpu model (no device tree or DMI board name)"
    info["board"] = board
    info["board_source"] = src

    # governor / frequency
    cpufreq = None
    for d in ("/sys/devices/system/cpu/cpufreq/policy0", "/sys/devices/system/cpu/cpu0/cpufreq"):
        if (root / d.lstrip("/")).is_dir():
            cpufreq = d
            break
    if cpufreq:
        info["governor"] = _clean(_read(root, f"{cpufreq}/scaling_governor"))
        if info["governor"] is None:
            info["governor_reason"] = f"{cpufreq}/scaling_governor unreadable"
        cur = _int_or_none(_read(root, f"{cpufreq}/scaling_cur_freq"))
        mx = _int_or_none(_read(root, f"{cpufreq}/cpuinfo_max_freq"))
        mn = _int_or_none(_read(root, f"{cpufreq}/cpuinfo_min_freq"))
        info["freq_mhz"] = cur / 1000 if cur and cur > 0 else None
        info["freq_max_mhz"] = mx / 1000 if mx and mx > 0 else None
        info["freq_min_mhz"] = mn / 1000 if mn and mn > 0 else None
        info["freq_source"] = f"{cpufreq}/scaling_cur_freq"
        if info["freq_mhz"] is None:
            info["freq_mhz_reason"] = f"{cpufreq}/scaling_cur_freq unreadable"
    else:
        info["governor"] = None
        info["governor_reason"] = "no cpufreq driver (fixed frequency or a VM)"
        mhz = None
        for b in procs or blocks:
            v = b.get("cpu MHz")
            if v is not None:
                try:
                    mhz = float(v)
                except ValueError:
                    mhz = None
                break
        info["freq_mhz"] = mhz
        info["freq_max_mhz"] = info["freq_min_mhz"] = None
        info["freq_source"] = "/proc/cpuinfo 'cpu MHz' (nominal, not measured)" if mhz else None
        if mhz is None:
            info["freq_mhz_reason"] = "no cpufreq and no 'cpu MHz' in /proc/cpuinfo"

    # caches (of cpu0; Linux cacheinfo: one indexN folder per cache level and type)
    info.update(cache_info(root))

    # memory
    meminfo = _read(root, "/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
    info["memory_total_bytes"] = int(m.group(1)) * 1024 if m else None
    if not m:
        info["memory_total_bytes_reason"] = "no MemTotal in /proc/meminfo"

    # virtualisation
    flags = set((header.get("flags") or header.get("Features") or "").split())
    hints = []
    if "hypervisor" in flags:
        hints.append("hypervisor flag in /proc/cpuinfo")
    hv = _clean(_read(root, "/sys/hypervisor/type"))
    if hv:
        hints.append(f"/sys/hypervisor/type={hv}")
    dmi = (_clean(_read(root, "/sys/class/dmi/id/product_name")) or "") + " " + \
          (_clean(_read(root, "/sys/class/dmi/id/sys_vendor")) or "")
    for name in ("KVM", "VirtualBox", "VMware", "QEMU", "Xen", "Hyper-V", "Virtual Machine", "Amazon EC2"):
        if name.lower() in dmi.lower():
            hints.append(f"DMI says {name}")
            break
    if (root / ".dockerenv").exists():
        hints.append("/.dockerenv (container)")
    info["virtualised"] = bool(hints) if (hints or flags) else None
    info["virtualisation_hint"] = "; ".join(hints) if hints else (
        "none found (no hypervisor flag)" if flags else "unknown (no cpu flags in /proc/cpuinfo)")

    # perf
    info["perf_event_paranoid"] = _int_or_none(_read(root, "/proc/sys/kernel/perf_event_paranoid"))
    if info["perf_event_paranoid"] is None:
        info["perf_event_paranoid_reason"] = "/proc/sys/kernel/perf_event_paranoid unreadable"
    return info


def _size_bytes(text: str | None) -> int | None:
    """Bytes of a sysfs cache ``size`` ("2048K", "512K", "32M", "1024"); None when it does not parse."""
    t = _clean(text)
    m = re.fullmatch(r"(\d+)\s*([KMG]?)i?B?", t or "", re.IGNORECASE)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]


CACHE_DIR = "/sys/devices/system/cpu/cpu0/cache"


def cache_info(root: str | Path = "/") -> dict[str, Any]:
    """cpu0's caches from Linux cacheinfo (``/sys/devices/system/cpu/cpu0/cache/index*``).

    ``caches``: one entry per cache (level, type, size_bytes, shared_cpu_list, line_bytes, ways);
    ``l2_bytes``: the size of the level-2 data / unified cache a core sees, with ``l2_bytes_source``, or
    None with ``l2_bytes_reason`` (no cacheinfo: common on Arm boards whose device tree lists no caches;
    then give the size by hand where a model needs it).
    """
    root = Path(root)
    base = root / CACHE_DIR.lstrip("/")
    caches: list[dict[str, Any]] = []
    try:
        dirs = sorted((d for d in base.iterdir() if d.name.startswith("index")),
                      key=lambda d: int(d.name[5:]) if d.name[5:].isdigit() else 1 << 30)
    except OSError:
        dirs = []
    for d in dirs:
        rel = f"{CACHE_DIR}/{d.name}"
        entry = {
            "index": d.name,
            "level": _int_or_none(_read(root, f"{rel}/level")),
            "type": _clean(_read(root, f"{rel}/type")),
            "size_bytes": _size_bytes(_read(root, f"{rel}/size")),
            "line_bytes": _int_or_none(_read(root, f"{rel}/coherency_line_size")),
            "ways": _int_or_none(_read(root, f"{rel}/ways_of_associativity")),
            "shared_cpu_list": _clean(_read(root, f"{rel}/shared_cpu_list")),
        }
        caches.append(entry)
    out: dict[str, Any] = {"caches": caches}
    l2 = [c for c in caches if c["level"] == 2 and c["type"] in ("Unified", "Data") and c["size_bytes"]]
    if l2:
        out["l2_bytes"] = int(l2[0]["size_bytes"])
        out["l2_bytes_source"] = f"{CACHE_DIR}/{l2[0]['index']}/size"
    else:
        out["l2_bytes"] = None
        out["l2_bytes_reason"] = (f"no level-2 data / unified cache with a size under {CACHE_DIR}" if caches
                                  else f"{CACHE_DIR} lists no caches (no cacheinfo on this kernel / device tree)")
    return out


def installed_version(*dists: str) -> str | None:
    """Version of the first of ``dists`` (distribution names) that is installed; None if none is."""
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str | None]:
    """Installed versions of the numeric and ML libraries (None when not installed); imports none of them."""
    out: dict[str, str | None] = {lib: installed_version(*dists) for lib, dists in LIBRARIES.items()}
    out["perfmodel"] = installed_version("perfmodel")
    out["python"] = sys.version.split()[0]
    return out
