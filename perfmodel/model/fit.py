"""Fitting a model end to end: candidate features, selection, final fit, CV scores, a :class:`ModelFile`.

* :func:`fit_model` - the one call behind ``perfmodel fit``.
* :func:`evaluate` - the CV table behind ``perfmodel evaluate``: linear / log-linear / ridge on the same
  features and splits, beside the baselines (a baseline that cannot be evaluated is listed with the
  reason, never dropped).
* :func:`nested_cv` - the honest CV figure of stepwise selection (selection redone inside every outer
  fold, on the training rows only).
* :func:`default_candidates` - the feature candidates for a target (power: Powmon terms; throughput:
  ``log(fps) ~ log(work) + framework + threads``, or the additive terms for ``overhead-linear``; else the
  event columns). For a throughput target, counts that measure time itself (:data:`TIME_EVENTS`: CPU
  time, cycles) and rates / per-cycle ratios (divided by the same run's time) are never default
  candidates: with the per-image counts they restate the latency, so a model "predicting" throughput from
  them only restates the measurement (name them explicitly if that is meant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.data.provenance import Table, as_table
from perfmodel.errors import PerfmodelError, check_choice

from .cv import (CVResult, FeatureModel, default_baselines, make_splits, cross_validate, regression_metrics,
                 results_table, with_frame_overhead)
from .estimators import MODEL_KINDS, make_estimator
from .features import (
    STUDY_FEATURES, FeatureError, additive_throughput_terms, candidate_features, feature_frame, feature_provenance,
    column_provenance, base_columns, parse_feature, power_selection_terms, target_vector, throughput_terms,
    _key_str,
)
from .modelfile import ModelFile, Preparation, active_ranges, training_hash
from .schema import PREPARATION_KEYS
from .selection import stepwise_select

#: CLI CV scheme -> group column (None: shuffled k-fold)
CV_SCHEMES: dict[str, str | None] = {"kfold": None, "lono": "network", "lofo": "framework", "lowo": "workload",
                                     "lobo": "board"}
LOG_TARGET_KINDS = ("loglinear", "loglog", "overhead-loglinear", "overhead-linear")
RATE_KINDS = ("overhead-loglinear", "overhead-linear")
#: events that count time (per image: the latency in other units), kept out of default throughput candidates
TIME_EVENTS = ("task_clock_ms", "cycles")


def scheme_group(cv: str | None) -> str | None:
    """``"lono"`` -> ``"network"``; a column name passes through; None / ``"kfold"`` -> None."""
    if cv is None:
        return None
    if cv in CV_SCHEMES:
        return CV_SCHEMES[cv]
    return cv


def _is_throughput(target: str) -> bool:
    return "throughput" in target or "fps" in target or "latency" in target


def _untimed(columns: Sequence[str]) -> list[str]:
    from perfmodel.metrics import base_event

    return [c for c in columns if base_event(c) not in TIME_EVENTS]


def is_power_auto(df: pd.DataFrame, target: str) -> bool:
    """A power target on a table with voltage and frequency: the Powmon-form terms apply."""
    return target.startswith("power") and "voltage_v" in df.columns and "freq_mhz" in df.columns


def power_term_set(df: pd.DataFrame, target: str, *, force_auto: bool = False) -> dict[str, Any]:
    """Which power term set ``fit`` / ``evaluate`` use without named features, and why.

    ``{"set": "fixed", "features": [...], "reason": ...}``: the validated fixed Powmon set
    (:func:`~.features.validated_power_features`, no selection) where the data holds all of its events;
    else (or with ``force_auto``) ``{"set": "auto", "always": [...], "candidates": [...], "reason": ...}``:
    the Powmon-form terms of the events present (:func:`~.features.power_selection_terms`), events chosen
    inside every outer fold. Raises :class:`PerfmodelError` when the target / table is not a power one."""
    from .features import VALIDATED_POWER_EVENTS, power_event_names, validated_power_features

    if not is_power_auto(df, target):
        raise PerfmodelError("the power term sets (--features auto) need a power target and voltage_v / freq_mhz "
                             "columns")
    if not force_auto:
        try:
            feats = validated_power_features(df)
        except FeatureError as exc:
            why = f"{exc}; automatic set of the events present instead"
        else:
            return {"set": "fixed", "features": feats,
                    "reason": f"the data holds all {len(VALIDATED_POWER_EVENTS)} events of the validated fixed "
                              "Powmon set (XU3 PARSEC LOWO 3.93 % at sensor lag 1): every event rate x V^2, no "
                              "selection (--features auto for the automatic set)"}
    else:
        why = "--features auto"
    from .features import cycles_restate_cores, voltage_fixed_per_frequency

    cands, always, _ = power_selection_terms(df)
    note = ("; cycles/s x V^2 left out: the rates are events per cycle x frequency, so it equals cores x V^2 f"
            if cycles_restate_cores(df) else "")
    if voltage_fixed_per_frequency(df):
        note += "; V left out: one voltage per frequency, which the per-frequency intercepts carry"
    return {"set": "auto", "always": always, "candidates": cands,
            "reason": f"{why}: Powmon-form terms of the {len(power_event_names(df))} events present, events "
                      f"chosen by stepwise selection inside every outer fold{note}"}


def default_vif_columns(df: pd.DataFrame, target: str) -> dict[str, str] | None:
    """Where the VIF cap of the default candidates is checked (power: the events per cycle), else None."""
    return power_selection_terms(df)[2] if is_power_auto(df, target) else None


def default_candidates(df: pd.DataFrame, target: str, kind: str = "linear") -> tuple[list[str], list[str]]:
    """``(candidates, always)`` for ``target``: see the module docstring."""
    if is_power_auto(df, target):
        cands, always, _ = power_selection_terms(df)
        return cands, always
    if _is_throughput(target) and kind in LOG_TARGET_KINDS:
        work = next((c for c in ("instructions_per_image", "macs") if c in df.columns
                     and np.isfinite(pd.to_numeric(df[c], errors="coerce")).all()), None)
        if work is not None and "framework" in df.columns and kind == "overhead-linear":
            # additive time: raw per-image counts (a cost per event), never logs
            always = additive_throughput_terms(df, work=work, memory=())
            cands = [c for c in _untimed(candidate_features(df, target, kinds=("_per_image",)))
                     if c != work and (df[c] >= 0).all()]
            return cands, always
        if work is not None and "framework" in df.columns:
            always = throughput_terms(df, work=work)
            cands = [f"log({c})" for c in _untimed(candidate_features(df, target, kinds=("_per_image",)))
                     if f"log({c})" not in always and (df[c] > 0).all()]
            cands += [c for c in ("l1d_miss_rate", "llc_miss_rate", "branch_miss_rate", "l2d_miss_rate")
                      if c in df.columns and np.isfinite(df[c].to_numpy(dtype="float64")).all()]
            return cands, always
    if _is_throughput(target):  # per-image counts only: a rate or a per-cycle ratio divides by the run's own time
        return _untimed(candidate_features(df, target, kinds=("_per_image",))), []
    return candidate_features(df, target), []


def _levels(df: pd.DataFrame, features: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in features:
        for fac in parse_feature(f):
            if fac.op == "eq" and fac.column not in out:
                out[fac.column] = sorted(set(_key_str(df[fac.column]).unique()))
    return out


def _results_dict(results: Sequence[CVResult], skipped: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = [{"model": r.name, "scheme": r.scheme, "status": "ok", **r.metrics, "folds": r.folds} for r in results]
    rows += [{"model": name, "status": "not evaluated", "reason": why} for name, why in skipped.items()]
    return rows


def _baselines(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, dict[str, Any], dict[str, str]]:
    """Baselines for ``target`` and the ones that cannot be evaluated (name -> reason)."""
    skipped: dict[str, str] = {}
    if _is_throughput(target) and "macs" not in df.columns:
        if "network" in df.columns:
            from .features import attach_macs

            try:
                df = attach_macs(df)
            except FeatureError as exc:
                skipped["baseline: MACs-only"] = str(exc)
        else:
            skipped["baseline: MACs-only"] = "the data has no network / macs column"
    return df, default_baselines(df, target), skipped


def evaluate(
    df: pd.DataFrame,
    target: str,
    features: Sequence[str],
    *,
    kinds: Sequence[str] = ("linear", "loglinear", "ridge"),
    group: str | None = None,
    n_splits: int = 5,
    n_jobs: int = 1,
    baselines: bool = True,
    random_state: int = 0,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Cross-validate every model kind on ``features`` and the baselines on the same splits.

    Returns the table (one row per model; ``status`` ``"not evaluated"`` with a ``reason`` where a model
    or baseline cannot be evaluated) and the detailed rows (with per-fold figures).
    """
    features = list(features)
    splits = make_splits(df, group=group, n_splits=n_splits, random_state=random_state)
    results, skipped = [], {}
    for kind in kinds:
        check_choice("model kind", kind, MODEL_KINDS)
        try:
            if kind in LOG_TARGET_KINDS:
                target_vector(df, target, positive=True)
            results.append(cross_validate(FeatureModel(make_estimator(kind), features), df, target, splits,
                                          name=kind, group=group, n_jobs=n_jobs))
        except (PerfmodelError, ValueError, np.linalg.LinAlgError) as exc:
            skipped[kind] = str(exc)
    if baselines:
        bdf, base, bskip = _baselines(df, target)
        skipped.update(bskip)
        for name, m in base.items():
            try:
                results.append(cross_validate(m, bdf, target, splits, name=name, group=group, n_jobs=n_jobs))
            except (PerfmodelError, ValueError) as exc:
                skipped[name] = str(exc)
    rows = _results_dict(results, skipped)
    table = results_table(results)
    if skipped:
        table = pd.concat([table, pd.DataFrame([{"model": k, "scheme": "", "reason": v} for k, v in skipped.items()])],
                          ignore_index=True)
    return table, rows


