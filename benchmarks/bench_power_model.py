"""Power model on real ARM data: leave-one-workload-out MAPE on the ODROID-XU3 A15 PARSEC file.

    python benchmarks/bench_power_model.py [--data PATH] [--json OUT] [--save trained/power_armpm_xu3_a15.json]

Rows: sensor alignment (lag 0 / 1, adjacent-sample averaging) x model (linear / log-linear / ridge on
Powmon-style features: events per second x V^2 plus V, V^2 f, T V, cores V^2 f), the study-style
per-frequency OLS on raw event rates, and the naive baselines (mean, per-frequency mean). Features are
chosen by stepwise selection; the "nested" row redoes the selection inside every outer fold (the
honest figure). Reference: plain per-frequency OLS with 5 stepwise raw events reaches 6.8 %; target <= 5 %.
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


def average_adjacent(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of every two consecutive samples of a run (sensor / counter windows overlap better)."""
    num = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    out = df.copy()
    out[num] = df.groupby("segment")[num].transform(lambda s: s.rolling(2).mean())
    out = out.dropna(subset=["power_w", "instructions_per_s"]).reset_index(drop=True)
    out.attrs = df.attrs
    return out


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


def nested_stepwise_mape(df, always, cands, n_jobs=1):
    """LOWO MAPE with stepwise selection redone on the training workloads of every outer fold."""
    from perfmodel.model.cv import make_splits
    from perfmodel.model.estimators import LinearModel
    from perfmodel.model.features import feature_matrix, target_vector
    from perfmodel.model.selection import stepwise_select

    y = target_vector(df, "power_w")
    pred = np.empty(len(y))
    chosen = {}
    for tr, te in make_splits(df, group="workload"):
        train = df.iloc[tr].reset_index(drop=True)
        train.attrs = df.attrs
        res = stepwise_select(train, "power_w", cands, LinearModel(), make_splits(train, group="workload"),
                              always=always, n_jobs=n_jobs)
        m = LinearModel().fit(feature_matrix(train, res.features), y[tr])
        pred[te] = m.predict(feature_matrix(df.iloc[te], res.features))
        chosen[str(df["workload"].iloc[te[0]])] = [f for f in res.features if f not in always]
    return float(100 * np.mean(np.abs(pred - y) / y)), chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, default=None, help="write the table as JSON here")
    ap.add_argument("--save", type=Path, default=None, help="write the best single-stage model file here")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: ARMPM data file not found at {args.data}")
        return 0
    from perfmodel.data.importers.armpm import load_armpm
    from perfmodel.model import fit_model, save_model
    from perfmodel.model.cv import cross_validate, default_baselines, make_splits
    from perfmodel.model.fit import default_candidates, evaluate

    rows = []
    t0 = time.perf_counter()
    variants = {}
    for lag in (0, 1):
        df = load_armpm(args.data, sensor_lag=lag)
        variants[f"lag{lag}"] = df
        variants[f"lag{lag}+avg2"] = average_adjacent(df)
    best = None
    for vname, df in variants.items():
        cands, always = default_candidates(df, "power_w")
        sel = fit_model(df, "power_w", kind="linear", groups="lowo", always=always, baselines=False,
                        statistics=False, n_jobs=args.jobs)
        feats = sel.features
        _, res = evaluate(df, "power_w", feats, kinds=("linear", "loglinear", "ridge"), group="workload",
                          baselines=True, n_jobs=args.jobs)
        for r in res:
            rows.append({"data": vname, "model": r["model"], "mape": r.get("mape"), "within_10": r.get("within_10"),
                         "r2": r.get("r2"), "features": len(feats) if not r["model"].startswith("baseline") else 0})
        if best is None or sel.cv["mape"] < best[1]:
            best = (vname, sel.cv["mape"], feats)
        # study-style per-frequency OLS on raw event rates (5 stepwise-chosen in the reference)
        raw = [f.split("*")[0] for f in feats if f not in always][:5]
        pf = cross_validate(PerGroupOLS(raw + ["cores"]), df, "power_w", make_splits(df, group="workload"),
                            name="per-frequency OLS (raw rates + cores)", group="workload")
        rows.append({"data": vname, "model": pf.name, "mape": pf.metrics["mape"], "within_10": pf.metrics["within_10"],
                     "r2": pf.metrics["r2"], "features": len(raw) + 1})
    # honest figure: selection nested in the outer folds, best alignment
    vname = best[0]
    df = variants[vname]
    cands, always = default_candidates(df, "power_w")
    nested, chosen = nested_stepwise_mape(df, always, cands, n_jobs=args.jobs)
    rows.append({"data": vname, "model": "linear, stepwise nested in outer folds", "mape": nested,
                 "within_10": None, "r2": None, "features": None})
    elapsed = time.perf_counter() - t0

    print(f"ARMPM XU3 A15 power, leave-one-workload-out ({len(df)} samples, 9 workloads), {elapsed:.1f} s")
    print(f"{'data':12s} {'model':44s} {'MAPE %':>7s} {'<=10 %':>7s} {'R2':>6s} {'k':>3s}")
    for r in rows:
        f = lambda x, s: "   n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, s)
        print(f"{r['data']:12s} {r['model']:44s} {f(r['mape'], '7.2f')} {f(r['within_10'], '7.1f')} "
              f"{f(r['r2'], '6.3f')} {'' if r['features'] is None else r['features']:>3}")
    print(f"best alignment {vname}: features {', '.join(best[2])}")
    print(f"nested selection chose per held-out workload: {json.dumps(chosen)}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "best": best[0], "features": best[2], "nested_mape": nested,
                                         "nested_chosen": chosen}, indent=1, default=str))
    if args.save:
        lag = 1 if vname.startswith("lag1") else 0
        if "avg2" in vname:
            print("note: the saved model uses single samples (no averaging) so that it applies to raw samples")
        df = variants[f"lag{lag}"]
        model = fit_model(df, "power_w", best[2], kind="linear", groups="lowo", select="fixed",
                          metadata={"dataset": f"armpm:{args.data.name}", "board": "odroid-xu3-a15",
                                    "sensor_lag": lag, "nested_stepwise_lowo_mape": nested,
                                    "selection": "stepwise (linear, LOWO CV) on this data set, see benchmarks/bench_power_model.py"})
        save_model(model, args.save)
        print(f"saved {args.save}: LOWO MAPE {model.cv['mape']:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
