"""Event selection: stepwise forward selection by cross-validated error with a VIF cap, or a fixed list.

:func:`stepwise_select` starts from ``always`` (terms every model keeps, e.g. the ``V^2 f`` power
terms or the framework indicators of a throughput model) and adds, one at a time, the candidate that
lowers the pooled out-of-fold MAPE most, as long as

* the improvement is at least ``min_improvement`` (relative, default 1 %),
* no selected term then has a variance inflation factor above ``vif_cap`` among the selected
  (non-``always``) terms - the ``always`` terms (indicator groups, the ``V``/``V^2 f`` power terms) are
  collinear with the events by design and are left out of the VIF, and
* fewer than ``max_features`` terms were added.

The CV error is computed on the same splits the caller evaluates with, so the CV score of the chosen
set is optimistic; :func:`perfmodel.model.fit.nested_cv` gives the honest figure (selection redone
inside every outer fold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone

from perfmodel.errors import PerfmodelError

from .features import FeatureError, compute_feature, target_vector


def vif(X: np.ndarray) -> np.ndarray:
    """Variance inflation factor of every column of ``X`` (regressed on the others with an intercept).

    ``inf`` for a column that is a linear combination of the others (or constant).
    """
    X = np.asarray(X, dtype="float64")
    n, p = X.shape
    out = np.empty(p)
    if p == 1:
        return np.where(np.ptp(X, axis=0) > 0, 1.0, np.inf)
    for j in range(p):
        y = X[:, j]
        A = np.column_stack([np.ones(n), np.delete(X, j, axis=1)])
        beta, *_ = np.linalg.lstsq(A, y, rcond=None)
        resid = y - A @ beta
        ss_tot = float(((y - y.mean()) ** 2).sum())
        ss_res = float(resid @ resid)
        if ss_tot <= 0 or ss_res <= 1e-12 * ss_tot:
            out[j] = np.inf
        else:
            out[j] = ss_tot / ss_res
    return out


def ridge_loo_predict(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """What :class:`~.estimators.RidgeModel` (``cv=None``, no log features) fitted on ``X_tr, y_tr`` predicts
    for ``X_te``, without scikit-learn: standardise on the training rows, one SVD, ``alpha`` by the exact
    leave-one-out error of every alpha (``RidgeCV``'s efficient LOO, intercept unpenalised; the first of
    equal scores wins, as there), coefficients ``(Z'Z + alpha I)^-1 Z'(y - ybar)``."""
    n, p = X_tr.shape
    mean = X_tr.mean(axis=0)
    scale = X_tr.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X_tr - mean) / scale
    ybar = float(y_tr.mean())
    yc = y_tr - ybar
    if n <= 2:
        alpha = float(np.max(alphas))
        U, sv, Vt = np.linalg.svd(Z, full_matrices=False)
    else:
        U, sv, Vt = np.linalg.svd(Z, full_matrices=False)
        Uy = U.T @ yc
        U2 = U * U
        s2 = sv * sv
        best, alpha = np.inf, float(alphas[0])
        for a in alphas:
            w = s2 / (s2 + a)
            h = 1.0 / n + U2 @ w
            loo = (yc - U @ (w * Uy)) / (1.0 - h)
            err = float(np.mean(loo * loo))
            if err < best:
                best, alpha = err, float(a)
    coef = Vt.T @ ((sv / (sv * sv + alpha)) * (U.T @ yc))
    return ybar + ((X_te - mean) / scale) @ coef


def cv_mape(estimator: Any, X: np.ndarray, y: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Pooled out-of-fold MAPE (%) of ``estimator`` on ``X, y``; ``inf`` when a fold fails to fit.

    Fast paths (the same model without scikit-learn's validation; checked equal to the estimators in
    tests/test_power_importers.py): OLS (:class:`~.estimators.LinearModel`), OLS on ``log y``
    (:class:`~.estimators.LogLinearModel` without log features) and :class:`~.estimators.RidgeModel`
    (inner leave-one-out alpha, :func:`ridge_loo_predict`)."""
    pred = np.empty(len(y))
    from .estimators import LinearModel, LogLinearModel, RidgeModel

    try:
        if type(estimator) is LinearModel and estimator.fit_intercept:  # fast path: same OLS, no validation
            A = np.column_stack([np.ones(len(y)), X])
            for tr, te in splits:
                beta = np.linalg.lstsq(A[tr], y[tr], rcond=None)[0]
                pred[te] = A[te] @ beta
        elif (type(estimator) is LogLinearModel and estimator.log_target and not estimator.log_features
              and estimator.fit_intercept):
            if (y <= 0).any():
                return float("inf")
            A = np.column_stack([np.ones(len(y)), X])
            ly = np.log(y)
            for tr, te in splits:
                beta = np.linalg.lstsq(A[tr], ly[tr], rcond=None)[0]
                pred[te] = np.exp(A[te] @ beta)
        elif type(estimator) is RidgeModel and estimator.cv is None and not estimator.log_features:
            alphas = np.asarray(estimator.alphas, dtype="float64")
            for tr, te in splits:
                pred[te] = ridge_loo_predict(X[tr], y[tr], X[te], alphas)
        else:
            for tr, te in splits:
                pred[te] = clone(estimator).fit(X[tr], y[tr]).predict(X[te])
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return float("inf")
    if not np.isfinite(pred).all():
        return float("inf")
    return float(100 * np.mean(np.abs(pred - y) / np.abs(y)))


@dataclass
class SelectionResult:
    """The chosen features and one history row per step."""

    features: list[str]
    method: str
    history: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # candidate -> why it was never tried

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "features": list(self.features), "history": self.history,
                "rejected": self.rejected}