def nested_cv(
    df: pd.DataFrame,
    target: str,
    candidates: Sequence[str],
    kind: str = "linear",
    group: str | None = None,
    *,
    always: Sequence[str] = (),
    max_features: int = 8,
    vif_cap: float = 10.0,
    n_splits: int = 5,
    n_jobs: int = 1,
    random_state: int = 0,
    name: str | None = None,
    vif_columns: Mapping[str, str] | None = None,
    min_improvement: float = 0.01,
) -> tuple[CVResult, dict[str, list[str]]]:
    """Honest CV of stepwise selection: the selection is redone inside every outer fold.

    For every outer split (leave-one-``group``-out, or shuffled ``n_splits``-fold when ``group`` is
    None) :func:`~.selection.stepwise_select` runs on the *training rows only*, with inner splits of the
    same kind over the training groups (k-fold inside the training rows when ``group`` is None), the
    chosen features are fitted on the training rows and the held-out rows are predicted. Nothing about
    a held-out row - not even which features it is predicted from - depends on its target.

    Returns the pooled out-of-fold :class:`~.cv.CVResult` and, per outer fold (held-out group or
    ``fold<i>``), the features chosen there (``always`` terms included).
    """
    check_choice("model kind", kind, MODEL_KINDS)
    y = target_vector(df, target, positive=kind in LOG_TARGET_KINDS)
    df = df.reset_index(drop=True)
    outer = make_splits(df, group=group, n_splits=n_splits, random_state=random_state)
    pred = np.full(len(y), np.nan)
    chosen: dict[str, list[str]] = {}
    folds = []
    for i, (tr, te) in enumerate(outer):
        train = df.iloc[tr].reset_index(drop=True)
        held = str(df[group].iloc[te[0]]) if group else f"fold{i}"
        if group and train[group].nunique() < 2:
            raise PerfmodelError(f"nested CV needs at least 3 distinct {group} values (2 left to select on)")
        inner = make_splits(train, group=group, n_splits=n_splits, random_state=random_state)
        res = stepwise_select(train, target, candidates, make_estimator(kind), inner, always=always,
                              max_features=max_features, vif_cap=vif_cap, n_jobs=n_jobs,
                              vif_columns=dict(vif_columns) if vif_columns else None,
                              min_improvement=min_improvement)
        model = FeatureModel(make_estimator(kind), res.features).fit(train, y[tr])
        pred[te] = model.predict(df.iloc[te])
        chosen[held] = list(res.features)
        fold = {"held_out": held, "n_test": int(len(te)), "features": list(res.features)}
        fold.update({k: v for k, v in regression_metrics(y[te], pred[te]).items() if k in ("mape", "within_10")})
        folds.append(fold)
    scheme = (f"leave-one-{group}-out" if group else f"{len(outer)}-fold") + ", selection nested"
    return CVResult(name or f"{kind} (stepwise, nested)", pred, y, regression_metrics(y, pred), folds, scheme), chosen


