"""Power model on real ARM data: leave-one-workload-out MAPE on the ODROID-XU3 A15 PARSEC file.

    python benchmarks/bench_power_model.py [--data PATH] [--json OUT] [--save trained/power_armpm_xu3_a15.json]

Every row is a leave-one-workload-out (LOWO) figure: each of the 9 workloads is predicted by a model
fitted on the other 8. The ``honest`` column says whether anything about the held-out workload was
used before it was predicted:

* ``yes`` - a fixed, a-priori feature set (no selection), or stepwise selection redone inside every
  outer fold on the training workloads only (``nested``). Ridge's alpha is always chosen inside the fit.
* ``no``  - stepwise selection scored on the very LOWO splits it is reported on (optimistic; shown
  because the reference figure, 6.8 %, was obtained that way).

Sensor alignment: the file pairs the counters of sample ``t`` with the sensor readings logged on the
same line, but power follows the counters by one sample (the within-run cross-correlation of power
with the cycle count peaks at a one-sample lag). ``lag1`` pairs the counters of ``t`` with the sensors
of ``t + 1`` (``load_armpm(sensor_lag=1)``); the lag is re-derived from the training workloads of every
outer fold (cross-correlation only, no model error) and printed, so the alignment is honest too.

Rows: the a-priori Powmon set (every event rate x V^2, V, V^2 f, T V, cores V^2 f, per-frequency
intercepts) under linear / log-linear / ridge; log-linear on an a-priori multiplicative set; nested
stepwise (linear; ridge with --nested-ridge) on the Powmon candidates; the automatic term set of
``perfmodel evaluate --features auto`` (linear, stepwise nested) and the same terms shrunk (``--shrink``); the study-style per-frequency OLS on 5 stepwise
raw event rates (reference reproduction, non-nested and nested); the naive baselines (mean,
per-frequency mean). Target <= 5 % honest LOWO MAPE.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "armpm-parsec" / "xu3_cset_perfcpu_PARSEC_eMMC_big.data"
TARGET = "power_w"


def average_adjacent(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of every two consecutive samples of a run (1 s windows: a different, smoother target)."""
    num = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    out = df.copy()
    out[num] = df.groupby("segment")[num].transform(lambda s: s.rolling(2).mean())
    return out.dropna(subset=[TARGET, "instructions_per_s"]).reset_index(drop=True)


class PerGroupOLS:
    """OLS fitted separately per value of ``column`` (the reference's per-frequency model)."""

    def __init__(self, features, column="freq_mhz"):
        self.features, self.column = list(features), column

    def fit(self, df, y):
        from perfmodel.model.features import feature_matrix

        self.coef_ = {}
        for v, idx in df.groupby(self.column).indices.items():
            X = np.column_stack([np.ones(len(idx)), feature_matrix(df.iloc[idx], self.features)])
            self.coef_[v] = np.linalg.lstsq(X, y[idx], rcond=None)[0]
        return self

    def predict(self, df):
        from perfmodel.model.features import feature_matrix

        X = np.column_stack([np.ones(len(df)), feature_matrix(df, self.features)])
        keys = df[self.column].to_numpy()
        return np.array([X[i] @ self.coef_[k] for i, k in enumerate(keys)])


def _per_freq_oof(X, y, freq, splits):
    """Out-of-fold predictions of a per-frequency OLS on the columns of ``X``."""
    pred = np.empty(len(y))
    for tr, te in splits:
        for f in np.unique(freq[te]):
            a = tr[freq[tr] == f]
            b = te[freq[te] == f]
            A = np.column_stack([np.ones(len(a)), X[a]])
            beta = np.linalg.lstsq(A, y[a], rcond=None)[0]
            pred[b] = np.column_stack([np.ones(len(b)), X[b]]) @ beta
    return pred


def per_freq_stepwise(df, candidates, splits, k=5):
    """Greedy choice of ``k`` raw event rates for a per-frequency OLS by the pooled CV MAPE on ``splits``."""
    y = df[TARGET].to_numpy(dtype="float64")
    freq = df["freq_mhz"].to_numpy()
    cols = {c: df[c].to_numpy(dtype="float64") for c in candidates}
    chosen: list[str] = []
    while len(chosen) < k:
        scores = {}
        for c in candidates:
            if c in chosen:
                continue
            X = np.column_stack([cols[t] for t in chosen + [c]])
            pred = _per_freq_oof(X, y, freq, splits)
            scores[c] = float(np.mean(np.abs(pred - y) / y))
        chosen.append(min(scores, key=scores.get))
    return chosen


