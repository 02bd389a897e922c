"""Cost of the sensor sampler at a 10 ms period on a fake board tree (target: < 5 % of one core).

The fake tree has a CPU thermal zone, a 4-CPU cpufreq policy, an INA219 (power/voltage/current), a
3-channel INA3221 and a RAPL package zone, so every sysfs source kind is read each tick. The main thread
sleeps while the sampler runs; the process CPU time over the wall time is the sampler's cost.

    .venv/bin/python benchmarks/bench_sensor_sampler.py [--seconds 5] [--period 0.01] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.sensors import Sampler, SensorSet  # noqa: E402


def fake_tree(root: Path) -> Path:
    def w(rel: str, text: str) -> None:
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    w("/sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    w("/sys/class/thermal/thermal_zone0/temp", "48312\n")
    pol = "/sys/devices/system/cpu/cpufreq/policy0"
    w(f"{pol}/scaling_cur_freq", "1200000\n")
    w(f"{pol}/affected_cpus", "0 1 2 3\n")
    w("/sys/class/hwmon/hwmon0/name", "ina219\n")
    for f, v in (("in1_input", 5100), ("curr1_input", 500), ("power1_input", 2550000)):
        w(f"/sys/class/hwmon/hwmon0/{f}", f"{v}\n")
    w("/sys/class/hwmon/hwmon1/name", "ina3221\n")
    for ch in (1, 2, 3):
        w(f"/sys/class/hwmon/hwmon1/in{ch}_input", "5000\n")
        w(f"/sys/class/hwmon/hwmon1/curr{ch}_input", "300\n")
    w("/sys/class/powercap/intel-rapl:0/energy_uj", "123456\n")
    w("/sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--period", type=float, default=0.01)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = fake_tree(Path(d))
        sset = SensorSet(root)
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            sset.read()
        read_us = (time.perf_counter() - t0) / n * 1e6
        sset.close()

        c0, w0 = time.process_time(), time.monotonic()
        with Sampler(args.period, root=root) as s:
            time.sleep(args.seconds)
        cpu, wall = time.process_time() - c0, time.monotonic() - w0
        ts = [t for t, _ in s.samples()]
    gaps = [(b - a) * 1e3 for a, b in zip(ts[1:-2], ts[2:-1])]
    res = {
        "period_ms": args.period * 1e3, "seconds": wall, "samples": len(ts),
        "snapshot_read_us": read_us, "cpu_percent_of_one_core": 100 * cpu / wall,
        "interval_ms_median": statistics.median(gaps), "interval_ms_p95": sorted(gaps)[int(0.95 * len(gaps))],
        "interval_ms_max": max(gaps),
    }
    print(f"{'metric':<28}{'value':>12}")
    for k, v in res.items():
        print(f"{k:<28}{v:>12.3f}" if isinstance(v, float) else f"{k:<28}{v:>12}")
    print("target: cpu_percent_of_one_core < 5 at a 10 ms period")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
