"""Check the hardware-counter path on a machine, and count real events per image where it works.

Run it on any Linux machine (a board, a lent x86 machine, this VM)::

    python benchmarks/bench_pmu_path.py [--model squeezenet.onnx] [--images 20] [--json out.json]

It prints and records:

1. the machine: kernel, CPU model, the perf PMU devices in ``/sys/bus/event_source/devices``,
   ``perf_event_paranoid``, the CPU flags that tell whether a hypervisor exposes a PMU
   (``arch_perfmon``, ``pdcm``, ``hypervisor``), whether a ``perf`` binary is on the PATH, the caches;
2. for each event perfmodel counts, whether ``perf_event_open`` opens it, and the kernel's reason if not
   (:func:`perfmodel.counters.perf_event.probe`);
3. the perf ``power`` PMU's energy events where there is one (RAPL through perf; root), idle and under a
   matrix-product load, and which temperature, frequency and power sources perfmodel finds
   (:func:`perfmodel.sensors.read_sensors`);
4. with ``--model`` (an ONNX file) and ONNX Runtime installed: per-image counts of every event that
   opens, over ``--images`` inferences at 1 and 2 threads (one group read per image, as the collector
   does), with the multiplexing fraction. Where only software events open, this still runs and says so.

Only perfmodel's counter, sensor and system modules are imported (numpy, no pandas / TF), so the script
runs on a machine that has little more than Python, numpy and ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.counters import perf_event  # noqa: E402
from perfmodel.readings import json_safe  # noqa: E402
from perfmodel.sysinfo import cache_info, system_info  # noqa: E402

#: events counted per image in part 4 (canonical names; the ones that do not open are reported)
COUNT_EVENTS = ["instructions", "cycles", "l1d_loads", "l1d_refills", "l2d_accesses", "l2d_refills",
                "llc_accesses", "llc_misses",
                "branches", "branch_misses", "task-clock", "context-switches"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        return f"<{exc.strerror}>"


def machine_facts() -> dict:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") or line.startswith("Features"):
                flags = line.split(":", 1)[1]
                break
    except OSError:
        pass
    words = set(flags.split())
    devices = sorted(os.listdir("/sys/bus/event_source/devices")) if os.path.isdir(
        "/sys/bus/event_source/devices") else []
    info = system_info()
    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": info.get("cpu_model"),
        "cpu_count": os.cpu_count(),
        "event_source_devices": devices,
        "core_pmus": perf_event.core_pmus(),
        "perf_event_paranoid": perf_event.perf_event_paranoid(),
        "cpu_flags": {f: f in words for f in ("arch_perfmon", "pdcm", "hypervisor", "rdpid")},
        "pmu_events": {d: sorted(os.listdir(f"/sys/bus/event_source/devices/{d}/events"))
                       for d in devices if os.path.isdir(f"/sys/bus/event_source/devices/{d}/events")},
        "perf_binary": shutil.which("perf"),
        "pmu_name": _read("/sys/bus/event_source/devices/cpu/caps/pmu_name"),
        "caches": cache_info(),
    }


def probe_events() -> list[dict]:
    names = perf_event.default_events() + ["cache-references", "cache-misses", "L1-dcache-loads",
                                           "LLC-loads", "LLC-load-misses", "iTLB-load-misses"]
    return [r.to_dict() for r in perf_event.probe(names)]


def power_pmu(seconds: float = 1.0) -> dict:
    """The perf ``power`` PMU (RAPL energy counters through perf_event_open, system-wide on its cpumask):
    each energy-* event's Joules over ``seconds`` idle and ``seconds`` of a numpy matrix-product loop, or why
    it cannot be read (no such PMU, not root, ...). A counter that reads 0 under load is a stub."""
    import ctypes
    import struct

    import numpy as np

    base = Path("/sys/bus/event_source/devices/power")
    if not base.is_dir():
        return {"available": False, "reason": "no perf 'power' PMU on this machine"}
    out: dict = {"available": True, "events": {}}
    try:
        ptype = int((base / "type").read_text())
        cpu = int((base / "cpumask").read_text().split(",")[0].split("-")[0]) if (base / "cpumask").exists() else 0
    except (OSError, ValueError) as exc:
        return {"available": False, "reason": f"cannot read {base}: {exc}"}
    backend = perf_event.SyscallBackend()
    for ev in sorted(p.name for p in (base / "events").iterdir() if "." not in p.name):
        row: dict = {"event": (base / "events" / ev).read_text().strip()}
        try:
            config = int(row["event"].split("event=")[1].split(",")[0], 16)
            scale = float((base / "events" / f"{ev}.scale").read_text())
            attr = perf_event.PerfEventAttr()
            attr.type, attr.size, attr.config = ptype, ctypes.sizeof(perf_event.PerfEventAttr), config
            fd = backend.open(attr, -1, cpu, -1, perf_event.PERF_FLAG_FD_CLOEXEC)
        except (OSError, ValueError, IndexError) as exc:
            row["reason"] = f"cannot open: {exc}"
            out["events"][ev] = row
            continue
        try:
            for phase in ("idle", "busy"):
                e0, t0 = struct.unpack("Q", os.read(fd, 8))[0], time.monotonic()
                if phase == "idle":
                    time.sleep(seconds)
                else:
                    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
                    while time.monotonic() - t0 < seconds:
                        a @ a
                e1, t1 = struct.unpack("Q", os.read(fd, 8))[0], time.monotonic()
                row[f"{phase}_joules"] = (e1 - e0) * scale
                row[f"{phase}_watts"] = (e1 - e0) * scale / (t1 - t0)
        finally:
            os.close(fd)
        out["events"][ev] = row
    return out


def sensors() -> list[dict]:
    try:
        from perfmodel.sensors import read_sensors
    except ImportError as exc:  # a module of the sensors needs something this machine lacks
        return [{"error": f"cannot import perfmodel.sensors: {exc}"}]
    out = []
    for metric, reading in read_sensors().items():
        out.append({"metric": metric, "value": reading.value, "source": reading.source,
                    "reason": reading.reason})
    return out


def count_per_image(model: Path, images: int, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    # Open (disabled) before the session exists so that its thread pool inherits the counters, as the
    # collector's worker does; enabling the parent enables the inherited events too.
    pc = perf_event.PerfEventCounters(COUNT_EVENTS, inherit=True).open()
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        # a symbolic batch is 1, other symbolic dimensions (spatial) 224; float32 input assumed
        shape = [d if isinstance(d, int) else (1 if i == 0 else 224) for i, d in enumerate(inp.shape)]
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        pc.enable()
        for _ in range(3):  # warm-up (allocations, thread pool)
            sess.run(None, {inp.name: x})
        pc.read()
        rows: dict[str, list[float]] = {}
        times = []
        for _ in range(images):
            t0 = time.perf_counter()
            sess.run(None, {inp.name: x})
            times.append((time.perf_counter() - t0) * 1e3)
            for name, reading in pc.read().items():
                rows.setdefault(name, []).append(reading.value)
        mode = pc.mode
        scaling = dict(pc.scaling)
        unavailable = dict(pc.unavailable)
    finally:
        pc.close()
    med = {name: statistics.median(v) for name, v in rows.items()}
    return {"threads": threads, "images": images, "mode": mode, "median_ms": statistics.median(times),
            "median_per_image": med, "scaling": scaling, "unavailable": unavailable}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="an ONNX file to count per image (part 4)")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--json", type=Path, help="write everything here")
    args = ap.parse_args(argv)

    out: dict = {"machine": machine_facts()}
    m = out["machine"]
    print(f"kernel {m['kernel']} ({m['machine']}), {m['cpu_count']} CPUs, {m['cpu_model']}")
    print(f"event sources: {', '.join(m['event_source_devices']) or 'none'}; core PMUs: "
          f"{', '.join(m['core_pmus']) or 'none'}; paranoid {m['perf_event_paranoid']}; "
          f"flags {m['cpu_flags']}; perf binary {m['perf_binary'] or 'not on PATH'}")
    for dev, events in m["pmu_events"].items():
        print(f"  {dev} events: {', '.join(events)}")
    out["events"] = probe_events()
    print(f"\n{'event':<22} {'perf name':<28} {'type':<9} opens  reason")
    for r in out["events"]:
        print(f"{r['name']:<22} {r['perf_name']:<28} {r['type']:<9} {'yes' if r['available'] else 'no ':<6} "
              f"{r['reason'] or ''}")
    out["power_pmu"] = power_pmu()
    print("\nperf power PMU: " + (json.dumps(out["power_pmu"]["events"]) if out["power_pmu"]["available"]
                                  else out["power_pmu"]["reason"]))
    out["sensors"] = sensors()
    print("\nsensors:")
    for s in out["sensors"]:
        print("  " + ", ".join(f"{k}={v}" for k, v in s.items()))
    if args.model is not None:
        out["counts"] = []
        for threads in (1, 2):
            try:
                res = count_per_image(args.model, args.images, threads)
            except Exception as exc:  # report, do not hide: the probe above is still worth having
                res = {"threads": threads, "error": f"{type(exc).__name__}: {exc}"}
            out["counts"].append(res)
            print(f"\n{args.model.name}, {threads} thread(s): {json.dumps(res, default=str)}")
    if args.json:
        args.json.write_text(json.dumps(json_safe(out), indent=1, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
