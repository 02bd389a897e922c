"""A throughput model trained at one hour, scored on data timed at another: with and without pricing its
counts at the GEMM speed of the data's calibration (``perfmodel predict`` does this for overhead-linear
models).

    python benchmarks/bench_speed_calibration.py --model trained/throughput_reference.json \\
        datasets/validation-networks --counts-from datasets/simulated-l2-2mib [--json OUT]

(the shipped model was fitted on counts simulated with this VM's caches, so its counts come from
``--counts-from``; a model of the reference's own counts takes ``--simulated-from datasets/reference``)

Prints MAPE, share within +-10 % and the mean signed error over all timing cells of each data
set, then per framework x threads, for: the model as trained (the machine as it was), and rescaled by
training GEMM GFLOP/s / the data's. Networks the model never saw are listed apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def score(y, pred) -> dict:
    """MAPE, share within +-10 % and n (:func:`perfmodel.model.cv.regression_metrics`) + the mean signed error %."""
    from perfmodel.model.cv import regression_metrics

    m = regression_metrics(y, pred)
    return {"mape": m["mape"], "within_10": m["within_10"], "mean_signed": float(np.mean(100 * (pred - y) / y)),
            "n": m["n"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", help="data sets to score (timing cells with throughput)")
    ap.add_argument("--model", required=True, type=Path, help="an overhead-linear throughput model file")
    ap.add_argument("--simulated-from", action="append", default=[], type=Path, metavar="DATASET",
                    help="valgrind cells joined to the data sets' timing cells (as perfmodel predict)")
    ap.add_argument("--counts-from", type=Path, metavar="DATASET",
                    help="valgrind cells used instead of the data sets' own (counts simulated with the model's "
                         "cache geometry, e.g. datasets/simulated-l2-2mib for trained/throughput_reference.json)")
    ap.add_argument("--json", type=Path, help="write the table as JSON")
    args = ap.parse_args(argv)
    if args.counts_from is not None and args.simulated_from:
        ap.error("give --counts-from or --simulated-from, not both")
    import pandas as pd

    from perfmodel.model.prepare import needs_stream_time, speed_ratio_text, with_speed_calibration, with_stream_time
    from perfmodel.workflows.load import load_counted
    from perfmodel.errors import PerfmodelError
    from perfmodel.model import load_model
    from perfmodel.model.prepare import check_counts_geometry, counts_geometry

    model = load_model(args.model)
    groups = (model.training or {}).get("groups")  # the CV groups: the networks of a LONO-fitted model
    trained_on = set(map(str, groups)) if isinstance(groups, list) else set()
    gemm = model.preparation.gemm_gflops
    out = {"model": str(args.model), "training_gemm_gflops": None if gemm is None else {str(t): v for t, v in gemm.items()},
           "datasets": []}
    for ds in args.datasets:
        sources = [args.counts_from] if args.counts_from is not None else [ds, *args.simulated_from]
        try:
            check_counts_geometry(model, counts_geometry(sources), ", ".join(map(str, sources)))
        except PerfmodelError as exc:
            ap.error(str(exc))
        df = load_counted(ds, counts_from=args.counts_from, simulated_from=args.simulated_from)
        if needs_stream_time(model.features):
            df, _, _ = with_stream_time(df, ds, model.preparation.stream_bandwidth_gbps)
        ok = pd.to_numeric(df.frame["throughput_fps"], errors="coerce").notna() & \
            pd.to_numeric(df.frame["instructions_per_image"], errors="coerce").notna()
        table = df.rows(ok, reset_index=True)  # a Table: its provenance is checked by predict_frame
        df = table.frame
        y = df["throughput_fps"].to_numpy(dtype="float64")
        scaled, speed = with_speed_calibration(table, model, dataset=ds)
        rows = {}
        for name, frame in (("as trained", table), ("rescaled", scaled)):
            pred = model.predict_frame(frame)["pred"].to_numpy()
            res = {"all": score(y, pred)}
            new = (~df["network"].astype(str).isin(trained_on)).to_numpy() if trained_on else np.zeros(len(df), bool)
            if new.any():
                res["networks not in training"] = score(y[new], pred[new])
                res["networks in training"] = score(y[~new], pred[~new])
            res["per_framework_threads"] = {f"{fw} t{t}": score(y[idx], pred[idx]) for (fw, t), idx in
                                            df.groupby(["framework", "threads"]).indices.items()}
            rows[name] = res
        print(f"\n{ds}: {len(df)} timing cells; "
              + (f"ratio {speed_ratio_text(speed)} ({speed['source']})"
                 if speed["applied"] else f"not rescaled: {speed['reason']}"))
        print(f"{'':34s} {'as trained':>28s} {'rescaled':>28s}")
        keys = ["all"] + [k for k in ("networks not in training", "networks in training") if k in rows["as trained"]]
        for k in keys + list(rows["as trained"]["per_framework_threads"]):
            a = rows["as trained"].get(k) or rows["as trained"]["per_framework_threads"][k]
            b = rows["rescaled"].get(k) or rows["rescaled"]["per_framework_threads"][k]
            print(f"{k:34s} " + " ".join(f"{s['mape']:7.2f} % ({s['within_10']:5.1f} %, {s['mean_signed']:+6.1f})"
                                         for s in (a, b)))
        out["datasets"].append({"dataset": ds, "cells": int(len(df)), "speed": speed, "rows": rows})
    print("\ncolumns: MAPE % (share within +-10 %, mean signed error %)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