def nested_per_freq(df, candidates, k=5):
    """LOWO MAPE of the per-frequency OLS with its 5 events chosen on the training workloads only."""
    from perfmodel.model.cv import make_splits

    y = df[TARGET].to_numpy(dtype="float64")
    pred = np.empty(len(y))
    chosen = {}
    for tr, te in make_splits(df, group="workload"):
        train = df.iloc[tr].reset_index(drop=True)
        feats = per_freq_stepwise(train, candidates, make_splits(train, group="workload"), k)
        m = PerGroupOLS(feats).fit(train, y[tr])
        pred[te] = m.predict(df.iloc[te])
        chosen[str(df["workload"].iloc[te[0]])] = feats
    return float(100 * np.mean(np.abs(pred - y) / y)), float(100 * np.mean(np.abs(pred - y) / y <= 0.10)), chosen


def _row(data, model, honest, r, k, note=""):
    return {"data": data, "model": model, "honest": honest, "mape": r.get("mape"), "within_10": r.get("within_10"),
            "r2": r.get("r2"), "features": k, "note": note}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, default=None, help="write the table as JSON here")
    ap.add_argument("--save", type=Path, default=None, help="write the best honest model file here")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="skip the nested-selection rows (the slow part)")
    ap.add_argument("--nested-ridge", action="store_true",
                    help="also nest stepwise selection for ridge (+~60 s; measured identical to linear: the "
                    "inner RidgeCV picks a negligible alpha on ~5000 samples)")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: ARMPM data file not found at {args.data}")
        return 0
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model import fit_model, save_model
    from perfmodel.model.cv import cross_validate, make_splits
    from perfmodel.model.features import power_features, power_loglinear_features, powmon_terms
    from perfmodel.model.fit import evaluate, nested_cv

    t0 = time.perf_counter()
    rows: list[dict] = []
    timings: dict[str, float] = {}
    imported = {f"lag{lag}": load_armpm(args.data, sensor_lag=lag) for lag in (0, 1)}  # Tables (with provenance)
    tables = {name: t.frame for name, t in imported.items()}

    # sensor lag, re-derived on the training workloads of every outer fold (cross-correlation, no model):
    # perfmodel.model.lag, what fit / evaluate --sensor-lag auto (the default) use
    from perfmodel.model.lag import choose_sensor_lag, fold_sensor_lags

    df0 = tables["lag0"]
    fold_lags = fold_sensor_lags(df0, make_splits(df0, group="workload"), group="workload")
    lag_all = choose_sensor_lag(df0)["lag"]

    # 1. a-priori feature sets: no selection, honest by construction
    for vname, df in tables.items():
        t = time.perf_counter()
        feats = power_features(df)
        _, res = evaluate(df, TARGET, feats, kinds=("linear", "loglinear", "ridge"), group="workload",
                          baselines=True, n_jobs=args.jobs)
        for r in res:
            if r.get("status") != "ok":
                rows.append({"data": vname, "model": r["model"], "honest": "", "mape": None, "within_10": None,
                             "r2": None, "features": None, "note": "not evaluated: " + r.get("reason", "")})
                continue
            base = r["model"].startswith("baseline")
            rows.append(_row(vname, r["model"] if base else f"{r['model']}, Powmon fixed set",
                             "yes", r, 0 if base else len(feats)))
        lfeats = power_loglinear_features(df)
        _, res = evaluate(df, TARGET, lfeats, kinds=("loglinear",), group="workload", baselines=False)
        rows.append(_row(vname, "loglinear, multiplicative fixed set", "yes", res[0], len(lfeats)))
        timings[f"fixed {vname}"] = time.perf_counter() - t

    df = tables["lag1"]
    events, fixed = powmon_terms(df, freq_levels=True)
    # 1 s windows (averaging adjacent samples changes the target: shown for reference only)
    avg = average_adjacent(df)
    _, res = evaluate(avg, TARGET, power_features(avg), kinds=("linear",), group="workload", baselines=False)
    rows.append(_row("lag1+avg2", "linear, Powmon fixed set", "yes", res[0], len(power_features(avg)),
                     "1 s mean power: a different target"))

    # 2. stepwise selection: optimistic (same splits) and nested (honest)
    t = time.perf_counter()
    splits = make_splits(df, group="workload")
    from perfmodel.model.estimators import make_estimator
    from perfmodel.model.selection import stepwise_select

    sel = stepwise_select(df, TARGET, events, make_estimator("linear"), splits, always=fixed, n_jobs=args.jobs)
    _, res = evaluate(df, TARGET, sel.features, kinds=("linear",), group="workload", baselines=False)
    rows.append(_row("lag1", "linear, stepwise on the same splits", "no", res[0], len(sel.features)))
    nested_chosen: dict[str, dict] = {}
    if not args.quick:
        for kind in ("linear", "ridge") if args.nested_ridge else ("linear",):
            cvr, chosen = nested_cv(df, TARGET, events, kind, "workload", always=fixed, n_jobs=args.jobs)
            rows.append(_row("lag1", f"{kind}, stepwise nested in outer folds", "yes", cvr.metrics,
                             round(float(np.mean([len(v) for v in chosen.values()])), 1), "k = mean over folds"))
            nested_chosen[kind] = {w: [f for f in v if f not in fixed] for w, v in chosen.items()}
    timings["stepwise"] = time.perf_counter() - t

    # 2b. the automatic term set (what fit / evaluate use on data without the fixed set's events, or with
    # --features auto): stepwise with the VIF cap on events per cycle nested in every outer fold; and the
    # same terms all kept, the event terms shrunk (evaluate --shrink, penalty chosen in inner folds)
    if not args.quick:
        from perfmodel.model.fit import evaluate_power_nested, evaluate_power_shrunk

        t = time.perf_counter()
        _, auto_rows = evaluate_power_nested(df, TARGET, kinds=("linear",), group="workload", baselines=False,
                                             n_jobs=args.jobs)
        auto_rows.append(evaluate_power_shrunk(df, TARGET, group="workload"))
        for r in auto_rows:
            if r.get("status") != "ok":
                rows.append({"data": "lag1", "model": f"{r['model']}, automatic set", "honest": "", "mape": None,
                             "within_10": None, "r2": None, "features": None,
                             "note": "not evaluated: " + r.get("reason", "")})
            elif "chosen" in r:
                k = round(float(np.mean([len(v) for v in r["chosen"].values()])), 1)
                rows.append(_row("lag1", f"{r['model']}, automatic set, stepwise nested", "yes", r, k,
                                 "--features auto; k = mean over folds"))
            else:
                rows.append(_row("lag1", "ridge, automatic set, events shrunk", "yes", r, len(r["features"]),
                                 "evaluate --shrink; penalty chosen in inner folds"))
        timings["automatic set"] = time.perf_counter() - t

    # 2c. the CLI's own path side by side: perfmodel evaluate --cv lowo with --sensor-lag auto (the default,
    # chosen inside every outer fold) and --sensor-lag 1, the default term set (the fixed set: the file has its
    # events) and --features auto --shrink (the automatic set, stepwise nested, and the shrunk row)
    cli_rows: list[dict] = []
    if not args.quick:
        from perfmodel.workflows.fit import evaluate_lagged, evaluation_lag, evaluation_table, evaluation_terms

        dataset = f"armpm:{args.data}"
        for lag_opt in ("auto", 1):
            t = time.perf_counter()
            lag = evaluation_lag(dataset, lag_opt, cv="lowo")
            tab = evaluation_table(dataset, sensor_lag=lag.lags()[0])
            for force_auto in (False, True):
                feats, terms = evaluation_terms(tab, TARGET, None, force_auto=force_auto)
                ev = evaluate_lagged(dataset, tab, lag, TARGET, feats, terms, cv="lowo", jobs=args.jobs,
                                     shrink=force_auto)
                for r in ev.rows:
                    if r["model"].startswith("baseline") and force_auto:
                        continue
                    cli_rows.append({"sensor_lag": f"{lag_opt} -> {lag.lag if lag.lag is not None else lag.per_fold}",
                                     "term_set": terms["set"], "model": r["model"], "mape": r.get("mape"),
                                     "within_10": r.get("within_10"), "status": r.get("status")})
            timings[f"cli evaluate, sensor lag {lag_opt}"] = time.perf_counter() - t

    # 3. the reference: per-frequency OLS on 5 stepwise raw event rates
    t = time.perf_counter()
    raw = [f"{e.split('*')[0]}" for e in events]
    ref_feats = per_freq_stepwise(df, raw, splits)
    pf = cross_validate(PerGroupOLS(ref_feats), df, TARGET, splits, name="pf", group="workload")
    rows.append(_row("lag1", "per-frequency OLS, 5 stepwise raw rates", "no", pf.metrics, 5))
    t_ref = {}
    ref0 = per_freq_stepwise(tables["lag0"], raw, make_splits(tables["lag0"], group="workload"))
    pf0 = cross_validate(PerGroupOLS(ref0), tables["lag0"], TARGET, make_splits(tables["lag0"], group="workload"),
                         name="pf", group="workload")
    rows.append(_row("lag0", "per-frequency OLS, 5 stepwise raw rates", "no", pf0.metrics, 5))
    if not args.quick:
        m, w10, t_ref = nested_per_freq(df, raw)
        rows.append(_row("lag1", "per-frequency OLS, 5 raw rates nested", "yes", {"mape": m, "within_10": w10}, 5))
    timings["per-frequency reference"] = time.perf_counter() - t
    elapsed = time.perf_counter() - t0

    def f(x, s):
        return "   n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, s)

    print(f"ARMPM XU3 A15 power, leave-one-workload-out MAPE ({len(df)} samples at lag 1, "
          f"{df['workload'].nunique()} workloads), {elapsed:.1f} s")
    print(f"sensor lag by cross-correlation: {lag_all} on all data; per outer fold (training workloads only): "
          f"{sorted(set(fold_lags.values()))}")
    print(f"{'data':10s} {'model':44s} {'honest':>6s} {'MAPE %':>7s} {'<=10 %':>7s} {'R2':>6s} {'k':>4s}  note")
    for r in rows:
        k = "" if r["features"] is None else str(r["features"])
        print(f"{r['data']:10s} {r['model']:44s} {r['honest']:>6s} {f(r['mape'], '7.2f')} {f(r['within_10'], '7.1f')} "
              f"{f(r['r2'], '6.3f')} {k:>4s}  {r['note']}")
    print("reference (issue): per-frequency OLS with 5 stepwise raw events 6.8 %; target <= 5 % honest")
    print(f"stepwise (same splits) chose: {', '.join(f for f in sel.features if f not in fixed)}")
    print(f"per-frequency reference chose: {', '.join(ref_feats)} (lag 0: {', '.join(ref0)})")
    for kind, ch in nested_chosen.items():
        print(f"nested {kind} chose per held-out workload: {json.dumps(ch)}")
    if cli_rows:
        print("perfmodel evaluate --cv lowo, side by side (sensor lag option -> lag used; term set; model):")
        for r in cli_rows:
            print(f"  {r['sensor_lag']:8s} {r['term_set']:6s} {r['model']:56s} {f(r['mape'], '7.2f')} % "
                  f"{f(r['within_10'], '6.1f')} % within 10 %")
    honest = [r for r in rows if r["honest"] == "yes" and r["data"] != "lag1+avg2" and r["mape"] is not None
              and not r["model"].startswith("baseline")]
    best = min(honest, key=lambda r: r["mape"])
    print(f"best honest: {best['data']} {best['model']}: {best['mape']:.2f} %")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "elapsed_s": elapsed, "timings_s": timings,
                                         "sensor_lag_xcorr": lag_all, "sensor_lag_per_fold": fold_lags,
                                         "stepwise_same_splits": sel.features, "nested_chosen": nested_chosen,
                                         "per_frequency_reference": {"lag1": ref_feats, "lag0": ref0,
                                                                     "nested": t_ref},
                                         "best_honest": best, "cli_side_by_side": cli_rows}, indent=1, default=str))
    if args.save:
        feats = power_features(df)
        nested_lin = next((r["mape"] for r in rows if r["model"] == "linear, stepwise nested in outer folds"), None)
        from perfmodel.model.schema import Preparation

        model = fit_model(imported["lag1"], TARGET, feats, kind="linear", groups="lowo", select="fixed",
                          preparation=Preparation(sensor_lag=1),
                          metadata={"dataset": f"armpm:{args.data.name}", "board": "odroid-xu3-a15",
                                    "usage": "perfmodel predict --sensor-lag 1 (power of "
                                    "sample t+1 follows the counters of sample t)",
                                    "selection": "a-priori Powmon set (power_features), no selection: the "
                                    "leave-one-workload-out CV figures are honest",
                                    "nested_stepwise_lowo_mape": nested_lin,
                                    "benchmark": "benchmarks/bench_power_model.py"})
        save_model(model, args.save)
        print(f"saved {args.save}: {len(feats)} features, LOWO MAPE {model.cv['mape']:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
