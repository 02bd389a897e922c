"""Generated figure captions: what each figure shows and a one-line finding computed from the data it draws.

Every function takes the same tables the figure is drawn from (:mod:`.figures`) and returns text; nothing
here is written by hand for a particular data set. A figure with too little data for a finding says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import figures
from .correlate import correlation_table, fisher_ci


def _n(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def _ci(r: float, lo: float, hi: float) -> str:
    return f"r = {r:+.2f} (95 % CI {lo:+.2f} to {hi:+.2f})"


def _thr(th) -> str:
    return f"{int(th)} thread{'s' if int(th) != 1 else ''}"


def what_fig1(samples: pd.DataFrame) -> str:
    kept, dropped = figures.trace_intervals(samples)
    n = kept.groupby([k for k in figures.TRACE_KEYS if k in kept.columns]).ngroups if len(kept) else 0
    text = (f"Throughput, CPU %, temperature and frequency per interval of {n} long-run trace"
            f"{'s' if n != 1 else ''}.")
    if len(dropped):
        text += (f" The partial last interval of {len(dropped)} trace{'s' if len(dropped) != 1 else ''} "
                 f"({', '.join(f'{d:.3g} s' for d in dropped['dt_s'])}, shorter than "
                 f"{figures.PARTIAL_SHARE:.0%} of the trace's median interval) is left out: its few images "
                 "over a short time would read as a throughput drop.")
    return text


def finding_fig1(samples: pd.DataFrame) -> str:
    """Median throughput per trace and the change from its first to its last tenth."""
    kept, _ = figures.trace_intervals(samples)
    if kept is None or kept.empty or "throughput_fps" not in kept.columns or not kept["throughput_fps"].notna().any():
        return "No throughput in the traces."
    parts, worst = [], None
    for (fw, net, th, _cid, _rep), g in kept.groupby(figures.TRACE_KEYS, sort=True):
        g = g.sort_values("t_rel_s").dropna(subset=["throughput_fps"])
        if len(g) < 2:
            continue
        k = max(1, len(g) // 10)
        first, last = g["throughput_fps"].iloc[:k].mean(), g["throughput_fps"].iloc[-k:].mean()
        change = (last / first - 1) * 100 if first > 0 else math.nan
        parts.append(f"{fw}/{net} x{int(th)} {_n(float(g['throughput_fps'].median()))} img/s")
        if not math.isnan(change) and (worst is None or abs(change) > abs(worst[0])):
            worst = (change, f"{fw}/{net} x{int(th)}")
    if not parts:
        return "Too few intervals per trace for a finding."
    text = "Median throughput: " + "; ".join(parts) + "."
    if worst is not None:
        text += (f" Last tenth vs first tenth of each trace: at most {worst[0]:+.1f} % ({worst[1]})"
                 + (" - no sustained drop." if worst[0] > -5 else " - a sustained drop (throttling or contention)."))
    return text


def what_fig2(cells: pd.DataFrame) -> str:
    return (f"Mean CPU % and throughput of each framework x network x thread count ({len(cells)} cells, "
            "repeats averaged).")


def fastest_counts(cells: pd.DataFrame, col: str = "throughput_fps", best: str = "max"
                   ) -> dict[int, tuple[int, list[tuple[str, int]]]]:
    """Per thread count: ``(networks, [(framework, networks where it is the best), ...])``, most wins first."""
    out: dict[int, tuple[int, list[tuple[str, int]]]] = {}
    if cells is None or cells.empty or col not in cells.columns:
        return out
    means = cells.groupby(["threads", "network", "framework"])[col].mean().dropna().reset_index()
    for th, g in means.groupby("threads", sort=True):
        winners = []
        for _net, n in g.groupby("network", sort=True):
            top = n[col].max() if best == "max" else n[col].min()
            tied = sorted(n.loc[np.isclose(n[col], top, rtol=1e-9, atol=0), "framework"].astype(str))
            winners.append(tied[0] if len(tied) == 1 else " = ".join(tied) + " (tie)")
        wins = pd.Series(winners).value_counts()
        out[int(th)] = (int(g["network"].nunique()),
                        sorted(((str(f), int(c)) for f, c in wins.items()), key=lambda x: (-x[1], x[0])))
    return out


def finding_fig2(cells: pd.DataFrame) -> str:
    counts = fastest_counts(cells)
    if not counts:
        return "No throughput per cell."
    parts = []
    for th, (nets, wins) in counts.items():
        parts.append(f"at {_thr(th)} " + ", ".join(f"{fw} on {k}" for fw, k in wins) + f" of {nets} networks")
    return "Fastest framework: " + "; ".join(parts) + "."


def what_fig3(cells: pd.DataFrame) -> str:
    events = [lab for e, lab in figures.EVENT_FIGURES if figures._has(cells, f"{e}_per_image")]
    tmin = int(cells["threads"].min()) if len(cells) else 1
    return (f"Per-image counts of {', '.join(events)} per framework x network at {_thr(tmin)} (counts per image "
            "do not depend on the thread count for simulated counts).")


def finding_fig3(cells: pd.DataFrame) -> str:
    event = next((e for e, _ in figures.EVENT_FIGURES if figures._has(cells, f"{e}_per_image")), None)
    if event is None:
        return "No per-image counts."
    col = f"{event}_per_image"
    t = cells[cells["threads"] == cells["threads"].min()]
    counts = fastest_counts(t, col, best="min")
    if not counts:
        return f"No {col} values."
    nets, wins = next(iter(counts.values()))
    per_net = t.groupby(["network", "framework"])[col].mean().dropna().groupby("network").agg(["min", "max"])
    spread = (per_net["max"] / per_net["min"]).replace([np.inf], np.nan).dropna()
    text = (f"Fewest {event.replace('_', ' ')} per image: " + ", ".join(f"{fw} on {k}" for fw, k in wins)
            + f" of {nets} networks.")
    if len(spread):
        text += (f" Between frameworks the count differs by up to {spread.max():.2f}x ({spread.idxmax()}), "
                 f"median {spread.median():.2f}x.")
    return text


def what_fig4(samples: pd.DataFrame, cells: pd.DataFrame) -> str:
    src = samples if samples is not None and figures._has(samples, "power_w") else cells
    level = "trace intervals" if src is samples else "cells"
    return f"Power against event rates (events per second), one colour per framework, over {len(src)} {level}."


def finding_fig4(samples: pd.DataFrame, cells: pd.DataFrame) -> str:
    src = samples if samples is not None and figures._has(samples, "power_w") else cells
    if src is None or not figures._has(src, "power_w"):
        return "No power data."
    rates = [f"{e}_per_s" for e, _ in figures.EVENT_FIGURES if figures._has(src, f"{e}_per_s")][:4]
    if not rates:
        return "No event rates."
    t = correlation_table(src, "power_w", rates, by="framework").dropna(subset=["pearson_r"])
    if t.empty:
        return "Too few samples with power and an event rate for a correlation."
    parts = []
    for fw, g in t.groupby("group", sort=True):
        r = g.loc[g["pearson_r"].abs().idxmax()]
        parts.append(f"{fw}: {r['feature']} {_ci(r['pearson_r'], r['ci_low'], r['ci_high'])}, n = {int(r['n'])}")
    return "Event rate that tracks power most strongly: " + "; ".join(parts) + "."


def what_fig5(cells: pd.DataFrame) -> str:
    metric = figures.throughput_metric(cells)
    return (f"Throughput against {metric} on log-log axes, one panel per thread count; colour = framework with "
            "its least-squares line in log-log, marker = network.")


def finding_fig5(cells: pd.DataFrame) -> str:
    metric = figures.throughput_metric(cells)
    if metric is None or not figures._has(cells, "throughput_fps"):
        return "No per-image metric and throughput to compare."
    g = figures.throughput_metric_points(cells, metric)
    if len(g) < 3:
        return f"Only {len(g)} point(s): too few for a correlation."
    lx, ly = np.log10(g[metric].to_numpy(float)), np.log10(g["throughput_fps"].to_numpy(float))
    if np.ptp(lx) == 0 or np.ptp(ly) == 0:
        return "The metric or the throughput is constant over the points: no correlation."
    r = float(np.corrcoef(lx, ly)[0, 1])
    lo, hi = fisher_ci(r, len(g))
    strength = "strongly" if abs(r) >= 0.8 else ("moderately" if abs(r) >= 0.5 else "weakly")
    text = (f"log throughput tracks log {metric} {strength}: {_ci(r, lo, hi)}, n = {len(g)} framework x network x "
            "thread points.")
    panels = []
    for th, part in g.groupby("threads", sort=True):
        slopes = []
        for fw, sub in part.groupby("framework", sort=True):
            slope, _ = figures.loglog_fit(sub[metric], sub["throughput_fps"])
            if not math.isnan(slope):
                slopes.append(f"{fw} {slope:+.2f}")
        if slopes:
            panels.append(f"{_thr(th)}: " + ", ".join(slopes))
    if panels:
        text += " Fitted log-log slopes (lines): " + "; ".join(panels) + "."
    return text


__all__ = ["fastest_counts", "finding_fig1", "finding_fig2", "finding_fig3", "finding_fig4", "finding_fig5",
           "what_fig1", "what_fig2", "what_fig3", "what_fig4", "what_fig5"]