def _columns(df: pd.DataFrame, names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    cols, rejected = {}, {}
    for name in names:
        try:
            x = compute_feature(df, name).to_numpy(dtype="float64")
        except FeatureError as exc:
            rejected[name] = str(exc)
            continue
        if not np.isfinite(x).all():
            rejected[name] = "NaN or infinite values"
        elif np.ptp(x) == 0:
            rejected[name] = "constant"
        else:
            cols[name] = x
    return cols, rejected


def stepwise_select(
    df: pd.DataFrame,
    target: str,
    candidates: Sequence[str],
    estimator: Any,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    always: Sequence[str] = (),
    max_features: int = 8,
    vif_cap: float = 10.0,
    min_improvement: float = 0.01,
    n_jobs: int = 1,
    vif_columns: dict[str, str] | None = None,
) -> SelectionResult:
    """Forward selection by CV MAPE with a VIF cap (see the module docstring).

    ``vif_columns`` (candidate -> column): check the VIF cap on these columns instead of the terms
    themselves - for the Powmon power terms the events' own rates per cycle (``<event>_per_s*voltage_v^2``
    -> ``<event>_per_cycle``), as Powmon caps the collinearity of the *events*: the products share the
    factor ``V^2 x cycles/s``, which makes any two of them collinear whatever the events are."""
    y = target_vector(df, target)
    always = list(dict.fromkeys(always))
    cols, rejected = _columns(df, list(dict.fromkeys(list(always) + [c for c in candidates if c not in always])))
    bad_always = [a for a in always if a not in cols]
    if bad_always:
        raise FeatureError(f"required feature(s) cannot be used: "
                           + "; ".join(f"{a}: {rejected.get(a, '?')}" for a in bad_always))
    pool = [c for c in candidates if c in cols and c not in always]
    if not pool and not always:
        raise PerfmodelError("stepwise selection has no usable candidate feature")
    selected = list(always)
    history: list[dict[str, Any]] = []
    from .cv import with_known_times

    def est(features):  # a rate model's known times (fc_stream_ms) keep coefficient 1 in every trial
        return with_known_times(clone(estimator), features)

    if selected:
        best = cv_mape(est(selected), np.column_stack([cols[c] for c in selected]), y, splits)
        history.append({"step": 0, "added": None, "features": list(selected), "cv_mape": best})
    else:
        best = float("inf")

    vif_cols: dict[str, np.ndarray] = {}
    for c, col in (vif_columns or {}).items():
        if c in cols and col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype="float64")
            if np.isfinite(v).all():
                vif_cols[c] = v

    def score(c: str) -> tuple[str, float, float]:
        trial = selected + [c]
        X = np.column_stack([cols[t] for t in trial])
        checked = [t for t in trial if t not in always]
        V = np.column_stack([vif_cols.get(t, cols[t]) for t in checked]) if checked else np.empty((len(y), 0))
        v = vif(V) if len(checked) > 1 else np.array([1.0])
        vmax = float(np.max(v)) if len(v) else 1.0
        if vmax > vif_cap:
            return c, float("inf"), vmax
        return c, cv_mape(est(trial), X, y, splits), vmax

    while pool and len(selected) - len(always) < max_features:
        scores = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(score)(c) for c in pool)
        c, err, vmax = min(scores, key=lambda t: t[1])
        if not np.isfinite(err):
            break
        if np.isfinite(best) and err > best * (1 - min_improvement):
            break
        selected.append(c)
        pool.remove(c)
        best = err
        history.append({"step": len(history), "added": c, "features": list(selected), "cv_mape": err, "max_vif": vmax})
    if not selected:
        raise PerfmodelError("stepwise selection found no feature that the models can fit")
    return SelectionResult(selected, "stepwise", history, rejected)


__all__ = ["vif", "cv_mape", "ridge_loo_predict", "SelectionResult", "stepwise_select"]
