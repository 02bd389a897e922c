"""The regressors: scikit-learn compatibility, and coefficients / intervals equal to statsmodels / numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from perfmodel.model.estimators import (LinearModel, LogLinearModel, OverheadLinearModel, OverheadLogLinearModel, RidgeModel,
                                        make_estimator)
from perfmodel.model.stats import ols_prediction, ols_statistics


@parametrize_with_checks([LinearModel(), LogLinearModel(), RidgeModel(), OverheadLogLinearModel(overhead=0.01),
                          OverheadLinearModel(overhead=0.01)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _data(n=60, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(1, 10, size=(n, 3))
    y = 2.0 + X @ np.array([1.5, -0.7, 0.3]) + rng.normal(0, 0.5, n)
    return X, y


def test_ols_matches_statsmodels_and_numpy():
    import statsmodels.api as sm

    X, y = _data()
    m = LinearModel().fit(X, y)
    res = sm.OLS(y, sm.add_constant(X)).fit()
    np.testing.assert_allclose(m.intercept_, res.params[0], rtol=1e-10)
    np.testing.assert_allclose(m.coef_, res.params[1:], rtol=1e-10)
    beta = np.linalg.lstsq(np.column_stack([np.ones(len(y)), X]), y, rcond=None)[0]
    np.testing.assert_allclose(np.r_[m.intercept_, m.coef_], beta, rtol=1e-10)
    np.testing.assert_allclose(m.sigma2_, res.scale, rtol=1e-10)


def test_prediction_interval_matches_statsmodels_obs_ci():
    X, y = _data()
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y)
    new = pd.DataFrame(np.array([[2.0, 3.0, 4.0], [9.0, 1.0, 1.0]]), columns=["a", "b", "c"])
    pred, lo, hi = LinearModel().fit(X, y).predict_interval(new.to_numpy(), alpha=0.1)
    ref = ols_prediction(df, "y", ["a", "b", "c"], new, alpha=0.1)
    np.testing.assert_allclose(pred, ref["mean"], rtol=1e-10)
    np.testing.assert_allclose(lo, ref["obs_ci_lower"], rtol=1e-10)
    np.testing.assert_allclose(hi, ref["obs_ci_upper"], rtol=1e-10)


def test_loglinear_is_ols_on_log_target_back_transformed():
    X, y = _data()
    y = np.exp(y / 10)
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y)
    m = LogLinearModel().fit(X, y)
    ref = ols_prediction(df, "y", ["a", "b", "c"], df.iloc[:5], log_target=True, alpha=0.05)
    pred, lo, hi = m.predict_interval(X[:5], alpha=0.05)
    np.testing.assert_allclose(pred, ref["mean"], rtol=1e-10)
    np.testing.assert_allclose(lo, ref["obs_ci_lower"], rtol=1e-10)
    np.testing.assert_allclose(hi, ref["obs_ci_upper"], rtol=1e-10)
    with pytest.raises(ValueError):
        LogLinearModel().fit(X, -y)


def test_ridge_matches_sklearn_ridge_on_standardised_features():
    X, y = _data()
    m = RidgeModel(alphas=[3.0]).fit(X, y)
    Z = (X - X.mean(0)) / X.std(0)
    ref = Ridge(alpha=3.0).fit(Z, y)
    np.testing.assert_allclose(m.coef_, ref.coef_, rtol=1e-8)
    np.testing.assert_allclose(m.predict(X), ref.predict(Z), rtol=1e-8)
    # alpha is chosen from the grid by the inner CV: a huge grid value shrinks to the mean
    big = RidgeModel(alphas=[1e12]).fit(X, y)
    assert np.ptp(big.predict(X)) < 1e-6 * np.ptp(y)


def test_ols_statistics_table_has_pvalues_and_vif():
    X, y = _data()
    rng = np.random.default_rng(3)
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y, noise=rng.normal(size=len(y)))
    df["a2"] = df["a"] + rng.normal(0, 0.01, len(df))  # near duplicate of a
    st = ols_statistics(df, "y", ["a", "b", "noise", "a2"])
    rows = {r["term"]: r for r in st["coefficients"]}
    assert rows["b"]["p_value"] < 1e-6
    assert rows["noise"]["p_value"] > rows["b"]["p_value"]
    assert rows["a"]["vif"] > 100 and rows["b"]["vif"] < 2


def test_make_estimator_rejects_unknown_kind():
    from perfmodel.errors import PerfmodelError

    with pytest.raises(PerfmodelError, match="unknown model kind"):
        make_estimator("forest")


def test_overhead_loglinear_is_ols_on_log_time_mapped_to_a_rate():
    """y = 1000 / (o + t), log t ~ X: the same as statsmodels OLS on log(1000 / y - o), intervals mapped."""
    X, y = _data()
    t = np.exp(y / 10)  # ms
    o = 1.3
    fps = 1000.0 / (o + t)
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(t=t)
    m = OverheadLogLinearModel(overhead=o).fit(X, fps)
    ref = ols_prediction(df, "t", ["a", "b", "c"], df.iloc[:5], log_target=True, alpha=0.05)
    pred, lo, hi = m.predict_interval(X[:5], alpha=0.05)
    np.testing.assert_allclose(pred, 1000 / (o + ref["mean"]), rtol=1e-10)
    np.testing.assert_allclose(lo, 1000 / (o + ref["obs_ci_upper"]), rtol=1e-10)  # decreasing: bounds swap
    np.testing.assert_allclose(hi, 1000 / (o + ref["obs_ci_lower"]), rtol=1e-10)
    assert (lo < pred).all() and (pred < hi).all()
    assert m.params_.rate_scale == 1000.0 and m.params_.overhead == o


def test_overhead_loglinear_recovers_a_power_law_exactly():
    rng = np.random.default_rng(5)
    work = rng.uniform(1e8, 1e9, 40)
    fps = 1000.0 / (1.1 + np.exp(-18.0) * work ** 0.9)
    m = OverheadLogLinearModel(overhead=1.1).fit(np.log(work)[:, None], fps)
    np.testing.assert_allclose(m.predict(np.log(work)[:, None]), fps, rtol=1e-9)
    np.testing.assert_allclose(m.coef_ / m.params_.scaler_scale, [0.9], rtol=1e-9)
    # a plain log-linear model cannot bend one power law over the constant part
    plain = LogLinearModel().fit(np.log(work)[:, None], fps)
    assert np.abs(plain.predict(np.log(work)[:, None]) / fps - 1).max() > 1e-3


def test_overhead_loglinear_rejects_impossible_overheads():
    X = np.arange(1.0, 7.0)[:, None]
    fps = 1000.0 / (2.0 + X[:, 0])  # latencies 3..8 ms
    with pytest.raises(ValueError, match="not below every observed time"):
        OverheadLogLinearModel(overhead=3.0).fit(X, fps)
    with pytest.raises(ValueError, match="overhead must be"):
        OverheadLogLinearModel(overhead=-1.0).fit(X, fps)
    with pytest.raises(ValueError, match="scale must be"):
        OverheadLogLinearModel(scale=0.0).fit(X, fps)
    with pytest.raises(ValueError, match="rate"):
        OverheadLogLinearModel().fit(X, -fps)


def test_overhead_linear_recovers_a_cpi_stack_and_keeps_costs_non_negative():
    """t = 2e-9 s/instr * instr + 5e-8 * refills (+ a useless column): recovered exactly, its cost 0."""
    rng = np.random.default_rng(3)
    instr = rng.uniform(1e8, 1e9, 30)
    refills = rng.uniform(1e5, 1e7, 30)
    junk = rng.uniform(1, 10, 30)
    t_ms = 1000 * (2e-9 * instr + 5e-8 * refills)
    X = np.column_stack([instr, refills, junk])
    fps = 1000.0 / (1.2 + t_ms)
    m = OverheadLinearModel(overhead=1.2).fit(X, fps)
    costs = m.coef_ / m.params_.scaler_scale
    np.testing.assert_allclose(costs[:2], [2e-6, 5e-5], rtol=1e-8)
    assert abs(costs[2]) < 1e-12 and (m.coef_ >= 0).all()
    # a column whose least-squares cost would be negative is held at exactly 0 (the constraint is active)
    t_neg = 1000 * (2e-9 * instr - 1e-8 * refills * 0.01)
    m2 = OverheadLinearModel(overhead=1.2).fit(X[:, :2], 1000.0 / (1.2 + t_neg))
    assert m2.coef_[1] == 0.0 and m2.coef_[0] > 0 and m2.dof_resid_ == 29
    np.testing.assert_allclose(m.predict(X), fps, rtol=1e-9)
    # a noisy version: intervals around the prediction, rate bounds swapped correctly
    noisy = fps * np.exp(0.03 * rng.standard_normal(30))
    pred, lo, hi = OverheadLinearModel(overhead=1.2).fit(X, noisy).predict_interval(X, alpha=0.05)
    assert (lo < pred).all() and (pred < hi).all()
    assert ((lo <= noisy) & (noisy <= hi)).mean() >= 0.85
    with pytest.raises(ValueError, match=">= 0"):
        OverheadLinearModel().fit(-X, fps)


def test_overhead_linear_prediction_below_the_data_is_nan_not_negative():
    X = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 2.0], [1.0, 1.0]])
    fps = 1000.0 / (0.5 + X @ np.array([3.0, 4.0]))
    m = OverheadLinearModel(overhead=0.5).fit(X, fps)
    pred = m.predict(np.array([[0.0, 0.0]]))  # no work at all: t = 0 has no finite rate model
    assert np.isnan(pred).all()
