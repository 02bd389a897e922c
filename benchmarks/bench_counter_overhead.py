"""Per-image cost of reading the counters, against a SqueezeNet inference latency.

Measures, on this machine:

* open + enable + close of a ``perf_event_open`` counter set (paid once per cell, not per image);
* one ``read()`` per image of the perf_event group(s) (PERF_FORMAT_GROUP), and the per-event-fd
  fallback used on kernels that refuse ``inherit`` with group reads;
* one ``read()`` of the OS counters (getrusage + psutil), and of the combined ``open_counters("auto")``.

The per-image read cost is reported as a percentage of a SqueezeNet latency: ``--latency-ms`` if given,
else measured with ``perfmodel.runners`` (ONNX Runtime, 1 thread) when it is importable and the model can
be loaded, else 10 ms. Target: <= 1 % of the SqueezeNet latency.

    .venv/bin/python benchmarks/bench_counter_overhead.py [--latency-ms 10] [--reads 5000] [--json out.json]

On a VM without a PMU only software events open; on a board the hardware group is read too (one more
``read(2)`` per group).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.counters import CounterSet, PerfEventCounters, SoftwareCounters, default_events  # noqa: E402
from perfmodel.counters.perf_event import DEFAULT_SOFTWARE  # noqa: E402


def per_call_us(fn: Callable[[], object], calls: int, batches: int = 10) -> tuple[float, float]:
    """Median and min over ``batches`` of the mean time of one call, in microseconds."""
    per_batch = max(1, calls // batches)
    for _ in range(min(per_batch, 100)):  # warm-up
        fn()
    means = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in range(per_batch):
            fn()
        means.append((time.perf_counter_ns() - t0) / per_batch / 1e3)
    return statistics.median(means), min(means)


def squeezenet_latency_ms(framework: str, runs: int = 20) -> tuple[float, str]:
    try:
        import numpy as np

        from perfmodel.runners import get_runner

        runner = get_runner(framework, "squeezenet1_1", threads=1)
    except Exception as exc:  # noqa: BLE001 - any failure means "not measurable here"
        return 10.0, f"assumed 10 ms (runner unavailable: {type(exc).__name__}: {str(exc)[:120]})"
    try:
        x = np.zeros(runner.input_shape, dtype=np.float32)
        for _ in range(3):
            runner.infer(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            runner.infer(x)
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times), f"measured: {framework} squeezenet1_1, 1 thread, median of {runs}"
    finally:
        runner.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency-ms", type=float, default=None, help="SqueezeNet latency to compare with")
    ap.add_argument("--framework", default="onnxruntime", help="framework for measuring the latency")
    ap.add_argument("--reads", type=int, default=5000, help="reads per measurement")
    ap.add_argument("--opens", type=int, default=200, help="open/enable/close cycles")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    if args.latency_ms is not None:
        latency, latency_src = args.latency_ms, "given (--latency-ms)"
    else:
        latency, latency_src = squeezenet_latency_ms(args.framework)

    rows = []

    def add(name: str, med: float, best: float, per_image: bool, note: str = "") -> None:
        pct = 100.0 * med / 1e3 / latency if per_image else None
        rows.append({"measurement": name, "median_us": round(med, 3), "min_us": round(best, 3),
                     "per_image": per_image, "pct_of_latency": None if pct is None else round(pct, 4),
                     "note": note})

    events = default_events()
    probe_pc = PerfEventCounters(events).open()
    opened = probe_pc.available
    probe_pc.close()

    def cycle() -> None:
        pc = PerfEventCounters(events).open()
        pc.enable()
        pc.close()

    med, best = per_call_us(cycle, args.opens, batches=5)
    add("perf_event open+enable+close (default events)", med, best, False,
        f"{len(opened)} of {len(events)} events open here")

    for label, evs, group in (("perf_event read(), group, default events", events, True),
                              ("perf_event read(), group, 6 software events", list(DEFAULT_SOFTWARE), True),
                              ("perf_event read(), one fd per event (fallback)", list(DEFAULT_SOFTWARE), False)):
        pc = PerfEventCounters(evs, group=group).open()
        pc.enable()
        med, best = per_call_us(pc.read, args.reads)
        add(label, med, best, True, f"mode={pc.mode}, {len(pc.available)} events")
        pc.close()

    sc = SoftwareCounters()
    sc.start()
    med, best = per_call_us(sc.read, args.reads)
    add("OS counters read() (getrusage + psutil)", med, best, True)

    auto = CounterSet([PerfEventCounters(events).open(), SoftwareCounters()])
    auto.start()
    med, best = per_call_us(auto.read, args.reads)
    add("open_counters('auto') read() (perf_event + OS)", med, best, True)
    auto.close()

    result = {"machine": platform.machine(), "python": platform.python_version(),
              "latency_ms": round(latency, 3), "latency_source": latency_src, "target_pct": 1.0, "rows": rows}
    print(f"SqueezeNet latency: {latency:.3f} ms ({latency_src})")
    print(f"{'measurement':52s} {'median us':>10s} {'min us':>9s} {'% latency':>10s}")
    for r in rows:
        pct = "-" if r["pct_of_latency"] is None else f"{r['pct_of_latency']:.4f}"
        print(f"{r['measurement']:52s} {r['median_us']:10.2f} {r['min_us']:9.2f} {pct:>10s}  {r['note']}")
    worst = max(r["pct_of_latency"] for r in rows if r["per_image"])
    print(f"worst per-image read: {worst:.4f} % of latency (target <= 1 %): {'OK' if worst <= 1.0 else 'OVER'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