def evaluate_power_nested(
    df: pd.DataFrame,
    target: str,
    *,
    kinds: Sequence[str] = ("linear", "loglinear", "ridge"),
    group: str | None = None,
    n_splits: int = 5,
    n_jobs: int = 1,
    max_features: int = 8,
    vif_cap: float = 10.0,
    baselines: bool = True,
    random_state: int = 0,
) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """The CV table of the automatic power model: the Powmon-form terms of the events ``df`` has
    (:func:`~.features.power_selection_terms`), events chosen by stepwise selection with the VIF cap
    *inside every outer fold* (:func:`nested_cv`), for every kind in ``kinds``, beside the baselines on
    the same splits. Returns ``({"always": [...], "candidates": [...]}, rows)``; a kind that cannot be
    evaluated is a row with the reason."""
    cands, always, vif_cols = power_selection_terms(df)
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        try:
            res, chosen = nested_cv(df, target, cands, kind, group, always=always, max_features=max_features,
                                    vif_cap=vif_cap, n_splits=n_splits, n_jobs=n_jobs, random_state=random_state,
                                    vif_columns=vif_cols, name=kind)
        except (PerfmodelError, ValueError, np.linalg.LinAlgError) as exc:
            rows.append({"model": kind, "status": "not evaluated", "reason": str(exc)})
            continue
        rows.append({"model": kind, "scheme": res.scheme, "status": "ok", **res.metrics, "folds": res.folds,
                     "chosen": chosen})
    if baselines:
        _, base = evaluate(df, target, [], kinds=(), group=group, n_splits=n_splits, n_jobs=n_jobs,
                           random_state=random_state)
        rows += base
    return {"always": always, "candidates": cands}, rows


