"""Modelling speed: fit + CV of all model kinds, and the latency of one prediction.

    python benchmarks/bench_model_speed.py [--data armpm:PATH] [--json OUT]

Default data: the synthetic power table (360 samples) and, where present, the ARMPM file (6 000
samples) and the reference throughput data set (the trained model's fixed form: fit +
leave-one-network-out CV with baselines; one prediction includes computing its FC weight-streaming
time and the GEMM-speed rescaling of its counts). Budget: fit + CV of all models <= 10 s on 2 cores; one prediction <= 10 ms.
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
ARMPM = ROOT.parent / "shared" / "data" / "armpm-parsec" / "xu3_cset_perfcpu_PARSEC_eMMC_big.data"
FEATS = ["voltage_v", "voltage_v^2*freq_mhz", "temperature_c*voltage_v", "instructions_per_s*voltage_v^2",
         "l2d_accesses_per_s*voltage_v^2", "cycles_per_s*voltage_v^2"]


def throughput_row(ref: Path, trained: Path, jobs: int) -> dict:
    """The trained throughput model's form on the reference data set: fit + leave-one-network-out CV (with
    the baselines), and one prediction from a reference row including its FC weight-streaming time."""
    from perfmodel.data import dataset_calibrations, read_dataset, stream_bandwidth, wide_per_cell
    from perfmodel.model import fit_model, load_model
    from perfmodel.model.features import attach_stream_time, join_simulated

    df = join_simulated(wide_per_cell(read_dataset(ref)))  # a Table: the frame and its provenance
    df = df.rows(df.frame["throughput_fps"].notna() & df.frame["instructions_per_image"].notna(), reset_index=True)
    from perfmodel.model.prepare import with_speed_calibration
    from perfmodel.workflows.fit import named_terms

    bw = stream_bandwidth(dataset_calibrations(ref))
    t = time.perf_counter()
    train = attach_stream_time(df, bw)
    m = load_model(trained)
    train, terms = named_terms(train, m.preparation.terms or "throughput-stream")
    fit_model(train, "throughput_fps", terms, kind="overhead-linear", groups="lono", select="fixed", n_jobs=jobs)
    t_fit = time.perf_counter() - t
    t = time.perf_counter()
    m = load_model(trained)
    t_load = time.perf_counter() - t
    one = df.with_frame(df.frame.iloc[[0]].copy())
    times = []
    gemm = m.preparation.gemm_gflops or {}  # the speed rescaling runs too (ratio 1 here)
    for _ in range(200):
        t = time.perf_counter()
        frame, _ = with_speed_calibration(attach_stream_time(one, bw), m, now_gflops=gemm)
        m.predict_frame(frame)
        times.append(time.perf_counter() - t)
    return {"data": f"throughput ({len(df)})", "cv_3_kinds_fixed_s": float("nan"), "fit_stepwise_cv_s": t_fit,
            "load_ms": 1000 * t_load, "predict_one_ms_median": 1000 * float(np.median(times)),
            "predict_one_ms_p95": 1000 * float(np.percentile(times, 95))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    from perfmodel.model import fit_model, load_model, save_model
    from perfmodel.model.fit import evaluate
    from perfmodel.model.synthetic import synthetic_power_table

    sets = {"synthetic (360)": synthetic_power_table()}
    if ARMPM.is_file():
        from perfmodel.data.importers.armpm import load_armpm

        sets["armpm (6059)"] = load_armpm(ARMPM, sensor_lag=1)
    rows = []
    for name, df in sets.items():
        t = time.perf_counter()
        evaluate(df.frame, "power_w", FEATS, kinds=("linear", "loglinear", "ridge"), group="workload", n_jobs=args.jobs)
        t_eval = time.perf_counter() - t
        t = time.perf_counter()
        m = fit_model(df, "power_w", kind="linear", groups="lowo", n_jobs=args.jobs)
        t_fit = time.perf_counter() - t
        path = save_model(m, Path("/tmp") / "bench_model_speed.json")
        m = load_model(path)
        one = df.with_frame(df.frame.iloc[[0]].copy())
        m.predict_frame(one)
        times = []
        for _ in range(200):
            t = time.perf_counter()
            m.predict_frame(one)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        load_model(path)
        t_load = time.perf_counter() - t
        rows.append({"data": name, "cv_3_kinds_fixed_s": t_eval, "fit_stepwise_cv_s": t_fit,
                     "load_ms": 1000 * t_load, "predict_one_ms_median": 1000 * float(np.median(times)),
                     "predict_one_ms_p95": 1000 * float(np.percentile(times, 95))})
    ref = ROOT / "datasets" / "reference"
    trained = ROOT / "trained" / "throughput_reference.json"
    if (ref / "dataset.json").is_file() and trained.is_file():
        from perfmodel.errors import PerfmodelError

        try:
            rows.append(throughput_row(ref, trained, args.jobs))
        except PerfmodelError as exc:
            print(f"throughput row not evaluated: {exc}")
    print("(throughput row: the trained model's fixed terms, so its fit column is fit + CV without stepwise)")
    print(f"{'data':16s} {'CV 3 kinds s':>12s} {'fit+stepwise+CV s':>18s} {'load ms':>8s} {'predict ms':>11s} {'p95 ms':>7s}")
    for r in rows:
        print(f"{r['data']:16s} {r['cv_3_kinds_fixed_s']:12.2f} {r['fit_stepwise_cv_s']:18.2f} {r['load_ms']:8.2f} "
              f"{r['predict_one_ms_median']:11.2f} {r['predict_one_ms_p95']:7.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
