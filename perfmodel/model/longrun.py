"""Long-run throughput from a quick sample: the ratio of long-run to start-of-run throughput, learned from traces.

A quick sample measures a few images right after a warm-up; a long run settles lower (thermal throttling
on a board, a turbo / power budget running out, a shared host's other load). Every long-run trace
(``perfmodel trace``) shows both ends of that: its throughput over the first ``window_s`` seconds (the
state a quick sample sees) and over everything after ``skip_s`` seconds (the long run). The estimate is

    long-run fps = quick-sample fps x r,     log r ~ mean of log(long-run / first window) over the traces,

with a prediction interval from the spread of ``log r`` across the traces (Student t, ``n - 1`` degrees
of freedom, ``sqrt(1 + 1/n)``) and the sample's own standard error. One trace gives the ratio but no
interval. The traces should come from
the same machine (and ideally the same framework and thread count: :meth:`LongRunRatio.fit` can select
them).

On a board the ratio depends on the state the sample starts in: a sample taken cold sees the full clock
and a long run throttles below it; a sample taken hot is already throttled. Where the traces carry
temperature or CPU frequency that varies from trace to trace, :class:`StateRatio` fits ``log r`` as a
linear function of the start window's state (:data:`STATE_FEATURES`: temperature at the start, its rise
in degC / s, mean frequency, CPU %) and :func:`choose_ratio` uses it for a sample that recorded the same
state when its leave-one-trace-out error beats the pooled ratio's; otherwise the pooled ratio, saying why.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from perfmodel.errors import PerfmodelError

#: seconds at the start of a trace that stand for a quick sample, and seconds left out before the long run
WINDOW_S = 2.0
SKIP_S = 10.0


def trace_ratios(records: pd.DataFrame, *, window_s: float = WINDOW_S, skip_s: float = SKIP_S) -> pd.DataFrame:
    """One row per trace cell of ``records`` (``phase="trace"``): framework, network, threads, cell_id,
    ``start_fps`` (images / s over intervals starting before ``window_s``), ``long_run_fps`` (after
    ``skip_s``), ``ratio`` = long_run / start and ``trace_s``. A trace too short for both is left out."""
    from perfmodel.data import wide_per_sample

    if not 0 < window_s <= skip_s:
        raise PerfmodelError(f"need 0 < window_s <= skip_s, got {window_s} and {skip_s}")
    rec = records[records["phase"] == "trace"] if "phase" in records.columns else records
    cols = ["framework", "network", "threads", "cell_id", "start_fps", "long_run_fps", "ratio", "trace_s",
            *STATE_FEATURES]
    if rec.empty:
        return pd.DataFrame(columns=cols)
    wide = wide_per_sample(rec).frame
    missing = [c for c in ("images", "t_rel_s", "dt_s") if c not in wide.columns]
    if missing:
        raise PerfmodelError(f"trace records without {', '.join(missing)}: not a perfmodel trace (perfmodel trace "
                             "records the images completed per interval)")
    rows = []
    for (fw, net, thr, cid), g in wide.groupby(["framework", "network", "threads", "cell_id"], sort=True,
                                              observed=True):
        t = g["t_rel_s"].to_numpy(dtype="float64")
        im = pd.to_numeric(g["images"], errors="coerce").to_numpy(dtype="float64")
        dt = pd.to_numeric(g["dt_s"], errors="coerce").to_numpy(dtype="float64")
        ok = np.isfinite(t) & np.isfinite(im) & np.isfinite(dt) & (dt > 0)
        start, late = ok & (t < window_s), ok & (t >= skip_s)
        if not start.any() or not late.any() or im[start].sum() <= 0 or im[late].sum() <= 0:
            continue
        s_fps, l_fps = im[start].sum() / dt[start].sum(), im[late].sum() / dt[late].sum()
        last = np.flatnonzero(ok)[np.argmax(t[ok])]
        state = _start_state(g, t, dt, ok, window_s)
        rows.append([str(fw), str(net), int(thr), str(cid), float(s_fps), float(l_fps), float(l_fps / s_fps),
                     float(t[last] + dt[last]), *(state[f] for f in STATE_FEATURES)])
    return pd.DataFrame(rows, columns=cols)


#: a trace's / a sample's state over its start window, the terms a state model may use (in this order of
#: preference): temperature at the start (degC), its rise (degC / s), mean CPU frequency (MHz), CPU %
STATE_FEATURES = ("start_temp_c", "temp_rise_c_per_s", "freq_mhz", "cpu_percent")
#: the board's own state: a state model needs one of these to vary across the traces (CPU % alone varies
#: on any machine with other load; it only joins a model that has one of them)
BOARD_FEATURES = ("start_temp_c", "temp_rise_c_per_s", "freq_mhz")
#: fewest traces carrying the state for a state model
MIN_STATE_TRACES = 5


def _column(g: pd.DataFrame, name: str) -> np.ndarray:
    if name not in g.columns:
        return np.full(len(g), np.nan)
    return pd.to_numeric(g[name], errors="coerce").to_numpy(dtype="float64")


def _start_state(g: pd.DataFrame, t: np.ndarray, dt: np.ndarray, ok: np.ndarray, window_s: float) -> dict:
    """The state of a trace's start window (:data:`STATE_FEATURES`; NaN where the trace has no reading):
    the first interval's temperature, the temperature's slope from the first to the last interval
    starting in the window (the first two intervals when only one does), and the window's mean frequency
    and CPU %."""
    order = np.flatnonzero(ok)[np.argsort(t[ok])]
    start = [i for i in order if t[i] < window_s]
    temp, freq, cpu = _column(g, "temperature_c"), _column(g, "freq_mhz"), _column(g, "cpu_percent")
    out = dict.fromkeys(STATE_FEATURES, np.nan)
    with_temp = [i for i in order if np.isfinite(temp[i])]
    if with_temp and with_temp[0] in start:
        out["start_temp_c"] = float(temp[with_temp[0]])
        span = [i for i in with_temp if i in start]
        if len(span) < 2:
            span = with_temp[:2]
        a, b = span[0], span[-1]
        mid_a, mid_b = t[a] + dt[a] / 2, t[b] + dt[b] / 2
        if len(span) >= 2 and mid_b > mid_a:
            out["temp_rise_c_per_s"] = float((temp[b] - temp[a]) / (mid_b - mid_a))
    for name, col in (("freq_mhz", freq), ("cpu_percent", cpu)):
        vals = col[start] if start else np.array([])
        vals = vals[np.isfinite(vals)]
        if len(vals):
            out[name] = float(vals.mean())
    return out


@dataclass
class LongRunRatio:
    """``long-run fps = quick fps x exp(log_mean)`` with the spread ``log_sd`` over ``n`` traces."""

    log_mean: float
    log_sd: float
    n: int
    traces: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def fit(cls, table: pd.DataFrame, *, framework: str | None = None, threads: int | None = None,
            exclude_network: Sequence[str] = ()) -> "LongRunRatio":
        """From :func:`trace_ratios` rows, optionally only one framework / thread count and without some
        networks (a held-out network's own trace). :class:`PerfmodelError` when no trace is left."""
        t = table
        if framework is not None:
            t = t[t["framework"].astype(str) == str(framework)]
        if threads is not None:
            t = t[t["threads"].astype(int) == int(threads)]
        if exclude_network:
            t = t[~t["network"].astype(str).isin([str(n) for n in exclude_network])]
        r = t["ratio"].to_numpy(dtype="float64") if len(t) else np.array([])
        r = r[np.isfinite(r) & (r > 0)]
        if not len(r):
            what = ", ".join(f"{k}={v}" for k, v in (("framework", framework), ("threads", threads)) if v is not None)
            raise PerfmodelError("no long-run trace to learn the long-run / start ratio from"
                                 + (f" ({what})" if what else "") + "; record one with `perfmodel trace`")
        lr = np.log(r)
        sd = float(lr.std(ddof=1)) if len(lr) > 1 else float("nan")
        return cls(float(lr.mean()), sd, int(len(lr)), t.to_dict("records"))

    @property
    def ratio(self) -> float:
        return float(np.exp(self.log_mean))

    def predict(self, quick_fps: float, alpha: float = 0.05, quick_rel_se: float = 0.0) -> tuple[float, float, float]:
        """``(long-run fps, lo, hi)``; the bounds are NaN from a single trace (no spread to go on).

        ``quick_rel_se``: the relative standard error of the sample's own throughput (per-image latency
        sd / mean / sqrt(images)), added in quadrature to the traces' spread: with few traces their ratios
        can agree by chance, and the sample's noise is then the larger part.
        """
        q = float(quick_fps)
        if not (np.isfinite(q) and q > 0):
            raise PerfmodelError(f"the quick sample's throughput must be > 0, got {quick_fps!r}")
        se_q = float(quick_rel_se) if np.isfinite(quick_rel_se) and quick_rel_se > 0 else 0.0
        pred = q * self.ratio
        if self.n < 2 or not np.isfinite(self.log_sd):
            return pred, float("nan"), float("nan")
        half = stats.t.ppf(1 - alpha / 2, self.n - 1) * np.sqrt(self.log_sd**2 * (1 + 1 / self.n) + se_q**2)
        return pred, pred * float(np.exp(-half)), pred * float(np.exp(half))

    def to_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "log_sd": self.log_sd, "n_traces": self.n,
                "traces": [{k: v for k, v in t.items()} for t in self.traces]}


