"""scikit-learn compatible regressors that are linear in (optionally log-transformed) features.

All three share one representation, :class:`LinearParams`: features ``x`` are transformed
(``log`` or identity), standardised ``z = (t(x) - mean) / scale`` and the (transformed) target is
``t_y(y) = intercept + z . coef``. Prediction intervals use the residual variance ``sigma2`` and the
unscaled covariance ``C`` of ``[1, z]``: ``t_y(y) in mean +- t_{dof, 1-a/2} sqrt(sigma2 (1 + a C a'))`` with
``a = [1, z]``, then back-transformed (``exp`` for a log target, giving the median). For OLS ``C =
(A'A)^-1`` and the interval is exactly statsmodels' ``obs_ci``; for ridge ``C`` is the sandwich
``M A'A M`` with ``M = (A'A + alpha I)^-1`` (intercept unpenalised).

* :class:`LinearModel` - ordinary least squares (``numpy`` pseudo-inverse, as statsmodels).
* :class:`LogLinearModel` - log target and/or log features, fitted through
  :class:`sklearn.compose.TransformedTargetRegressor` (``func=np.log``, ``inverse_func=np.exp``).
* :class:`OverheadLogLinearModel` - a rate ``y = scale / (overhead + t)`` whose time part ``t`` is
  log-linear: throughput (images/s) from a per-image latency that is a constant read + pre-process
  ``overhead`` (ms, network-independent) plus an inference time that scales as a power of the work.
* :class:`OverheadLinearModel` - the same rate with an *additive* time part ``t = sum c_j x_j``
  (``c_j >= 0``, non-negative least squares on relative errors): a CPI stack of per-image event counts.
* :class:`RidgeModel` - ridge on standardised features, ``alpha`` chosen by
  :class:`sklearn.linear_model.RidgeCV` inside every fit (efficient leave-one-out, or ``cv`` folds),
  so an outer cross-validation is a nested one.

``__init__`` only stores parameters; learned attributes end in ``_``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted, validate_data

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-6, 6, 25))


@dataclass
class LinearParams:
    """Everything prediction (and its interval) needs; what a model file stores."""

    coef: np.ndarray
    intercept: float
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    sigma2: float
    cov_unscaled: np.ndarray  # (p+1, p+1) over [1, z]
    dof_resid: float
    log_features: bool = False
    log_target: bool = False
    alpha: float = 0.0
    #: > 0: the target is the rate ``rate_scale / (overhead + t)``, ``t`` the time part (see ``rate_time``)
    rate_scale: float = 0.0
    overhead: float = 0.0
    #: with ``rate_scale``: ``"log"`` (the predictor is ``log t``) or ``"linear"`` (it is ``t`` itself,
    #: fitted on relative errors: the interval is relative to ``t``)
    rate_time: str = "log"
    #: with ``log_features``: which features are logged (bool per feature); None: all of them. A loglog fit
    #: keeps indicators, interaction terms and columns holding values <= 0 linear (:func:`log_feature_mask`)
    log_mask: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def logged(self) -> np.ndarray:
        """Bool per feature: is it logged before scaling?"""
        k = len(self.coef)
        if not self.log_features:
            return np.zeros(k, dtype=bool)
        return np.ones(k, dtype=bool) if self.log_mask is None else np.asarray(self.log_mask, dtype=bool)

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype="float64")
        if self.log_features:
            X = _log_columns(X, self.logged())
        return (X - self.scaler_mean) / self.scaler_scale

    def predict(self, X: np.ndarray, alpha: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prediction, lower, upper)`` in target units; bounds NaN when ``alpha`` is None."""
        Z = self.transform(X)
        mean = self.intercept + Z @ self.coef
        linear_time = self.rate_scale > 0 and self.rate_time == "linear"
        if alpha is None:
            lower = upper = np.full_like(mean, np.nan)
        else:
            A = np.column_stack([np.ones(len(Z)), Z])
            if linear_time:  # fitted on relative errors: the row in the weighted design is A / t
                with np.errstate(divide="ignore", invalid="ignore"):
                    A = A / mean[:, None]
            h = np.einsum("ij,jk,ik->i", A, self.cov_unscaled, A)
            se = np.sqrt(self.sigma2 * (1.0 + h))
            q = stats.t.ppf(1 - alpha / 2, self.dof_resid) if self.dof_resid > 0 else np.inf
            if linear_time:
                lower, upper = mean * (1 - q * se), mean * (1 + q * se)
            else:
                lower, upper = mean - q * se, mean + q * se
        if linear_time:  # rate = scale / (overhead + t); t <= 0 (below the training data) has no finite rate
            def rate_lin(t):
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(t > 0, self.rate_scale / (self.overhead + np.maximum(t, 0)), np.nan)

            lo = rate_lin(upper)
            hi = np.where(lower > 0, rate_lin(lower), self.rate_scale / self.overhead if self.overhead > 0 else np.inf)
            # a time part <= 0 (or NaN: e.g. negative counts) has no rate: no bound either, never a lone one;
            # nor without an interval (alpha None: lower and upper NaN)
            none = ~(mean > 0) | np.isnan(lower) | np.isnan(upper)
            return rate_lin(mean), np.where(none, np.nan, lo), np.where(none, np.nan, hi)
        if self.rate_scale > 0:  # decreasing in the predictor: the bounds swap
            def rate(eta):
                return _rate(eta, self.rate_scale, self.overhead)

            return rate(mean), rate(upper), rate(lower)
        if self.log_target:
            return np.exp(mean), np.exp(lower), np.exp(upper)
        return mean, lower, upper