#: penalties of :class:`ShrunkPowerModel`: ``alpha = lambda x n`` on standardised terms
SHRINK_LAMBDAS: tuple[float, ...] = tuple(float(x) for x in np.logspace(-6, 1, 15))


def _penalised_fit(X: np.ndarray, y: np.ndarray, penalised: np.ndarray, lambdas: Sequence[float]):
    """Ridge on standardised ``X`` with the penalty ``lambda x n`` on the ``penalised`` columns only
    (intercept and the other columns unpenalised): ``[(mean, scale, ybar, coef)]``, one per lambda."""
    n = len(y)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    ybar = float(y.mean())
    G = Z.T @ Z
    b = Z.T @ (y - ybar)
    D = np.diag(penalised.astype("float64"))
    return [(mean, scale, ybar, np.linalg.pinv(G + lam * n * D) @ b) for lam in lambdas]


def _penalised_predict(fit, X: np.ndarray) -> np.ndarray:
    mean, scale, ybar, coef = fit
    return ybar + ((X - mean) / scale) @ coef


class ShrunkPowerModel:
    """Every Powmon-form term kept, the event terms shrunk instead of selected (issue 22, option
    ``--shrink``): ridge on the standardised terms with the penalty ``lambda x n`` on ``penalised`` only,
    ``lambda`` (:data:`SHRINK_LAMBDAS`) chosen by the pooled MAPE of inner folds grouped by ``group``
    (leave-one-workload-out on the training workloads), then refitted on all the training rows."""

    def __init__(self, features: Sequence[str], penalised: Sequence[str], group: str | None = None, *,
                 lambdas: Sequence[float] = SHRINK_LAMBDAS, n_splits: int = 5, random_state: int = 0):
        self.features, self.penalised = list(features), list(penalised)
        self.group, self.lambdas = group, tuple(lambdas)
        self.n_splits, self.random_state = n_splits, random_state

    def fit(self, df: pd.DataFrame, y: np.ndarray) -> "ShrunkPowerModel":
        from .features import feature_matrix

        df = df.reset_index(drop=True)
        X = np.asarray(feature_matrix(df, self.features), dtype="float64")
        y = np.asarray(y, dtype="float64")
        mask = np.array([f in self.penalised for f in self.features])
        inner = make_splits(df, group=self.group, n_splits=self.n_splits, random_state=self.random_state)
        pred = np.empty((len(self.lambdas), len(y)))
        for tr, te in inner:
            for i, fit in enumerate(_penalised_fit(X[tr], y[tr], mask, self.lambdas)):
                pred[i, te] = _penalised_predict(fit, X[te])
        errs = np.mean(np.abs(pred - y) / np.abs(y), axis=1)
        i = int(np.argmin(errs))
        self.lambda_, self.inner_mape_ = self.lambdas[i], float(100 * errs[i])
        self.fit_ = _penalised_fit(X, y, mask, [self.lambda_])[0]
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        from .features import feature_matrix

        return _penalised_predict(self.fit_, np.asarray(feature_matrix(df, self.features), dtype="float64"))

    def params(self, df: pd.DataFrame, y: np.ndarray):
        """The fitted model as :class:`~.estimators.LinearParams` (what a model file stores), from the
        training rows it was fitted on: the coefficients of :meth:`fit`, and the sandwich covariance ``M Z'Z M``
        (``M = (Z'Z + lambda n D)^-1``, ``D`` the penalised terms) and residual variance of
        :class:`~.estimators.RidgeModel` for the prediction interval; ``alpha`` is ``lambda x n``, the penalty
        on the penalised standardised terms (the others have none)."""
        from .estimators import LinearParams
        from .estimators import ridge_posterior
        from .features import feature_matrix

        mean, scale, ybar, coef = self.fit_
        X = np.asarray(feature_matrix(df.reset_index(drop=True), self.features), dtype="float64")
        y = np.asarray(y, dtype="float64")
        n = X.shape[0]
        Z = (X - mean) / scale
        G = Z.T @ Z
        D = np.diag(np.array([f in self.penalised for f in self.features], dtype="float64"))
        M = np.linalg.pinv(G + self.lambda_ * n * D)
        sigma2, cov, dof = ridge_posterior(Z, y, ybar, coef, M, G)
        return LinearParams(np.asarray(coef, dtype="float64"), ybar, mean, scale, sigma2, cov, dof,
                            alpha=float(self.lambda_ * n))