@dataclass
class SampleState:
    """What a sample recorded of the machine's state over its own start window (:data:`STATE_FEATURES`;
    NaN where no sensor gave it, with the reason in ``reasons``) and where each figure came from."""

    start_temp_c: float = float("nan")
    temp_rise_c_per_s: float = float("nan")
    freq_mhz: float = float("nan")
    cpu_percent: float = float("nan")
    sources: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def value(self, feature: str) -> float:
        v = getattr(self, feature)
        return float(v) if v is not None and np.isfinite(v) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**{f: self.value(f) for f in STATE_FEATURES}, "sources": dict(self.sources),
                "reasons": dict(self.reasons)}


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (intercept first) and (X'X)^-1 of ``y ~ 1 + X`` (pseudo-inverse: never raises)."""
    A = np.column_stack([np.ones(len(y)), X])
    inv = np.linalg.pinv(A.T @ A)
    return inv @ A.T @ y, inv


def _loo_rmse(X: np.ndarray | None, y: np.ndarray) -> float:
    """Leave-one-trace-out RMSE of ``log r``: each trace predicted from the others (``X`` None: their mean)."""
    err = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        if X is None:
            pred = y[keep].mean()
        else:
            beta, _ = _ols(X[keep], y[keep])
            pred = beta[0] + X[i] @ beta[1:]
        err.append(y[i] - pred)
    return float(np.sqrt(np.mean(np.square(err))))


@dataclass
class StateRatio:
    """``log r = intercept + coef . state`` over ``n`` traces (:data:`STATE_FEATURES` named in ``features``),
    with its leave-one-trace-out RMSE of ``log r`` beside the pooled ratio's on the same traces."""

    features: list[str]
    intercept: float
    coef: list[float]
    resid_sd: float
    xtx_inv: list[list[float]]
    n: int
    cv_rmse: float
    pooled_cv_rmse: float
    traces: list[dict[str, Any]] = field(default_factory=list)
    #: the terms the choice was made among and the subsets tried (:func:`choose_ratio`; empty when fitted directly)
    candidates: list[str] = field(default_factory=list)
    subsets: list[list[str]] = field(default_factory=list)

    @classmethod
    def fit(cls, table: pd.DataFrame, features: Sequence[str]) -> "StateRatio":
        feats = list(features)
        if not feats:
            raise PerfmodelError("a state model needs at least one state feature")
        missing = [f for f in feats if f not in table.columns]
        if missing:
            raise PerfmodelError(f"the traces have no {', '.join(missing)}")
        X = table[feats].to_numpy(dtype="float64")
        r = table["ratio"].to_numpy(dtype="float64")
        keep = np.isfinite(X).all(axis=1) & np.isfinite(r) & (r > 0)
        X, y = X[keep], np.log(r[keep])
        n, p = len(y), len(feats)
        if n < p + 3:
            raise PerfmodelError(f"{n} trace(s) carry {', '.join(feats)}: a state model of {p} term(s) needs "
                                 f"at least {p + 3}")
        beta, inv = _ols(X, y)
        resid = y - (beta[0] + X @ beta[1:])
        sd = float(np.sqrt(resid @ resid / (n - p - 1)))
        return cls(feats, float(beta[0]), [float(b) for b in beta[1:]], sd, inv.tolist(), n,
                   _loo_rmse(X, y), _loo_rmse(None, y), table[keep].to_dict("records"))

    def ratio(self, state: SampleState) -> float:
        x = np.array([state.value(f) for f in self.features])
        if not np.isfinite(x).all():
            raise PerfmodelError(f"the sample has no {', '.join(f for f in self.features if not np.isfinite(state.value(f)))}")
        return float(np.exp(self.intercept + x @ np.array(self.coef)))

    def predict(self, quick_fps: float, state: SampleState, alpha: float = 0.05,
                quick_rel_se: float = 0.0) -> tuple[float, float, float]:
        """``(long-run fps, lo, hi)``: the OLS prediction interval of ``log r`` at the sample's state (Student
        t, ``n - p - 1`` degrees of freedom) with the sample's own relative standard error in quadrature."""
        q = float(quick_fps)
        if not (np.isfinite(q) and q > 0):
            raise PerfmodelError(f"the quick sample's throughput must be > 0, got {quick_fps!r}")
        pred = q * self.ratio(state)
        a = np.concatenate([[1.0], [state.value(f) for f in self.features]])
        lev = float(a @ np.array(self.xtx_inv) @ a)
        se_q = float(quick_rel_se) if np.isfinite(quick_rel_se) and quick_rel_se > 0 else 0.0
        half = stats.t.ppf(1 - alpha / 2, self.n - len(self.features) - 1) * np.sqrt(
            self.resid_sd**2 * (1 + lev) + se_q**2)
        return pred, pred * float(np.exp(-half)), pred * float(np.exp(half))

    def describe(self) -> str:
        terms = " ".join(f"{c:+.4g} x {f}" for f, c in zip(self.features, self.coef))
        return f"log r = {self.intercept:.4g} {terms}"

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "intercept": self.intercept, "coef": dict(zip(self.features, self.coef)),
                "resid_sd": self.resid_sd, "n_traces": self.n, "cv_rmse_log": self.cv_rmse,
                "pooled_cv_rmse_log": self.pooled_cv_rmse, "candidates": list(self.candidates),
                "formula": self.describe()}


