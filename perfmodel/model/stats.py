"""statsmodels OLS beside the scikit-learn regressors: coefficient tables, p-values, VIF, intervals.

statsmodels is imported inside the functions (it is slow to import).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .features import feature_frame, target_vector
from .selection import vif


def _design(df: pd.DataFrame, features: Sequence[str]):
    import statsmodels.api as sm  # noqa: PLC0415

    X = feature_frame(df, list(features))
    return sm.add_constant(X, has_constant="add")


def ols_fit(df: pd.DataFrame, target: str, features: Sequence[str], *, log_target: bool = False):
    """The fitted ``statsmodels.OLS`` results of ``target`` (or its log) on ``features`` with an intercept."""
    import statsmodels.api as sm  # noqa: PLC0415

    y = target_vector(df, target, positive=log_target)
    return sm.OLS(np.log(y) if log_target else y, _design(df, features)).fit()


def ols_statistics(df: pd.DataFrame, target: str, features: Sequence[str], *, log_target: bool = False,
                   alpha: float = 0.05) -> dict[str, Any]:
    """Coefficient table (coef, std. error, t, p-value, CI, VIF) and fit statistics of the OLS model."""
    res = ols_fit(df, target, features, log_target=log_target)
    ci = res.conf_int(alpha)
    X = feature_frame(df, list(features)).to_numpy()
    v = vif(X) if X.shape[1] > 1 else np.ones(X.shape[1])
    rows = []
    for i, term in enumerate(res.params.index):
        rows.append({
            "term": "intercept" if term == "const" else term,
            "coef": float(res.params.iloc[i]), "std_err": float(res.bse.iloc[i]), "t": float(res.tvalues.iloc[i]),
            "p_value": float(res.pvalues.iloc[i]), "ci_lo": float(ci.iloc[i, 0]), "ci_hi": float(ci.iloc[i, 1]),
            "vif": float("nan") if term == "const" else float(v[i - 1]),
        })
    return {
        "coefficients": rows, "n": int(res.nobs), "df_resid": float(res.df_resid), "r2": float(res.rsquared),
        "adj_r2": float(res.rsquared_adj), "aic": float(res.aic), "bic": float(res.bic),
        "condition_number": float(res.condition_number), "log_target": bool(log_target), "alpha": alpha,
    }


def ols_prediction(train: pd.DataFrame, target: str, features: Sequence[str], new: pd.DataFrame, *,
                   log_target: bool = False, alpha: float = 0.05) -> pd.DataFrame:
    """statsmodels' ``get_prediction(X).summary_frame(alpha)`` (``mean``, ``obs_ci_lower/upper``...),
    back-transformed with ``exp`` for a log target."""
    res = ols_fit(train, target, features, log_target=log_target)
    frame = res.get_prediction(_design(new, features)).summary_frame(alpha=alpha)
    frame.index = new.index
    if log_target:
        frame = np.exp(frame.drop(columns=["mean_se"]))
    return frame


__all__ = ["ols_fit", "ols_statistics", "ols_prediction"]
