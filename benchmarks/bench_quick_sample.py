"""Quick-sample prediction vs long-run traces: error of the predicted long-run throughput per network.

    python benchmarks/bench_quick_sample.py --model trained/throughput_reference.json \\
        --trace datasets/traces/squeezenet1_1 --trace datasets/traces/googlenet --trace datasets/traces/resnet50 \\
        [--images 10] [--skip-s 10] [--simulated-from datasets/reference] [--simulate] [--json OUT]

For every trace data set (``perfmodel trace`` output, ``phase="trace"`` records; framework, network and
threads are read from its records) this takes a fresh quick sample of the same framework x network x
threads (``--images`` counted images after a warm-up, as ``perfmodel predict --framework ...`` does),
predicts the long-run throughput with the model (simulated counts from the reference data set when the
model needs them and the library versions match) and compares it with the trace's measured long-run
throughput: images / seconds over the trace after its first ``--skip-s`` seconds. The quick sample's
own throughput (the naive estimate) is compared too, and the sample's throughput x the long-run / first-2-s
ratio of long-run traces of the *other* networks (``perfmodel.model.longrun``; never the held-out network's
own trace). Issue target: <= 5 % error per paper network.

Each quick sample runs inference for a few seconds: do not run this while other timing measurements run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def long_run(trace_path: Path, skip_s: float) -> list[dict]:
    """One dict per trace cell of the data set: keys, long-run fps after ``skip_s`` and the trace length."""
    from perfmodel.data import read_dataset, wide_per_sample

    records = read_dataset(trace_path)
    records = records[records["phase"] == "trace"]
    if records.empty:
        return []
    wide = wide_per_sample(records)
    out = []
    for (fw, net, thr, cid), g in wide.groupby(["framework", "network", "threads", "cell_id"], sort=True):
        late = g[g["t_rel_s"] >= skip_s]
        if late.empty or not np.isfinite(late["images"]).all():
            out.append({"framework": fw, "network": net, "threads": int(thr), "cell_id": cid, "long_run_fps": None,
                        "reason": f"no trace samples after the first {skip_s:g} s"})
            continue
        fps = float(late["images"].sum() / late["dt_s"].sum())
        out.append({"framework": fw, "network": net, "threads": int(thr), "cell_id": cid, "long_run_fps": fps,
                    "trace_s": float(g["t_rel_s"].max() + g["dt_s"].iloc[-1]), "samples_used": int(len(late)),
                    "first_10s_fps": float(g.loc[g["t_rel_s"] < skip_s, "images"].sum()
                                           / max(g.loc[g["t_rel_s"] < skip_s, "dt_s"].sum(), 1e-9))})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="throughput model file (perfmodel fit)")
    ap.add_argument("--trace", action="append", default=[], type=Path, help="a trace data set (repeatable)")
    ap.add_argument("--images", type=int, default=10, help="counted images of each quick sample (<= 10)")
    ap.add_argument("--skip-s", type=float, default=10.0, help="seconds at the start of a trace left out")
    ap.add_argument("--simulated-from", type=Path, default=None, help="data set with the simulated counts "
                    "(default: datasets/reference of this checkout)")
    ap.add_argument("--simulate", action="store_true", help="run the valgrind pass when no reference applies")
    ap.add_argument("--counters", default="auto")
    ap.add_argument("--ratio-traces", action="append", default=None, type=Path, metavar="DATASET",
                    help="traces whose long-run / first-2-s ratio turns the quick sample's own throughput into a "
                         "long-run estimate (default: datasets/traces of this checkout + the --trace ones); the "
                         "held-out network's own traces are never used for its estimate")
    ap.add_argument("--json", type=Path, help="write the table as JSON")
    args = ap.parse_args(argv)
    from perfmodel.cli.model import default_traces, long_run_from_sample, quick_sample_table, sample_rel_se
    from perfmodel.errors import PerfmodelError
    from perfmodel.model import load_model

    if not args.trace:
        print("no --trace data set given: nothing to compare (record one with `perfmodel trace ... -o DIR`)")
        return 2
    try:
        model = load_model(args.model)
    except PerfmodelError as exc:
        print(f"cannot load the model: {exc}")
        return 2
    rows = []
    for path in args.trace:
        if not (path / "dataset.json").is_file():
            print(f"{path}: no trace data set there (not recorded yet?) - skipped")
            rows.append({"trace": str(path), "status": "missing", "reason": "no dataset.json"})
            continue
        cells = long_run(path, args.skip_s)
        if not cells:
            print(f"{path}: the data set has no finished trace cell (phase='trace' records) - skipped")
            rows.append({"trace": str(path), "status": "missing", "reason": "no trace records"})
            continue
        for c in cells:
            row = {"trace": str(path), **c}
            if c["long_run_fps"] is None:
                rows.append({**row, "status": "not evaluated"})
                continue
            t0 = time.perf_counter()
            try:
                df, note, _ = quick_sample_table(model, c["framework"], c["network"], threads=c["threads"],
                                                 images=args.images, counters=args.counters,
                                                 simulated_from=args.simulated_from, simulate=args.simulate)
                pred = model.predict_frame(df).iloc[0]
            except PerfmodelError as exc:
                rows.append({**row, "status": "not evaluated", "reason": str(exc)})
                print(f"{c['framework']} x {c['network']} t{c['threads']}: not evaluated: {exc}")
                continue
            quick = float(df["throughput_fps"].iloc[0])
            lr = c["long_run_fps"]
            ratio_traces = args.ratio_traces or list(dict.fromkeys(default_traces() + list(args.trace)))
            fs = long_run_from_sample(quick, c["framework"], c["threads"], ratio_traces,
                                      exclude_network=[c["network"]], quick_rel_se=sample_rel_se(df))
            if "pred" in fs:
                row.update({"from_sample_fps": fs["pred"], "from_sample_lo": fs["lo"], "from_sample_hi": fs["hi"],
                            "from_sample_error_pct": 100 * (fs["pred"] - lr) / lr, "ratio": fs["ratio"],
                            "ratio_traces": fs["traces_from"]})
            else:
                row["from_sample_reason"] = fs["reason"]
            row.update({"status": "ok", "predicted_fps": float(pred["pred"]), "lo": float(pred["lo"]),
                        "hi": float(pred["hi"]), "quick_fps": quick,
                        "model_error_pct": 100 * (float(pred["pred"]) - lr) / lr,
                        "naive_error_pct": 100 * (quick - lr) / lr,
                        "in_interval": bool(pred["lo"] <= lr <= pred["hi"]), "counts_from": note,
                        "sample_wall_s": time.perf_counter() - t0})
            rows.append(row)
    ok = [r for r in rows if r.get("status") == "ok"]
    print(f"\nquick sample ({args.images} images) vs long-run trace (after the first {args.skip_s:g} s); "
          f"model {args.model}")
    print(f"{'framework x network (threads)':36s} {'long-run':>9s} {'predicted [interval]':>26s} {'err %':>7s} "
          f"{'quick':>8s} {'naive err %':>11s} {'from sample [interval]':>26s} {'err %':>7s}")
    for r in rows:
        label = f"{r.get('framework', '?')} x {r.get('network', r['trace'])} ({r.get('threads', '?')})"
        if r.get("status") != "ok":
            print(f"{label:36s} not evaluated: {r.get('reason', r.get('status'))}")
            continue
        iv = f"{r['predicted_fps']:.2f} [{r['lo']:.1f}, {r['hi']:.1f}]"
        fs = (f"{r['from_sample_fps']:.2f} [{r['from_sample_lo']:.1f}, {r['from_sample_hi']:.1f}]"
              if "from_sample_fps" in r else "-")
        fe = f"{r['from_sample_error_pct']:+7.1f}" if "from_sample_fps" in r else "      -"
        print(f"{label:36s} {r['long_run_fps']:9.2f} {iv:>26s} {r['model_error_pct']:+7.1f} {r['quick_fps']:8.2f} "
              f"{r['naive_error_pct']:+11.1f} {fs:>26s} {fe}")
    if ok:
        m = np.mean([abs(r["model_error_pct"]) for r in ok])
        n = np.mean([abs(r["naive_error_pct"]) for r in ok])
        within = sum(abs(r["model_error_pct"]) <= 5 for r in ok)
        print(f"mean |error|: model {m:.1f} %, naive {n:.1f} %; model within 5 %: {within}/{len(ok)}")
        fs = [r for r in ok if "from_sample_fps" in r]
        if fs:
            f_m = np.mean([abs(r["from_sample_error_pct"]) for r in fs])
            f_w = sum(abs(r["from_sample_error_pct"]) <= 5 for r in fs)
            print(f"from the sample (x the long-run / start ratio of the other networks' traces): mean |error| "
                  f"{f_m:.1f} %, within 5 %: {f_w}/{len(fs)}; ratio from {fs[0]['ratio_traces']}")
        for r in ok:
            if "from_sample_reason" in r:
                print(f"from the sample, {r['network']}: not evaluated: {r['from_sample_reason']}")
        print(f"counts from: {ok[0]['counts_from']}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "images": args.images, "skip_s": args.skip_s,
                                         "rows": rows}, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