@dataclass
class RatioChoice:
    """The estimator of the long-run / start ratio for one sample: ``"state-model"`` (``state`` set) or
    ``"pooled"`` (``pooled`` set), and why."""

    estimator: str
    reason: str
    pooled: LongRunRatio
    state: StateRatio | None = None

    def predict(self, quick_fps: float, sample: SampleState | None, alpha: float = 0.05,
                quick_rel_se: float = 0.0) -> tuple[float, float, float]:
        if self.state is not None and sample is not None:
            return self.state.predict(quick_fps, sample, alpha, quick_rel_se)
        return self.pooled.predict(quick_fps, alpha, quick_rel_se)

    def ratio(self, sample: SampleState | None) -> float:
        return self.state.ratio(sample) if self.state is not None and sample is not None else self.pooled.ratio

    @property
    def n(self) -> int:
        return self.state.n if self.state is not None else self.pooled.n


def _best_subset(X: np.ndarray, y: np.ndarray, subsets: list[list[int]]) -> list[int]:
    """The column subset with the lowest leave-one-out RMSE of ``y ~ 1 + X[:, subset]`` (the smaller first on a tie)."""
    return min(subsets, key=lambda c: (_loo_rmse(X[:, c], y), len(c)))


def _nested_loo_rmse(X: np.ndarray, y: np.ndarray, subsets: list[list[int]]) -> float:
    """Leave-one-out RMSE of the whole procedure: for each trace, the subset chosen on the others
    (:func:`_best_subset`), fitted on them, predicting it."""
    err = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        c = _best_subset(X[keep], y[keep], subsets)
        beta, _ = _ols(X[keep][:, c], y[keep])
        err.append(y[i] - (beta[0] + X[i, c] @ beta[1:]))
    return float(np.sqrt(np.mean(np.square(err))))


