"""Pearson and Spearman correlation of a target (power, throughput) with event figures.

The study's Table II correlates instantaneous power with L1-d loads/s, L2-d loads/s and
instructions/s over a trace, per framework (:func:`perfmodel.data.wide_per_sample` rows); its Fig. 5
correlates per-cell throughput with per-image counts across all cells (:func:`wide_per_cell` rows).

Pearson's r comes with its p-value (``scipy.stats.pearsonr``) and a 95 % confidence interval from the
Fisher z-transform: ``tanh(atanh(r) +- z_{0.975} / sqrt(n - 3))`` (n > 3; for n = 3 the interval is
[-1, 1]). Spearman's rho and its p-value come from ``scipy.stats.spearmanr``. Rows where the target or
the feature is missing are dropped pairwise. Fewer than 3 pairs, or a constant target / feature, give
NaN statistics with the reason in ``reason``; such rows are kept, never dropped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError

COLUMNS: tuple[str, ...] = ("group", "feature", "n", "pearson_r", "ci_low", "ci_high", "p_value",
                            "spearman_rho", "spearman_p", "reason")


def fisher_ci(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of Pearson's ``r`` from ``n`` pairs (Fisher z); NaN for n < 3 or NaN r."""
    from scipy import stats

    if n < 3 or r is None or math.isnan(r):
        return math.nan, math.nan
    if n == 3:
        return -1.0, 1.0
    if abs(r) >= 1.0:
        return float(r), float(r)
    z = math.atanh(r)
    half = stats.norm.ppf(0.5 + level / 2) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def _one(x: np.ndarray, y: np.ndarray) -> dict:
    from scipy import stats

    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = int(len(x))
    out = {"n": n, "pearson_r": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
           "spearman_rho": math.nan, "spearman_p": math.nan, "reason": ""}
    if n < 3:
        out["reason"] = f"only {n} sample(s) with both values (need >= 3)"
        return out
    const = [name for name, v in (("target", y), ("feature", x)) if np.ptp(v) == 0]
    if const:
        out["reason"] = f"{' and '.join(const)} constant over the samples"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = stats.pearsonr(x, y)
        sr = stats.spearmanr(x, y)
    r = float(pr.statistic)
    lo, hi = fisher_ci(r, n)
    out.update(pearson_r=r, ci_low=lo, ci_high=hi, p_value=float(pr.pvalue),
               spearman_rho=float(sr.statistic), spearman_p=float(sr.pvalue))
    if math.isnan(out["spearman_rho"]):
        out["reason"] = "ranks constant"
    return out


def correlation_table(df: pd.DataFrame, target: str, features: Sequence[str], by: str | Sequence[str] | None = None
                      ) -> pd.DataFrame:
    """One row per (group, feature): n, Pearson r with 95 % CI and p, Spearman rho and p, reason.

    ``by``: a column (or columns) to group by (``"framework"``); ``group`` is ``"all"`` without it.
    A feature or target column absent from ``df`` is reported with a reason, not dropped.
    """
    if not isinstance(df, pd.DataFrame):
        raise PerfmodelError(f"expected a DataFrame, got {type(df).__name__}")
    features = list(features)
    if not features:
        raise PerfmodelError("no features to correlate with")
    by_cols = [by] if isinstance(by, str) else list(by or [])
    missing_by = [c for c in by_cols if c not in df.columns]
    if missing_by:
        raise PerfmodelError(f"cannot group by {', '.join(missing_by)}: no such column "
                             f"(columns: {', '.join(map(str, df.columns[:20]))})")
    if by_cols:
        groups = [("/".join(map(str, k if isinstance(k, tuple) else (k,))), g)
                  for k, g in df.groupby(by_cols if len(by_cols) > 1 else by_cols[0], sort=True)]
    else:
        groups = [("all", df)]
    rows = []
    for name, g in groups:
        y = g[target].to_numpy(dtype="float64") if target in g.columns else None
        for feat in features:
            if y is None or feat not in g.columns:
                what = target if y is None else feat
                rows.append({"group": name, "feature": feat, "n": 0, "pearson_r": math.nan, "ci_low": math.nan,
                             "ci_high": math.nan, "p_value": math.nan, "spearman_rho": math.nan,
                             "spearman_p": math.nan, "reason": f"no column {what} in the table"})
                continue
            x = g[feat].to_numpy(dtype="float64")
            rows.append({"group": name, "feature": feat, **_one(x, y)})
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    out["n"] = out["n"].astype("int64")
    return out


def default_features(df: pd.DataFrame, level: str) -> list[str]:
    """Event-rate columns (``*_per_s``) for a trace, per-image counts (``*_per_image``) for cells."""
    from perfmodel.metrics import base_event

    suffix = "_per_s" if level == "sample" else "_per_image"
    preferred = ["instructions", "l1d_accesses", "l1d_loads", "l2d_accesses", "branches", "branch_misses",
                 "l1d_refills", "l2d_refills", "cycles"]
    cols = [c for c in df.columns if c.endswith(suffix) and base_event(c) is not None
            and df[c].notna().any()]
    order = {e + suffix: i for i, e in enumerate(preferred)}
    return sorted(cols, key=lambda c: (order.get(c, len(order)), c))


__all__ = ["COLUMNS", "fisher_ci", "correlation_table", "default_features"]
