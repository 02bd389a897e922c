"""Throughput model: leave-one-network-out MAPE and share within +-10 % vs the MACs-only baseline.

    python benchmarks/bench_throughput_model.py DATASET [--json OUT]
    python benchmarks/bench_throughput_model.py --synthetic        # demo on generated data (not a measurement)

DATASET: a data set folder / records file with timing cells (framework, network, threads, latency) and
separate valgrind cells (threads=1, simulated per-image counts); the simulated counts are attached to
the timing cells of every thread count (perfmodel.model.features.join_simulated). Models:

* ``log(fps) ~ log(instructions/image) + framework + log(threads) x framework`` (log-linear, fixed);
* the same plus stepwise-chosen simulated counts / miss rates (log-linear, stepwise);
* linear and ridge on the same fixed terms;
* baselines: mean, MACs-only per (framework, threads) (``log fps = a + b log MACs``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("--synthetic", action="store_true", help="use generated data (a demo, not a measurement)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    from perfmodel.data import read_dataset, wide_per_cell
    from perfmodel.model import fit_model
    from perfmodel.model.features import attach_macs, join_simulated, throughput_terms
    from perfmodel.model.fit import evaluate

    if args.synthetic:
        from perfmodel.model.synthetic import synthetic_throughput_records

        records = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50"))
    elif args.dataset:
        records = read_dataset(args.dataset)
    else:
        ap.error("give DATASET or --synthetic")
    df = join_simulated(wide_per_cell(records))
    df = df[df["instructions_per_image"].notna() & df["throughput_fps"].notna()].reset_index(drop=True)
    try:
        df = attach_macs(df)
    except Exception as exc:  # noqa: BLE001
        print(f"MACs-only baseline not evaluated: {exc}")
    fixed = throughput_terms(df)
    rows = []
    _, res = evaluate(df, "throughput_fps", fixed, kinds=("loglinear", "linear", "ridge"), group="network",
                      n_jobs=args.jobs)
    for r in res:
        rows.append({"model": r["model"] + ("" if r["model"].startswith("baseline") else " (fixed terms)"),
                     "mape": r.get("mape"), "within_10": r.get("within_10"), "reason": r.get("reason")})
    sw = fit_model(df, "throughput_fps", kind="loglinear", groups="lono", baselines=False, statistics=False,
                   n_jobs=args.jobs)
    rows.append({"model": "loglinear (fixed + stepwise counts)", "mape": sw.cv.get("mape"),
                 "within_10": sw.cv.get("within_10"), "reason": None})
    print(f"throughput, leave-one-network-out: {len(df)} cells, {df['network'].nunique()} networks, "
          f"{df['framework'].nunique()} frameworks, threads {sorted(df['threads'].unique())}")
    print(f"fixed terms: {', '.join(fixed)}")
    print(f"stepwise added: {', '.join(f for f in sw.features if f not in fixed) or '-'}")
    print(f"{'model':40s} {'MAPE %':>8s} {'<=10 %':>7s}")
    for r in rows:
        if r["mape"] is None:
            print(f"{r['model']:40s} not evaluated: {r['reason']}")
        else:
            print(f"{r['model']:40s} {r['mape']:8.2f} {r['within_10']:7.1f}")
    if args.synthetic:
        print("(synthetic data: these figures only show the pipeline works; they are not measurements)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "fixed": fixed, "stepwise": sw.features}, indent=1,
                                        default=lambda x: None if isinstance(x, float) and not np.isfinite(x) else str(x)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
