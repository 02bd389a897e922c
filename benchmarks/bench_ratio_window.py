"""Rescore stored quick-sample pairs with other start windows of the long-run / start ratio.

    python benchmarks/bench_ratio_window.py datasets/traces-fresh/bench-seconds-3.json \\
        [--window 1 --window 2 ...] [--ratio-traces DATASET ...] [--json OUT]

The long-run estimate from a quick sample is the sample's throughput x the ratio long-run / start-of-run
of recorded traces (``perfmodel.model.longrun``), the start being the traces' first ``window_s`` seconds
(2 s by default). A ``--seconds 3`` sample spans 3 s, so should the window match the sample? This takes
the rows of a ``bench_quick_sample.py --json`` file (each a quick sample and the long run measured after
it), keeps every sample's measured throughput, recomputes the ratio with each ``--window`` (traces of the
*other* networks only, as the benchmark does) and prints the mean absolute error against the measured long
run per network, for the ``--images`` sample (``quick_fps``) and, where the file has it, the timed sample
(``timed_quick_fps``, from ``--compare-seconds``). Nothing is run: no timing, seconds of CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLES = (("images", "quick_fps"), ("timed", "timed_quick_fps"))


def rescore(rows: list[dict], window_s: float, traces: list[Path] | None, column: str) -> dict:
    """Per network and overall: mean |error| % of sample x ratio(window_s) vs the row's long run."""
    from perfmodel.workflows.quick import long_run_from_sample

    errors: dict[str, list[float]] = {}
    for r in rows:
        q = r.get(column)
        if q is None or not np.isfinite(q) or q <= 0:
            continue
        out = long_run_from_sample(float(q), r["framework"], int(r["threads"]), traces,
                                   exclude_network=[r["network"]], window_s=window_s)
        if "reason" in out:
            raise SystemExit(f"{r['framework']} x {r['network']}: {out['reason']}")
        errors.setdefault(r["network"], []).append(100 * (out["pred"] - r["long_run_fps"]) / r["long_run_fps"])
    every = np.abs(np.concatenate([np.asarray(v) for v in errors.values()])) if errors else np.array([])
    return {"window_s": window_s, "sample": column, "n": int(len(every)),
            "mean_abs_pct": float(every.mean()) if len(every) else float("nan"),
            "within_5": int((every <= 5).sum()),
            "per_network": {n: float(np.mean(np.abs(v))) for n, v in errors.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench_json", nargs="+", type=Path, help="bench_quick_sample.py --json output(s)")
    ap.add_argument("--window", action="append", type=float, default=None, metavar="S",
                    help="start window in seconds (repeatable; default 1 2 3 4 5)")
    ap.add_argument("--ratio-traces", action="append", default=None, type=Path, metavar="DATASET",
                    help="trace data sets for the ratio (default: the package's, as perfmodel predict uses)")
    ap.add_argument("--json", type=Path, help="write the table as JSON")
    args = ap.parse_args(argv)
    windows = args.window or [1.0, 2.0, 3.0, 4.0, 5.0]
    if any(not 0 < w <= 10 for w in windows):
        ap.error("--window must be in (0, 10] s (the long run starts after 10 s)")
    rows = []
    for path in args.bench_json:
        try:
            rows += [r for r in json.loads(path.read_text("utf-8"))["rows"] if r.get("status") == "ok"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            ap.error(f"{path}: not a bench_quick_sample.py --json file ({exc})")
    if not rows:
        ap.error("no scored rows (status ok) in the file(s)")
    table = []
    print(f"{len(rows)} pairs from {', '.join(map(str, args.bench_json))}")
    print(f"{'sample':8s} {'window s':>8s} {'mean |err| %':>12s} {'within 5 %':>10s}  per network")
    for label, column in SAMPLES:
        if not any(column in r for r in rows):
            continue
        for w in windows:
            res = rescore(rows, w, args.ratio_traces, column)
            table.append(res)
            nets = "  ".join(f"{n} {e:.2f}" for n, e in res["per_network"].items())
            print(f"{label:8s} {w:8.1f} {res['mean_abs_pct']:12.2f} {res['within_5']:>5d}/{res['n']:<4d}  {nets}")
    if args.json:
        args.json.write_text(json.dumps({"inputs": [str(p) for p in args.bench_json], "table": table}, indent=1)
                             + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