SHRUNK_NAME = "ridge, all event terms shrunk (penalty in inner folds)"


def evaluate_power_shrunk(df: pd.DataFrame, target: str, *, group: str | None = None, n_splits: int = 5,
                          random_state: int = 0) -> dict[str, Any]:
    """The CV row of :class:`ShrunkPowerModel` on the automatic term set of ``df`` (every event kept; the
    penalty chosen inside every outer fold, on its training groups only), with the penalty per fold."""
    cands, always, _ = power_selection_terms(df)
    feats = list(always) + list(cands)
    d = df.reset_index(drop=True)
    splits = make_splits(d, group=group, n_splits=n_splits, random_state=random_state)
    y = target_vector(d, target)
    pred = np.full(len(y), np.nan)
    lams: dict[str, float] = {}
    folds = []
    try:
        for k, (tr, te) in enumerate(splits):
            m = ShrunkPowerModel(feats, cands, group, n_splits=n_splits, random_state=random_state)
            pred[te] = m.fit(d.iloc[tr], y[tr]).predict(d.iloc[te])
            held = str(d[group].iloc[te[0]]) if group else f"fold{k}"
            lams[held] = m.lambda_
            fold = {"held_out": held, "n_test": int(len(te))}
            fold.update({key: v for key, v in regression_metrics(y[te], pred[te]).items() if key in ("mape", "within_10")})
            folds.append(fold)
    except (PerfmodelError, ValueError, np.linalg.LinAlgError) as exc:
        return {"model": SHRUNK_NAME, "status": "not evaluated", "reason": str(exc)}
    scheme = f"leave-one-{group}-out" if group else f"{len(splits)}-fold"
    return {"model": SHRUNK_NAME, "scheme": scheme + ", penalty nested", "status": "ok",
            **regression_metrics(y, pred), "folds": folds, "lambda": lams, "features": feats, "penalised": cands}