def _log_columns(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``X`` with the columns of ``mask`` logged (ValueError for a value <= 0 there)."""
    X = np.array(X, dtype="float64")
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        with np.errstate(invalid="ignore"):
            if (X[:, mask] <= 0).any():
                raise ValueError("log features need values > 0")
        X[:, mask] = np.log(X[:, mask])
    return X


def log_feature_mask(X: np.ndarray, linear: tuple = ()) -> np.ndarray:
    """Which columns of ``X`` a log-features model logs: those not in ``linear`` (indicators and terms with an
    indicator factor, 0 where they are off) whose training values are all > 0. A 0/1 indicator or a count
    holding a 0 stays linear instead of making the fit fail."""
    X = np.asarray(X, dtype="float64")
    mask = (X > 0).all(axis=0) if len(X) else np.ones(X.shape[1], dtype=bool)
    for j in linear:
        mask[int(j)] = False
    return mask


def _fit_ols(Z: np.ndarray, y: np.ndarray, fit_intercept: bool = True) -> tuple[float, np.ndarray, float, np.ndarray, float]:
    """OLS by pseudo-inverse: ``(intercept, coef, sigma2, cov_unscaled over [1,z], dof)``."""
    n, p = Z.shape
    A = np.column_stack([np.ones(n), Z]) if fit_intercept else Z
    pinv = np.linalg.pinv(A)
    beta = pinv @ y
    cov = pinv @ pinv.T
    rank = np.linalg.matrix_rank(A)
    resid = y - A @ beta
    dof = float(n - rank)
    sigma2 = float(resid @ resid / dof) if dof > 0 else 0.0
    if fit_intercept:
        return float(beta[0]), beta[1:], sigma2, cov, dof
    full = np.zeros((p + 1, p + 1))
    full[1:, 1:] = cov
    return 0.0, beta, sigma2, full, dof


class _LinearBase(RegressorMixin, BaseEstimator):
    """Shared fitted-state handling of the three regressors."""

    def _set_params_from(self, params: LinearParams) -> None:
        self.params_ = params
        self.coef_ = params.coef
        self.intercept_ = params.intercept
        self.sigma2_ = params.sigma2
        self.dof_resid_ = params.dof_resid

    def predict(self, X):
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False)
        return self.params_.predict(X)[0]

    def predict_interval(self, X, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prediction, lower, upper)``: a ``1 - alpha`` prediction interval for new observations."""
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False)
        return self.params_.predict(X, alpha)


class LinearModel(_LinearBase):
    """Ordinary least squares (coefficients and intervals identical to ``statsmodels.OLS``).

    Parameters
    ----------
    fit_intercept : bool, default True
    """

    def __init__(self, fit_intercept: bool = True):
        self.fit_intercept = fit_intercept

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        p = X.shape[1]
        b0, coef, s2, cov, dof = _fit_ols(X, y.astype("float64"), self.fit_intercept)
        self._set_params_from(LinearParams(coef, b0, np.zeros(p), np.ones(p), s2, cov, dof))
        return self