def _varies(x: np.ndarray) -> bool:
    x = x[np.isfinite(x)]
    return len(x) >= 2 and float(np.ptp(x)) > 1e-9 * max(1.0, float(np.abs(x).max()))


def choose_ratio(table: pd.DataFrame, sample: SampleState | None, *,
                 min_traces: int = MIN_STATE_TRACES) -> RatioChoice:
    """The state model where it applies (module docstring), else the pooled ratio of ``table``'s traces.

    The state model's terms: the :data:`STATE_FEATURES` that the sample recorded and that at least
    ``min_traces`` traces carry and vary across them: the subset of at most ``(n - 2) // 3`` of them, one of
    :data:`BOARD_FEATURES` among them, with the lowest leave-one-trace-out error; a term whose sample value lies
    more than a quarter of the traces' range outside it is left out (never extrapolated). It is used only when its
    leave-one-trace-out RMSE of ``log r`` (the choice of terms made again without each trace left out) is
    below the pooled ratio's on the same traces. Everything (the choice of terms, its nested error, the pooled
    error it is compared with, the fit shipped) is done on one row set: the traces carrying in full the
    feature set that the most traces carry (the larger set on a tie), said in the reason."""
    pooled = LongRunRatio.fit(table)

    def fallback(why: str) -> RatioChoice:
        return RatioChoice("pooled", why, pooled)

    present = [f for f in BOARD_FEATURES if f in table.columns and _varies(table[f].to_numpy(dtype="float64"))]
    if not present:
        return fallback("the traces carry no temperature or frequency that varies (a flat machine): the pooled ratio")
    if sample is None:
        return fallback("the sample recorded no machine state: the pooled ratio")
    have = [f for f in STATE_FEATURES if f in table.columns and np.isfinite(sample.value(f))
            and _varies(table[f].to_numpy(dtype="float64"))]
    if not any(f in BOARD_FEATURES for f in have):
        why = "; ".join(f"{f}: {sample.reasons[f]}" for f in present if f in sample.reasons)
        return fallback(f"the sample has no {' / '.join(present)} reading, which the traces vary in"
                        + (f" ({why})" if why else "") + ": the pooled ratio")
    outside = []
    for f in list(have):  # a state the traces never saw is not extrapolated to (e.g. a VM's nominal clock)
        col = table[f].to_numpy(dtype="float64")
        lo, hi = np.nanmin(col), np.nanmax(col)
        margin = 0.25 * (hi - lo)
        if not lo - margin <= sample.value(f) <= hi + margin:
            have.remove(f)
            outside.append(f"{f} {sample.value(f):.4g} (traces {lo:.4g}..{hi:.4g})")
    if not any(f in BOARD_FEATURES for f in have):
        return fallback(f"the sample's {', '.join(outside)} lies outside the traces' range: the pooled ratio")
    ratio = table["ratio"].to_numpy(dtype="float64")
    with_ratio = np.isfinite(ratio) & (ratio > 0)

    def rows_of(cols: list[str]) -> np.ndarray:
        return with_ratio & np.isfinite(table[cols].to_numpy(dtype="float64")).all(axis=1)

    # one row set for everything (term choice, its nested error, the pooled error it is compared with, the fit):
    # the traces carrying the feature set (one board feature among it) that the most traces carry in full, the
    # larger set on a tie - chosen from which readings the traces have, never from their ratios
    sets = [list(c) for k in range(1, len(have) + 1) for c in itertools.combinations(have, k)
            if any(f in BOARD_FEATURES for f in c)]
    cols = max(sets, key=lambda c: (int(rows_of(c).sum()), len(c)))
    rows = rows_of(cols)
    carrying = int(rows.sum())
    if carrying < min_traces:
        return fallback(f"only {carrying} trace(s) carry {', '.join(cols)} (a state model needs {min_traces}): "
                        "the pooled ratio")
    sub = table[rows]
    cols = [f for f in cols if _varies(sub[f].to_numpy(dtype="float64"))]  # on the traces used
    if not any(f in BOARD_FEATURES for f in cols):
        return fallback(f"the {carrying} traces carrying the sample's state do not vary in "
                        f"{' / '.join(present)}: the pooled ratio")
    Xk, y = sub[cols].to_numpy(dtype="float64"), np.log(sub["ratio"].to_numpy(dtype="float64"))
    p_max = max(1, (carrying - 2) // 3)
    subsets = [list(c) for k in range(1, p_max + 1) for c in itertools.combinations(range(len(cols)), k)
               if any(cols[j] in BOARD_FEATURES for j in c)]
    best = _best_subset(Xk, y, subsets)
    feats = [cols[j] for j in best]
    try:
        model = StateRatio.fit(sub, feats)  # on the rows it is validated on
    except PerfmodelError as exc:
        return fallback(f"no state model: {exc}: the pooled ratio")
    model.cv_rmse = _nested_loo_rmse(Xk, y, subsets)  # the choice of terms made again without each trace
    model.candidates, model.subsets = list(cols), [[cols[j] for j in c] for c in subsets]
    left_out = f" of {len(table)}" if carrying < len(table) else ""
    cv = (f"leave-one-trace-out RMSE of log ratio {model.cv_rmse:.4f} (terms chosen among {len(subsets)} "
          f"subset(s) without the trace left out) vs the pooled ratio's {model.pooled_cv_rmse:.4f} over the "
          f"same {model.n}{left_out} traces (those carrying {', '.join(cols)})")
    if not model.cv_rmse < model.pooled_cv_rmse:
        return fallback(f"the state model ({', '.join(feats)}) does not beat the pooled ratio: {cv}")
    left = f" ({', '.join(outside)} outside the traces' range, left out)" if outside else ""
    return RatioChoice("state-model", f"modelled from the sample's {', '.join(feats)}{left}: {cv}", pooled, model)


__all__ = ["trace_ratios", "LongRunRatio", "WINDOW_S", "SKIP_S", "STATE_FEATURES", "BOARD_FEATURES", "SampleState",
           "StateRatio", "RatioChoice", "choose_ratio", "MIN_STATE_TRACES"]