def fit_model(
    df: Table | pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    kind: str = "linear",
    groups: str | None = None,
    select: str = "stepwise",
    *,
    always: Sequence[str] | None = None,
    max_features: int = 8,
    vif_cap: float = 10.0,
    n_splits: int = 5,
    n_jobs: int = 1,
    provenance: str | Mapping[str, str] | None = None,
    baselines: bool = True,
    statistics: bool = True,
    metadata: Mapping[str, Any] | None = None,
    preparation: Preparation | None = None,
    random_state: int = 0,
) -> ModelFile:
    """Fit ``target`` on a wide table and return a :class:`ModelFile` with its CV scores.

    Parameters
    ----------
    features : candidate features for ``select="stepwise"`` (default :func:`default_candidates`), or the
        model's features for ``select="fixed"`` (default :data:`STUDY_FEATURES`); none for
        ``select="shrink"`` (power, kind ``ridge``: every Powmon-form term of the events present kept, the event
        terms shrunk, :class:`ShrunkPowerModel`; the penalty recorded in ``selection``).
    kind : ``linear`` (OLS), ``loglinear`` (log target), ``loglog`` (log target and features) or
        ``ridge`` (alpha by inner CV, so the outer CV is nested).
    groups : CV group column (``network``, ``framework``, ``workload``, ``board``) or a scheme name
        (``lono``, ``lofo``, ``lowo``, ``lobo``); None or ``kfold``: shuffled ``n_splits``-fold.
    always : terms stepwise selection always keeps (default: from :func:`default_candidates`).
    df : a :class:`~perfmodel.data.provenance.Table` (its provenance is what the model records) or a bare
        DataFrame (which records none: then ``provenance`` must state it).
    provenance : provenance of columns the table's provenance does not describe (e.g. ``"real"`` for a CSV).
    metadata : free metadata kept in the file (data set, board, ...).
    preparation : what the caller did to ``df`` that a prediction must replay (:class:`Preparation`).
    """
    check_choice("model kind", kind, MODEL_KINDS)
    check_choice("selection", select, ("stepwise", "fixed", "shrink"))
    misplaced = [k for k in PREPARATION_KEYS if k in (metadata or {})]
    if misplaced:  # what a prediction replays is typed and checked, never a free metadata key
        raise PerfmodelError(f"fit_model: {', '.join(misplaced)} belong(s) in preparation=Preparation(...), "
                             "not in metadata")
    if preparation is not None and not isinstance(preparation, Preparation):
        raise PerfmodelError(f"fit_model: preparation must be a Preparation, got {type(preparation).__name__}")
    if isinstance(max_features, bool) or not isinstance(max_features, (int, np.integer)) or max_features < 1:
        raise PerfmodelError(f"max_features must be a whole number >= 1, got {max_features!r}")
    if not (isinstance(vif_cap, (int, float)) and np.isfinite(vif_cap) and vif_cap >= 1):
        raise PerfmodelError(f"vif_cap must be a number >= 1 (a VIF is never below 1), got {vif_cap!r}")
    if not isinstance(df, (Table, pd.DataFrame)) or df.empty:
        raise PerfmodelError("no data to fit")
    data = as_table(df)  # the provenance is data.provenance
    df = data.frame
    group = scheme_group(groups)
    y_all = target_vector(df, target, positive=kind in LOG_TARGET_KINDS)
    del y_all
    estimator = make_estimator(kind)
    if kind in RATE_KINDS:
        if not ("throughput" in target or "fps" in target):  # a rate: not a latency, which is the time itself
            raise PerfmodelError(f"model kind {kind} predicts a rate 1000 / (overhead ms + time ms): "
                                 f"it needs a throughput target (images/s), not {target!r}")
        try:  # stepwise selection below scores candidate sets with the overhead of all rows
            with_frame_overhead(estimator, df)
        except FeatureError as exc:
            raise PerfmodelError(f"model kind {kind}: {exc}") from None
    splits = make_splits(df, group=group, n_splits=n_splits, random_state=random_state)
    selection: dict[str, Any]
    if select == "fixed":
        feats = list(features) if features else [f for f in STUDY_FEATURES]
        if not features and not all(f in df.columns for f in feats):
            raise PerfmodelError(f"fixed selection without --features uses the study's {', '.join(STUDY_FEATURES)}, "
                                 "which the data does not all have; name the features")
        selection = {"method": "fixed", "features": feats}
    elif select == "shrink":  # every Powmon-form term kept, the event terms shrunk (ShrunkPowerModel)
        if kind != "ridge":
            raise PerfmodelError(f"the shrunk power model is a ridge model (kind 'ridge'), not {kind!r}")
        if features:
            raise PerfmodelError("the shrunk power model keeps every Powmon-form term of the events present: "
                                 "it takes no --features")
        if not is_power_auto(df, target):
            raise PerfmodelError("--shrink is for a power target on data with voltage_v and freq_mhz columns (the "
                                 "Powmon-form terms)")
        shrink_cands, shrink_always, _ = power_selection_terms(df)
        feats = list(shrink_always) + list(shrink_cands)
        selection = {"method": "shrink", "features": feats, "penalised": list(shrink_cands),
                     "unpenalised": list(shrink_always)}
    else:
        if features:
            cands, auto_always = list(features), []
        else:
            cands, auto_always = default_candidates(df, target, kind)
        keep = list(always) if always is not None else auto_always
        res = stepwise_select(df, target, cands, estimator, splits, always=keep, max_features=max_features,
                              vif_cap=vif_cap, n_jobs=n_jobs,
                              vif_columns=None if features else default_vif_columns(df, target))
        feats = res.features
        selection = res.as_dict()
        selection.update({"vif_cap": vif_cap, "max_features": max_features,
                          "note": "features chosen by CV error on the same splits: the CV score is optimistic"})
    X = feature_frame(df, feats).to_numpy(dtype="float64")
    y = target_vector(df, target, positive=kind in LOG_TARGET_KINDS)
    if X.shape[0] <= X.shape[1] + 1:
        raise PerfmodelError(f"{X.shape[0]} samples are too few for {X.shape[1]} features")
    if select == "shrink":
        shrunk = ShrunkPowerModel(feats, selection["penalised"], group, n_splits=n_splits,
                                  random_state=random_state).fit(df, y)
        params = shrunk.params(df, y)
        selection.update({"lambda": shrunk.lambda_, "alpha": params.alpha, "inner_mape": shrunk.inner_mape_,
                          "lambdas": list(shrunk.lambdas),
                          "inner_cv": f"leave-one-{group}-out" if group else f"{n_splits}-fold",
                          "note": "ridge on the standardised terms, penalty lambda x n (alpha) on the event "
                                  "terms only, lambda chosen by the pooled MAPE of inner folds on all the data; "
                                  "the CV figures choose it again inside every outer fold (nested)"})
        known: list[str] = []
    else:
        fitted = FeatureModel(make_estimator(kind), feats).fit(df, y).estimator_
        params = fitted.params_
        known = [feats[i] for i in (fitted.get_params().get("known") or ())]
    prov = feature_provenance(data, feats, provenance)
    cprov = column_provenance(data, base_columns(feats), provenance)
    unknown = sorted(c for c, v in cprov.items() if v is None)
    if unknown:
        raise PerfmodelError(
            f"provenance of column(s) {', '.join(unknown)} is unknown (the data does not record it); "
            "state it (provenance='real' / --provenance real)")
    # cross-validation of the final feature set, beside the baselines
    table, rows = evaluate(df, target, feats, kinds=() if select == "shrink" else (kind,), group=group,
                           n_splits=n_splits, n_jobs=n_jobs, baselines=baselines, random_state=random_state)
    if select == "shrink":  # the penalty chosen again inside every outer fold
        rows.insert(0, evaluate_power_shrunk(df, target, group=group, n_splits=n_splits, random_state=random_state))
    if select == "stepwise" and not features and is_power_auto(df, target):
        # the CV figure of the automatic power model: the selection redone inside every outer fold
        _, nested = evaluate_power_nested(df, target, kinds=(kind,), group=group, n_splits=n_splits, n_jobs=n_jobs,
                                          max_features=max_features, vif_cap=vif_cap, baselines=False,
                                          random_state=random_state)
        rows = nested + [r for r in rows if r["model"] != kind]
        selection["note"] = ("events chosen by CV error inside every outer fold for the CV figures (nested); the "
                             "model's own events chosen on all the data")
    main_name = SHRUNK_NAME if select == "shrink" else kind
    main = next((r for r in rows if r["model"] == main_name and r.get("status") == "ok"), None)
    cv = {"scheme": main["scheme"] if main else (f"leave-one-{group}-out" if group else f"{n_splits}-fold"),
          "group": group, "results": rows}
    if main:
        cv.update({k: main[k] for k in ("mape", "rmspe", "within_5", "within_10", "within_15", "r2", "spearman", "n")})
    stats: dict[str, Any] = {}
    if statistics and kind in ("linear", "loglinear"):
        from .stats import ols_statistics

        try:
            stats = ols_statistics(df, target, feats, log_target=kind == "loglinear")
        except Exception as exc:  # noqa: BLE001 - statistics are informative, never block a fit
            stats = {"error": str(exc)}
    training = {"n": int(len(y)), "sha256": training_hash(X, y, feats, target),
                "ranges": {f: [float(np.min(X[:, j])), float(np.max(X[:, j]))] for j, f in enumerate(feats)},
                # over the rows where each term is on (an interaction term is 0 elsewhere): what out_of_range checks
                "active_ranges": active_ranges(df, X, feats),
                "target_range": [float(y.min()), float(y.max())],
                "groups": sorted(map(str, pd.unique(df[group]))) if group else None,
                "source": data.provenance.origin}
    if known:  # times already (fc_stream_ms): coefficient 1, not fitted
        training["fixed_coefficients"] = {f: 1.0 for f in known}
    return ModelFile(
        target=target, kind=kind, features=feats, params=params,
        provenance={f: v for f, v in prov.items()},  # type: ignore[misc]
        column_provenance={c: v for c, v in cprov.items()},  # type: ignore[misc]
        levels=_levels(df, feats), training=training, cv=cv, selection=selection, statistics=stats,
        metadata=dict(metadata or {}),
        preparation=preparation.model_copy(deep=True) if preparation is not None else Preparation(),
    )


__all__ = ["CV_SCHEMES", "scheme_group", "default_candidates", "evaluate", "nested_cv", "fit_model",
           "evaluate_power_nested", "is_power_auto", "default_vif_columns", "power_term_set", "ShrunkPowerModel",
           "evaluate_power_shrunk", "SHRINK_LAMBDAS"]