class LogLinearModel(_LinearBase):
    """OLS on ``log(y)`` and/or ``log(x)``, back-transformed with ``exp`` (the conditional median).

    Fitted as ``TransformedTargetRegressor(regressor=[log features ->] LinearModel, func=np.log,
    inverse_func=np.exp)`` (the fitted wrapper is ``estimator_``).

    Parameters
    ----------
    log_target : bool, default True
    log_features : bool, default False
        log the features that can be: not those in ``linear`` nor any column with a training value <= 0
        (:func:`log_feature_mask`; the fitted mask is ``log_mask_``)
    fit_intercept : bool, default True
    linear : tuple of int, default ()
        positions of features always kept linear (indicators: set by ``cv.with_known_times``)
    """

    def __init__(self, log_target: bool = True, log_features: bool = False, fit_intercept: bool = True,
                 linear: tuple = ()):
        self.log_target = log_target
        self.log_features = log_features
        self.fit_intercept = fit_intercept
        self.linear = linear

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = bool(self.log_target)
        tags.input_tags.positive_only = bool(self.log_features)
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        y = y.astype("float64")
        if self.log_target and (y <= 0).any():
            raise ValueError("LogLinearModel(log_target=True) needs a target > 0")
        mask = log_feature_mask(X, tuple(self.linear or ())) if self.log_features else None
        inner = LinearModel(fit_intercept=self.fit_intercept)
        reg = (make_pipeline(FunctionTransformer(partial(_log_columns, mask=mask)), inner) if self.log_features
               else inner)
        if self.log_target:
            est = TransformedTargetRegressor(regressor=reg, func=np.log, inverse_func=np.exp, check_inverse=False)
        else:
            est = clone(reg)
        est.fit(X, y)
        self.estimator_ = est
        fitted = est.regressor_ if self.log_target else est
        lin = fitted[-1] if self.log_features else fitted
        p = lin.params_
        self._set_params_from(LinearParams(
            p.coef, p.intercept, p.scaler_mean, p.scaler_scale, p.sigma2, p.cov_unscaled, p.dof_resid,
            log_features=bool(self.log_features), log_target=bool(self.log_target), log_mask=mask))
        self.log_mask_ = mask
        return self


def _log_time(y, scale: float, overhead: float):
    """Rate -> log of its time part: ``log(scale / y - overhead)``."""
    return np.log(scale / y - overhead)


def _rate(eta, scale: float, overhead: float):
    """Inverse of :func:`_log_time`."""
    return scale / (overhead + np.exp(eta))


