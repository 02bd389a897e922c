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
"""

from __future__ import annotations

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
    cols = ["framework", "network", "threads", "cell_id", "start_fps", "long_run_fps", "ratio", "trace_s"]
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
        rows.append([str(fw), str(net), int(thr), str(cid), float(s_fps), float(l_fps), float(l_fps / s_fps),
                     float(t[last] + dt[last])])
    return pd.DataFrame(rows, columns=cols)


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


__all__ = ["trace_ratios", "LongRunRatio", "WINDOW_S", "SKIP_S"]
