"""The sensor lag of a power trace, chosen from the data (``perfmodel fit / evaluate --sensor-lag auto``).

A logger may read the power sensor after the counters of the same line: power of sample ``t + s``
explains the counters of sample ``t``. The lag ``s`` is chosen without any model: on a lag-0 table
(:func:`perfmodel.data.importers.armpm.load_armpm` with ``sensor_lag=0``), the within-run correlation of
power with an event rate (each run's mean removed, so that levels across runs and frequencies do not
dominate; the mean of all the run's rows, so that a short run's few pairs at a long lag are not centred on
their own mean, which inflates their correlation) is computed for every candidate ``s`` and the largest wins
(on the XU3 PARSEC file with cycles/s: 0.791 / 0.882 / 0.769 / 0.636 at 0 / 1 / 2 / 3, so 1; 1 in every
leave-one-workload-out fold too). ``rows`` restricts the pairs to training rows (both ends of
a pair), which is how ``evaluate`` chooses the lag inside every outer fold of a grouped CV (leave one workload /
network / ... out) from the training groups only. Shuffled k-fold folds are not chosen in: a lag-``s`` table
drops the last ``s`` samples of every run, so its shuffled folds are other rows than the lag-0 table's folds of
the same name, and pooling "fold i at lag a" with "fold i at lag b" would count rows twice and miss others;
under k-fold one lag is chosen on all the rows. Where no lag can be chosen (a trace of about one sample per run,
no event rate), ``fallback`` (0 in ``fit`` / ``evaluate``) is used and the reason kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError

#: sensor lags (samples) ``--sensor-lag auto`` chooses from
LAG_CANDIDATES: tuple[int, ...] = (0, 1, 2, 3)
#: the event rate power is correlated with: the first present (else the first ``*_per_s`` column)
LAG_EVENTS: tuple[str, ...] = ("cycles_per_s", "instructions_per_s")


def lag_event(df: pd.DataFrame) -> str | None:
    """The event rate column the lag is chosen with (None: the table has none)."""
    for c in LAG_EVENTS:
        if c in df.columns:
            return c
    return next((c for c in df.columns if str(c).endswith("_per_s")), None)


def lag_scores(df0: pd.DataFrame, *, candidates: Sequence[int] = LAG_CANDIDATES, rows: np.ndarray | None = None,
               event: str | None = None, target: str = "power_w") -> dict[int, float]:
    """Within-run correlation of ``target`` of row ``t + s`` with ``event`` of row ``t``, per candidate ``s``
    (NaN where too few pairs); ``df0`` a lag-0 table with a ``segment`` column (one run each), ``rows`` a
    bool mask of the rows that may be used (both ends of a pair)."""
    event = event or lag_event(df0)
    if event is None or target not in df0.columns or "segment" not in df0.columns:
        raise PerfmodelError("the sensor lag is chosen from a power trace with a segment (run) column, the "
                             f"target {target!r} and an event rate (*_per_s)")
    d = df0.reset_index(drop=True)
    seg = d["segment"]
    ok = np.ones(len(d), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    # every run's mean removed once, over all its usable rows (not over each lag's pairs: a short run has few
    # pairs at a long lag, and centring them on their own mean inflates their correlation)
    okm = pd.Series(ok)

    def centred(col: str) -> pd.Series:
        v = pd.to_numeric(d[col], errors="coerce").where(okm)
        return v - v.groupby(seg).transform("mean")

    x, pw = centred(event), centred(target)
    out: dict[int, float] = {}
    for s in candidates:
        p = pw.groupby(seg).shift(-int(s))
        ok_s = okm.groupby(seg).shift(-int(s)).fillna(False).to_numpy(dtype=bool) & ok
        pair = pd.DataFrame({"p": p, "x": x})[ok_s].dropna()
        if len(pair) < 3:
            out[int(s)] = float("nan")
            continue
        if pair["p"].std() == 0 or pair["x"].std() == 0:
            out[int(s)] = float("nan")
            continue
        out[int(s)] = float(np.corrcoef(pair["p"], pair["x"])[0, 1])
    return out


def choose_sensor_lag(df0: pd.DataFrame, *, candidates: Sequence[int] = LAG_CANDIDATES,
                      rows: np.ndarray | None = None, target: str = "power_w",
                      fallback: int | None = None) -> dict[str, Any]:
    """``{"lag", "event", "r": {lag: correlation}, "reason", "fallback"}``: the candidate lag with the largest
    within-run correlation (:func:`lag_scores`; ties go to the smaller lag). Where none can be chosen (no run
    with consecutive samples that vary, no event rate, no run column) it raises, or with ``fallback`` given
    returns that lag with ``"fallback": True`` and the reason."""
    event = lag_event(df0)
    try:
        r = lag_scores(df0, candidates=candidates, rows=rows, event=event, target=target)
    except PerfmodelError as exc:
        if fallback is None:
            raise
        return {"lag": int(fallback), "event": event, "r": {}, "fallback": True,
                "reason": f"no sensor lag can be chosen ({exc}): {fallback} used"}
    finite = {s: v for s, v in r.items() if np.isfinite(v)}
    if not finite:
        why = (f"too few consecutive samples of a run that vary to correlate {target} with {event} "
               f"(lags {', '.join(map(str, r))}: n/a)")
        if fallback is None:
            raise PerfmodelError(f"no sensor lag can be chosen: {why} (give --sensor-lag N)")
        return {"lag": int(fallback), "event": event, "r": r, "fallback": True,
                "reason": f"no sensor lag can be chosen ({why}): {fallback} used"}
    best = max(finite, key=lambda s: (finite[s], -s))
    scores = ", ".join(f"{s}: {v:.3f}" if np.isfinite(v) else f"{s}: n/a" for s, v in r.items())
    return {"lag": int(best), "event": event, "r": r, "fallback": False,
            "reason": f"within-run correlation of {target} with {event} largest at lag {best} ({scores})"}


def fold_sensor_lags(df0: pd.DataFrame, splits: Sequence[tuple[np.ndarray, np.ndarray]], *, group: str,
                     candidates: Sequence[int] = LAG_CANDIDATES, target: str = "power_w",
                     fallback: int | None = None, fell_back: list[str] | None = None) -> dict[str, int]:
    """The lag chosen on the training rows of every outer split of ``df0``, by held-out ``group`` value (as
    :func:`~.cv.cross_validate` names the folds of a grouped CV). Only grouped splits: a held-out group is
    the same rows at every lag (less the dropped samples), a shuffled k-fold fold is not. ``fallback``: the lag
    of a fold whose training rows choose none (its name appended to ``fell_back``)."""
    if not group:
        raise PerfmodelError("the sensor lag is chosen inside the folds of a grouped CV only (leave one workload "
                             "/ network / ... out): shuffled k-fold folds of a lagged table are other rows")
    d = df0.reset_index(drop=True)
    out: dict[str, int] = {}
    for tr, te in splits:
        mask = np.zeros(len(d), dtype=bool)
        mask[tr] = True
        held = str(d[group].iloc[te[0]])
        c = choose_sensor_lag(d, candidates=candidates, rows=mask, target=target, fallback=fallback)
        out[held] = c["lag"]
        if c.get("fallback") and fell_back is not None:
            fell_back.append(held)
    return out


def pool_fold_rows(rows_by_lag: Mapping[int, Sequence[dict]], fold_lags: Mapping[str, int]) -> list[dict]:
    """One CV table from evaluations at several sensor lags: every model's row keeps, per outer fold, the
    figures of the evaluation at that fold's lag; MAPE and the share within +-10 % pooled over the folds
    (weighted by their test rows, exactly the pooled figures), RMSPE, +-5/15 %, R^2 and Spearman left out
    (not pooled from per-fold figures). A model not evaluated at one of the lags is not evaluated."""
    lags = sorted(set(fold_lags.values()))
    first = rows_by_lag[lags[0]]
    kfold = [r.get("scheme") for r in first if str(r.get("scheme") or "").endswith("-fold")]
    if kfold:
        raise PerfmodelError(f"a sensor lag per fold needs a grouped CV, not {kfold[0]}: shuffled k-fold folds of "
                             "tables at different lags are different rows (fold i at one lag is not fold i at "
                             "another)")
    out = []
    for base in first:
        name = base["model"]
        per = {lag: next((r for r in rows_by_lag[lag] if r["model"] == name), None) for lag in lags}
        bad = {lag: r for lag, r in per.items() if r is None or r.get("status") != "ok"}
        if bad:
            why = "; ".join(f"lag {lag}: {r.get('reason', 'not evaluated') if r else 'missing'}"
                            for lag, r in bad.items())
            out.append({"model": name, "status": "not evaluated", "reason": why})
            continue
        folds = []
        for held, lag in fold_lags.items():
            f = next((f for f in per[lag].get("folds", []) if f.get("held_out") == held), None)
            if f is None:
                raise PerfmodelError(f"fold {held} is missing from the evaluation at sensor lag {lag}")
            folds.append({**f, "sensor_lag": lag})
        n = sum(f["n_test"] for f in folds)
        row = {"model": name, "scheme": f"{base.get('scheme', '')}, sensor lag per fold", "status": "ok",
               "mape": sum(f["n_test"] * f["mape"] for f in folds) / n,
               "within_10": sum(f["n_test"] * f["within_10"] for f in folds) / n,
               "rmspe": None, "within_5": None, "within_15": None, "r2": None, "spearman": None, "n": int(n),
               "folds": folds}
        out.append(row)
    return out


__all__ = ["LAG_CANDIDATES", "lag_event", "lag_scores", "choose_sensor_lag", "fold_sensor_lags", "pool_fold_rows"]
