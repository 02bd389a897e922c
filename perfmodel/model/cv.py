"""Cross-validation, error metrics and the baselines every evaluation reports.

* Splits (:func:`make_splits`): shuffled k-fold, or group-aware leave-one-group-out on a key column
  (``network``, ``framework``, ``workload``, ``board``, ...): every sample of the held-out group is
  predicted by a model that never saw that group. Both partition the data, so every sample gets exactly
  one out-of-fold prediction.
* Metrics (:func:`regression_metrics`) on the pooled out-of-fold predictions: MAPE, RMSPE, share of
  predictions within +-5/10/15 %, R^2 and Spearman's rho; :class:`CVResult` also keeps per-fold figures.
* Frame models wrap an estimator with the columns it uses, so baselines that need key columns fit the
  same protocol: :class:`FeatureModel` (any estimator on feature columns), :class:`MeanBaseline`,
  :class:`GroupMeanBaseline` (e.g. per-frequency mean power) and :class:`MacsBaseline` (throughput ~
  a / MACs per framework, fitted as ``log y = a_fw + b_fw log MACs``).
* Folds run in parallel with joblib (threads by default: the numerical work releases the GIL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import KFold, LeaveOneGroupOut

from perfmodel.errors import PerfmodelError

from .features import KNOWN_TIME_COLUMNS, FeatureError, feature_matrix, frame_overhead, target_vector

GROUP_COLUMNS: tuple[str, ...] = ("network", "framework", "workload", "board")


# -- metrics ---------------------------------------------------------------------------------------


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAPE and RMSPE (%), share within +-5/10/15 % (%), R^2, Spearman rho and n."""
    y = np.asarray(y, dtype="float64")
    pred = np.asarray(pred, dtype="float64")
    if y.shape != pred.shape or y.ndim != 1:
        raise ValueError("y and pred must be 1-D arrays of the same length")
    n = len(y)
    if n == 0:
        raise ValueError("no samples")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (pred - y) / y
    ape = np.abs(rel)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    ss_res = float(((y - pred) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    if n > 2 and np.ptp(y) > 0 and np.ptp(pred) > 0:
        rho = float(stats.spearmanr(y, pred).statistic)
    else:
        rho = float("nan")
    return {
        "mape": float(100 * ape.mean()),
        "rmspe": float(100 * np.sqrt((rel**2).mean())),
        "within_5": float(100 * (ape <= 0.05).mean()),
        "within_10": float(100 * (ape <= 0.10).mean()),
        "within_15": float(100 * (ape <= 0.15).mean()),
        "r2": float(r2),
        "spearman": rho,
        "n": int(n),
    }


# -- frame models ----------------------------------------------------------------------------------


class FrameModel(Protocol):
    """Something fitted on a data frame: ``fit(df, y)``, ``predict(df)``."""

    def fit(self, df: pd.DataFrame, y: np.ndarray) -> "FrameModel": ...

    def predict(self, df: pd.DataFrame) -> np.ndarray: ...


def with_frame_overhead(estimator: Any, df: pd.DataFrame) -> Any:
    """``estimator`` with ``overhead`` set to ``df``'s mean read + pre-process time when it has that parameter
    (the rate kinds, :class:`~perfmodel.model.estimators.OverheadLogLinearModel` and ``OverheadLinearModel``);
    other estimators are returned as they are. ``df`` is the training part, so in CV it is per fold."""
    if "overhead" in estimator.get_params():
        estimator.set_params(overhead=frame_overhead(df))
    return estimator


def with_known_times(estimator: Any, features: Sequence[str]) -> Any:
    """``estimator`` with ``known`` set to the positions of the features that are times already
    (:data:`~perfmodel.model.features.KNOWN_TIME_COLUMNS`, coefficient 1) when it has that parameter
    (``OverheadLinearModel``); other estimators are returned as they are.

    A log-features estimator (``LogLinearModel``, parameter ``linear``) gets the positions of the features
    with an indicator factor (``framework=litert``, ``count*threads=4``): 0 where they are off, never logged."""
    params = estimator.get_params()
    if "known" in params:
        estimator.set_params(known=tuple(i for i, f in enumerate(features) if f in KNOWN_TIME_COLUMNS))
    if "linear" in params:
        from .features import parse_feature

        estimator.set_params(linear=tuple(i for i, f in enumerate(features)
                                          if any(fac.op == "eq" for fac in parse_feature(f))))
    return estimator


class FeatureModel:
    """An estimator on the feature columns ``features`` of a frame (see :mod:`.features`)."""

    def __init__(self, estimator: Any, features: Sequence[str]):
        self.estimator = estimator
        self.features = list(features)

    def fit(self, df: pd.DataFrame, y: np.ndarray) -> "FeatureModel":
        est = with_known_times(with_frame_overhead(clone(self.estimator), df), self.features)
        self.estimator_ = est.fit(feature_matrix(df, self.features), y)
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict(feature_matrix(df, self.features))


class MeanBaseline:
    """Predicts the training mean of the target."""

    def fit(self, df: pd.DataFrame, y: np.ndarray) -> "MeanBaseline":
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return np.full(len(df), self.mean_)


class GroupMeanBaseline:
    """Predicts the training mean of the target within each value of ``column`` (e.g. ``freq_mhz``).

    A value not seen in training gets the overall mean.
    """

    def __init__(self, column: str):
        self.column = column

    def fit(self, df: pd.DataFrame, y: np.ndarray) -> "GroupMeanBaseline":
        if self.column not in df.columns:
            raise FeatureError(f"baseline needs column {self.column!r}")
        self.means_ = pd.Series(y, index=df.index).groupby(df[self.column].to_numpy()).mean().to_dict()
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return df[self.column].map(self.means_).fillna(self.mean_).to_numpy(dtype="float64")


class MacsBaseline:
    """Throughput ~ a / MACs per framework: ``log y = a_g + b_g log(macs)`` fitted per ``group`` value.

    ``group`` is a column or a list of columns (the default baselines use ``framework`` and, where the
    data has several thread counts, ``threads``: a MACs-only model per (framework, threads) cell).

    With one network in a group only the intercept is fitted (``b = -1``, i.e. exactly ``a / MACs``); a
    group not seen in training uses the pooled fit.
    """

    def __init__(self, macs: str = "macs", group: str | Sequence[str] | None = "framework"):
        self.macs = macs
        self.group = group

    def _keys(self, df: pd.DataFrame) -> np.ndarray | None:
        cols = [self.group] if isinstance(self.group, str) else list(self.group or [])
        cols = [c for c in cols if c in df.columns]
        if not cols:
            return None
        return np.array(["|".join(map(str, row)) for row in df[cols].itertuples(index=False, name=None)])

    @staticmethod
    def _fit1(lm: np.ndarray, ly: np.ndarray) -> tuple[float, float]:
        if np.ptp(lm) > 0 and len(lm) > 1:
            b, a = np.polyfit(lm, ly, 1)
            return float(a), float(b)
        return float(np.mean(ly + lm)), -1.0

    def _lm(self, df: pd.DataFrame) -> np.ndarray:
        if self.macs not in df.columns:
            raise FeatureError(f"the MACs-only baseline needs a {self.macs!r} column")
        m = pd.to_numeric(df[self.macs], errors="coerce").to_numpy(dtype="float64")
        if not (np.isfinite(m) & (m > 0)).all():
            raise FeatureError(f"column {self.macs!r} must be finite and > 0")
        return np.log(m)

    def fit(self, df: pd.DataFrame, y: np.ndarray) -> "MacsBaseline":
        lm, ly = self._lm(df), np.log(np.asarray(y, dtype="float64"))
        self.pooled_ = self._fit1(lm, ly)
        self.per_group_ = {}
        g = self._keys(df)
        if g is not None:
            for value in pd.unique(g):
                sel = g == value
                self.per_group_[value] = self._fit1(lm[sel], ly[sel])
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        lm = self._lm(df)
        g = self._keys(df)
        if g is not None:
            ab = [self.per_group_.get(v, self.pooled_) for v in g]
            a = np.array([x[0] for x in ab])
            b = np.array([x[1] for x in ab])
        else:
            a, b = self.pooled_
        return np.exp(a + b * lm)


# -- splits ----------------------------------------------------------------------------------------


def make_splits(
    df: pd.DataFrame,
    *,
    group: str | None = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs: leave-one-``group``-out when ``group`` is given, else shuffled k-fold."""
    n = len(df)
    if group:
        if group not in df.columns:
            raise PerfmodelError(f"group column {group!r} is not in the data (e.g. one of {', '.join(GROUP_COLUMNS)})")
        groups = df[group].astype(str).to_numpy()
        k = len(np.unique(groups))
        if k < 2:
            raise PerfmodelError(f"leave-one-{group}-out needs at least 2 distinct {group} values, the data has {k}")
        return list(LeaveOneGroupOut().split(np.zeros(n), groups=groups))
    if n < 2:
        raise PerfmodelError("cross-validation needs at least 2 samples")
    return list(KFold(n_splits=min(n_splits, n), shuffle=True, random_state=random_state).split(np.zeros(n)))


# -- cross-validation ------------------------------------------------------------------------------


@dataclass
class CVResult:
    """Out-of-fold predictions and their scores."""

    name: str
    predictions: np.ndarray
    y: np.ndarray
    metrics: dict[str, float]
    folds: list[dict[str, Any]] = field(default_factory=list)
    scheme: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scheme": self.scheme, **self.metrics, "folds": self.folds}


def _run_fold(model: Any, df: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    import copy

    m = copy.deepcopy(model)
    m.fit(df.iloc[train], y[train])
    return np.asarray(m.predict(df.iloc[test]), dtype="float64")


def cross_validate(
    model: Any,
    df: pd.DataFrame,
    target: str,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    name: str = "model",
    group: str | None = None,
    n_jobs: int = 1,
) -> CVResult:
    """Fit ``model`` on every training part and score its out-of-fold predictions."""
    y = target_vector(df, target)
    df = df.reset_index(drop=True)
    outs = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(_run_fold)(model, df, y, tr, te) for tr, te in splits
    )
    pred = np.full(len(y), np.nan)
    folds = []
    for (tr, te), p in zip(splits, outs):
        pred[te] = p
        fold = {"held_out": str(df[group].iloc[te[0]]) if group else f"fold{len(folds)}", "n_test": int(len(te))}
        fold.update({k: v for k, v in regression_metrics(y[te], p).items() if k in ("mape", "within_10")})
        folds.append(fold)
    if np.isnan(pred).any():
        raise PerfmodelError("the CV splits do not cover every sample")
    scheme = f"leave-one-{group}-out" if group else f"{len(splits)}-fold"
    return CVResult(name, pred, y, regression_metrics(y, pred), folds, scheme)


def default_baselines(df: pd.DataFrame, target: str, *, per_column: str | None = None) -> dict[str, Any]:
    """The baselines reported beside every model: the mean, a per-``per_column`` mean (power: frequency)
    and, where the data has ``macs`` and the target is a throughput, the MACs-only model."""
    out: dict[str, Any] = {"baseline: mean": MeanBaseline()}
    if per_column is None and target.startswith("power") and "freq_mhz" in df.columns:
        per_column = "freq_mhz"
    if per_column and per_column in df.columns:
        out[f"baseline: mean per {per_column}"] = GroupMeanBaseline(per_column)
    if "macs" in df.columns and ("throughput" in target or "fps" in target or "latency" in target):
        group = [c for c in ("framework", "threads") if c in df.columns and df[c].nunique() > 1]
        out["baseline: MACs-only"] = MacsBaseline(group=group or None)
    return out


def evaluate_models(
    df: pd.DataFrame,
    target: str,
    models: Mapping[str, Any],
    *,
    group: str | None = None,
    n_splits: int = 5,
    n_jobs: int = 1,
    baselines: bool = True,
    random_state: int = 0,
) -> list[CVResult]:
    """Cross-validate every model (and the :func:`default_baselines`) on the same splits."""
    splits = make_splits(df, group=group, n_splits=n_splits, random_state=random_state)
    todo = dict(models)
    if baselines:
        todo.update(default_baselines(df, target))
    return [cross_validate(m, df, target, splits, name=name, group=group, n_jobs=n_jobs) for name, m in todo.items()]


def results_table(results: Sequence[CVResult]) -> pd.DataFrame:
    """One row per result: name, scheme and the metrics."""
    return pd.DataFrame([{"model": r.name, "scheme": r.scheme, **r.metrics} for r in results])


__all__ = [
    "GROUP_COLUMNS", "regression_metrics", "FeatureModel", "MeanBaseline", "GroupMeanBaseline", "MacsBaseline",
    "make_splits", "CVResult", "cross_validate", "default_baselines", "evaluate_models", "results_table",
]