class _RateBase(_LinearBase):
    """Shared checks of the rate kinds: ``y = scale / (overhead + t)``, ``overhead`` >= 0, ``scale`` > 0."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def _time_part(self, y: np.ndarray) -> tuple[np.ndarray, float, float]:
        """``(t, overhead, scale)``: the time part ``scale / y - overhead`` of the rates ``y``, checked > 0."""
        o, sc = float(self.overhead), float(self.scale)
        if not (np.isfinite(o) and o >= 0):
            raise ValueError(f"overhead must be a finite number >= 0, got {self.overhead!r}")
        if not (np.isfinite(sc) and sc > 0):
            raise ValueError(f"scale must be a finite number > 0, got {self.scale!r}")
        if (y <= 0).any():
            raise ValueError(f"{type(self).__name__} needs a target (rate) > 0")
        t = sc / y - o
        if (t <= 0).any():
            raise ValueError(f"the overhead ({o:.4g}) is not below every observed time (scale / y, min "
                             f"{float((sc / y).min()):.4g}): the time part would be <= 0")
        return t, o, sc


class OverheadLogLinearModel(_RateBase):
    """A rate ``y = scale / (overhead + t)`` with ``log t`` linear in the features (OLS).

    For throughput (images/s) from a per-image latency in ms (``scale=1000``): latency = a constant
    ``overhead`` (read + pre-process, the same images and pre-processing for every network) plus an
    inference time ``t`` that is log-linear in the work (``log t = b0 + b log(instructions) + ...``).
    Without the split, a log-linear throughput model has to bend one power law over both the fixed
    overhead and the work-dependent part, which biases small networks. ``overhead`` is a parameter
    (ms), not learned from ``y``: :class:`perfmodel.model.cv.FeatureModel` sets it to the training
    rows' mean measured read + pre-process time (:func:`perfmodel.model.features.frame_overhead`).
    Fitted as ``TransformedTargetRegressor(LinearModel, func=log(scale / y - overhead),
    inverse_func=scale / (overhead + exp(.)))``. Intervals: the OLS interval of ``log t`` mapped through
    the (decreasing) inverse; the overhead's own spread is not part of it.

    Parameters
    ----------
    overhead : float, default 0.0 (>= 0, the target's time units)
    scale : float, default 1000.0 (rate = scale / time: images/s from ms)
    fit_intercept : bool, default True
    """

    def __init__(self, overhead: float = 0.0, scale: float = 1000.0, fit_intercept: bool = True):
        self.overhead = overhead
        self.scale = scale
        self.fit_intercept = fit_intercept

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        _, o, sc = self._time_part(y.astype("float64"))
        est = TransformedTargetRegressor(
            regressor=LinearModel(fit_intercept=self.fit_intercept), func=partial(_log_time, scale=sc, overhead=o),
            inverse_func=partial(_rate, scale=sc, overhead=o), check_inverse=False)
        est.fit(X, y)
        self.estimator_ = est
        p = est.regressor_.params_
        self._set_params_from(LinearParams(
            p.coef, p.intercept, p.scaler_mean, p.scaler_scale, p.sigma2, p.cov_unscaled, p.dof_resid,
            rate_scale=sc, overhead=o))
        return self


class OverheadLinearModel(_RateBase):
    """A rate ``y = scale / (overhead + t)`` with ``t = sum_j c_j x_j``, ``c_j >= 0`` (additive time).

    The CPI-stack view of a per-image latency: a constant read + pre-process ``overhead`` plus an
    inference time that is a non-negative sum of per-image event counts times a cost per event, e.g.
    instructions x (seconds per instruction of each framework and thread count) + L2-d refills x (seconds
    per refill). Fitted by non-negative least squares on *relative* errors (``(t_hat - t) / t``, so small
    networks weigh as much as big ones), no intercept (the constant part is ``overhead``). ``overhead`` is
    set by :class:`perfmodel.model.cv.FeatureModel` as for :class:`OverheadLogLinearModel`.

    Intervals: ``t (1 +- q sqrt(s2 (1 + h)))`` with ``s2`` the variance of the relative residuals and
    ``h`` the leverage in the weighted design of the coefficients NNLS left free (those held at 0 are
    treated as known), mapped through the decreasing ``scale / (overhead + t)``.

    ``known``: indexes of columns that are already times in the target's units (e.g. the weight-streaming
    time ``fc_stream_ms`` = streamed bytes / the machine's measured bandwidth): their coefficient is 1,
    not fitted; the other costs are fitted on what those times leave (``t - sum known``).

    Parameters
    ----------
    overhead : float, default 0.0 (>= 0, the target's time units)
    scale : float, default 1000.0 (rate = scale / time: images/s from ms)
    known : tuple of int, default () (columns with coefficient 1)
    """

    def __init__(self, overhead: float = 0.0, scale: float = 1000.0, known: tuple = ()):
        self.overhead = overhead
        self.scale = scale
        self.known = known

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        # a rate with a no-intercept, non-negative additive time is not meant for generic regression data
        tags.regressor_tags.poor_score = True
        return tags

    def fit(self, X, y):
        from scipy.optimize import nnls

        X, y = validate_data(self, X, y, y_numeric=True)
        t, o, sc = self._time_part(y.astype("float64"))
        if (X < 0).any():
            raise ValueError("Negative values in data: OverheadLinearModel needs features >= 0 (event counts)")
        n, p = X.shape
        try:
            known = sorted({int(i) for i in self.known})
        except (TypeError, ValueError):
            raise ValueError(f"known must be a sequence of column indexes, got {self.known!r}") from None
        if known and not (0 <= known[0] and known[-1] < p):
            raise ValueError(f"known column index out of range for {p} feature(s): {known}")
        is_known = np.zeros(p, dtype=bool)
        is_known[known] = True
        scale = np.abs(X).max(axis=0)
        scale[scale == 0] = 1.0
        Aw = (X / scale) / t[:, None]
        b = np.zeros(p)
        b[is_known] = scale[is_known]  # coefficient 1 on the raw column
        rest = 1.0 - Aw[:, is_known] @ b[is_known]  # relative time left to the fitted costs
        if (~is_known).any():
            b[~is_known], _ = nnls(Aw[:, ~is_known], rest)
        free = (b > 0) & ~is_known
        resid = Aw @ b - 1.0
        dof = float(n - int(free.sum()))
        sigma2 = float(resid @ resid / dof) if dof > 0 else 0.0
        cov = np.zeros((p + 1, p + 1))
        if free.any():
            cov_free = np.linalg.pinv(Aw[:, free].T @ Aw[:, free])
            idx = np.flatnonzero(free) + 1
            cov[np.ix_(idx, idx)] = cov_free
        self._set_params_from(LinearParams(b, 0.0, np.zeros(p), scale, sigma2, cov, dof, rate_scale=sc,
                                           overhead=o, rate_time="linear"))
        return self


def ridge_posterior(Z: np.ndarray, y: np.ndarray, ybar: float, coef: np.ndarray, M: np.ndarray, G: np.ndarray
                    ) -> tuple[float, np.ndarray, float]:
    """Residual variance, parameter covariance ([intercept, coefficients]) and residual degrees of freedom of a
    ridge fit on standardised ``Z`` with ``M`` = (G + penalty)^-1, ``G`` = Z'Z (effective dof from the hat
    matrix's trace)."""
    n, p = Z.shape
    resid = y - ybar - Z @ coef
    dof = float(n - 1 - np.trace(M @ G))
    sigma2 = float(resid @ resid / dof) if dof > 0 else 0.0
    cov = np.zeros((p + 1, p + 1))
    cov[0, 0] = 1.0 / n
    cov[1:, 1:] = M @ G @ M
    return sigma2, cov, dof


class RidgeModel(_LinearBase):
    """Ridge regression on standardised features, ``alpha`` chosen by inner CV (``RidgeCV``).

    Parameters
    ----------
    alphas : sequence of float, default ``logspace(-6, 6, 25)``
    cv : int, CV splitter or None, default None (efficient leave-one-out)
    log_features : bool, default False
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, cv=None, log_features: bool = False):
        self.alphas = alphas
        self.cv = cv
        self.log_features = log_features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = bool(self.log_features)
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        y = y.astype("float64")
        if self.log_features:
            if (X <= 0).any():
                raise ValueError("Negative values in data (or zeros): RidgeModel(log_features=True) needs features > 0")
            X = np.log(X)
        n, p = X.shape
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        Z = (X - mean) / scale
        if n > 2:
            search = RidgeCV(alphas=np.asarray(self.alphas, dtype="float64"), cv=self.cv, fit_intercept=True)
            alpha = float(search.fit(Z, y).alpha_)
        else:
            alpha = float(np.max(self.alphas))
        ybar = float(y.mean())
        G = Z.T @ Z
        M = np.linalg.pinv(G + alpha * np.eye(p))
        coef = M @ Z.T @ (y - ybar)
        sigma2, cov, dof = ridge_posterior(Z, y, ybar, coef, M, G)
        self.alpha_ = alpha
        self._set_params_from(LinearParams(coef, ybar, mean, scale, sigma2, cov, dof,
                                           log_features=bool(self.log_features), alpha=alpha))
        return self


#: model kind -> factory
MODEL_KINDS = {
    "linear": lambda: LinearModel(),
    "loglinear": lambda: LogLinearModel(log_target=True, log_features=False),
    "loglog": lambda: LogLinearModel(log_target=True, log_features=True),
    "ridge": lambda: RidgeModel(),
    "overhead-loglinear": lambda: OverheadLogLinearModel(),
    "overhead-linear": lambda: OverheadLinearModel(),
}


def make_estimator(kind: str) -> _LinearBase:
    """A fresh estimator of ``kind`` (one of :data:`MODEL_KINDS`)."""
    from perfmodel.errors import check_choice

    check_choice("model kind", kind, MODEL_KINDS)
    return MODEL_KINDS[kind]()


__all__ = ["LinearParams", "log_feature_mask", "LinearModel", "LogLinearModel", "OverheadLogLinearModel", "OverheadLinearModel",
           "RidgeModel", "MODEL_KINDS",
           "make_estimator", "DEFAULT_ALPHAS"]
