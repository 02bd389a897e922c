"""The report's figures (analogues of the study's Figs. 1-5), drawn with matplotlib's Agg backend.

Every function returns the written PNG path, or a string (the reason) when it has nothing to draw; the
report then shows the reason as text instead of an empty axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.data.provenance import Table, frame_of, provenance_of

DPI = 110
#: Fig. 1 panels: (column, label)
TRACE_SERIES: tuple[tuple[str, str], ...] = (
    ("throughput_fps", "throughput (img/s)"),
    ("cpu_percent", "CPU (%)"),
    ("temperature_c", "temperature (degC)"),
    ("freq_mhz", "frequency (MHz)"),
)
EVENT_FIGURES: tuple[tuple[str, str], ...] = (
    ("instructions", "instructions"),
    ("l1d_accesses", "L1-d accesses"),
    ("l1d_loads", "L1-d loads"),
    ("l2d_accesses", "L2-d accesses"),
    ("branches", "branches"),
    ("branch_misses", "branch misses"),
    ("l1d_refills", "L1-d refills"),
    ("l2d_refills", "L2-d refills"),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # keeps legends placed outside the axes
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _has(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and df[col].notna().any()


def _cell_label(r) -> str:
    return f"{r['framework']}/{r['network']} x{int(r['threads'])}"


def _why(col: str, reasons: dict[str, str], what: str = "not measured") -> str:
    r = reasons.get(col)
    return f"{what}: {r}" if r else f"{what}: no {col} values in the data set"


#: a trace's last interval shorter than this share of the trace's median interval is a partial one (the trace
#: stopped mid-interval): its few images over a short time read as a throughput drop that never happened
PARTIAL_SHARE = 0.5
TRACE_KEYS = ["framework", "network", "threads", "cell_id", "repeat"]


def trace_intervals(samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept, dropped)``: the trace samples without each trace's partial last interval (``dt_s`` below
    :data:`PARTIAL_SHARE` of the trace's median interval), and the dropped rows."""
    if samples is None or samples.empty or "dt_s" not in samples.columns:
        return samples, (samples.iloc[0:0] if samples is not None else pd.DataFrame())
    keys = [k for k in TRACE_KEYS if k in samples.columns]
    drop = []
    for _, g in samples.groupby(keys, sort=False, dropna=False):
        if len(g) < 3:
            continue
        g = g.sort_values("t_rel_s" if "t_rel_s" in g.columns else "dt_s")
        last = g.index[-1]
        median = float(g["dt_s"].iloc[:-1].median())
        if median > 0 and float(g.at[last, "dt_s"]) < PARTIAL_SHARE * median:
            drop.append(last)
    return samples.drop(index=drop), samples.loc[drop]


def fig_timeseries(samples: Table | pd.DataFrame, path: Path, reasons: dict[str, str],
                   max_cells: int = 8) -> Path | str:
    """Fig. 1: throughput / CPU % / temperature / frequency over each trace (one line per cell); a trace's
    partial last interval is left out (:func:`trace_intervals`). A panel whose series is not a real
    measurement says its provenance (that of the :class:`~perfmodel.data.provenance.Table` ``samples``)."""
    if samples is None or samples.empty:
        return "no trace samples (phase 'trace') in the data set"
    provenance = provenance_of(samples)
    samples, _dropped = trace_intervals(frame_of(samples))
    plt = _plt()
    # a panel with nothing to draw (a sensor the machine lacks) is a short strip with its reason
    present = [_has(samples, c) or (c == "cpu_percent" and _has(samples, "system_cpu_percent"))
               for c, _ in TRACE_SERIES]
    ratios = [1.0 if p else 0.3 for p in present]
    fig, axes = plt.subplots(len(TRACE_SERIES), 1, figsize=(8, 1.9 * sum(ratios) + 0.6), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    cells = list(samples.groupby(TRACE_KEYS, sort=True))
    shown = cells[:max_cells]
    for ax, (col, label) in zip(axes, TRACE_SERIES):
        src = col if _has(samples, col) else ("system_cpu_percent" if col == "cpu_percent"
                                              and _has(samples, "system_cpu_percent") else None)
        ax.set_ylabel(label)
        if src is None:
            ax.set_yticks([])
            ax.grid(False)
            ax.set_ylabel(label.replace(" (", "\n("), rotation=0, ha="right", va="center", fontsize=8)
            import textwrap

            ax.text(0.5, 0.5, textwrap.fill(_why(col, reasons), 90), ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="0.3")
            continue
        prov = provenance.get(src)
        if prov and prov != "real":
            # say where a figure comes from when it is not a measurement of a real sensor / counter
            # (e.g. the nominal frequency a VM reports in /proc/cpuinfo is "software", not measured)
            ax.text(1.0, 1.01, f"source: {prov}", ha="right", va="bottom", transform=ax.transAxes, fontsize=7,
                    color="0.35")
        for (fw, net, th, _cid, rep), g in shown:
            g = g.sort_values("t_rel_s")
            ax.plot(g["t_rel_s"], g[src], marker=".", ms=3, lw=1,
                    label=f"{fw}/{net} x{th}" + (f" r{rep}" if rep else ""))
        if src != col:
            ax.set_ylabel(f"{label}\n(system)")
    axes[0].set_title("Fig. 1 - trace of each cell" + (f" (first {max_cells} of {len(cells)})"
                                                       if len(cells) > max_cells else ""))
    axes[-1].set_xlabel("time since the cell's first sample (s)")
    handles, labels = next(((h, lab) for h, lab in (ax.get_legend_handles_labels() for ax in axes) if h), ([], []))
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def _grouped_bars(ax, table: pd.DataFrame, col: str, log: bool | None = None) -> None:
    piv = table.pivot_table(index="network", columns="series", values=col, aggfunc="mean")
    nets, series = list(piv.index), list(piv.columns)
    width = 0.8 / max(1, len(series))
    x = np.arange(len(nets))
    for k, s in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, piv[s].to_numpy(dtype=float), width, label=str(s))
    ax.set_xticks(x, nets, rotation=25, ha="right")
    vals = piv.to_numpy(dtype=float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if log is None:
        log = len(vals) > 1 and vals.max() / vals.min() > 100
    if log:
        ax.set_yscale("log")


def _series_table(cells: pd.DataFrame) -> pd.DataFrame:
    t = cells.copy()
    multi = t["threads"].nunique() > 1
    t["series"] = [f"{f} x{th}" if multi else str(f) for f, th in zip(t["framework"], t["threads"])]
    return t


def fig_cpu_throughput(cells: pd.DataFrame, path: Path, reasons: dict[str, str]) -> Path | str:
    """Fig. 2: average CPU % and throughput per framework x network (grouped bars)."""
    if cells is None or cells.empty:
        return "no per-cell data"
    t = _series_table(cells)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (col, label) in zip(axes, (("cpu_percent", "CPU (%)"), ("throughput_fps", "throughput (img/s)"))):
        ax.set_title(f"Fig. 2 - {label}")
        if not _has(t, col):
            ax.set_yticks([])
            ax.text(0.5, 0.5, _why(col, reasons), ha="center", va="center", transform=ax.transAxes, wrap=True)
            continue
        _grouped_bars(ax, t, col, log=False)
        ax.set_ylabel(label)
    handles, labels = axes[-1].get_legend_handles_labels() if _has(t, "throughput_fps") else \
        axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def fig_events(cells: pd.DataFrame, path: Path) -> Path | str:
    """Fig. 3: per-image event counts per framework x network (log axis where the range is wide)."""
    events = [(e, lab) for e, lab in EVENT_FIGURES if _has(cells, f"{e}_per_image")]
    if cells is None or cells.empty or not events:
        return "no per-image event counts in the data set"
    # per-image counts do not depend on the thread count for simulated counts (one single-thread run per
    # framework x network, attached to every thread count's cell), so plot the lowest thread count only
    tmin = int(cells["threads"].min())
    t = cells[cells["threads"] == tmin].copy()
    t["series"] = t["framework"].astype(str)
    plt = _plt()
    ncol = 2 if len(events) > 1 else 1
    nrow = math.ceil(len(events) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.2 * nrow), squeeze=False)
    for ax, (e, lab) in zip(axes.flat, events):
        _grouped_bars(ax, t, f"{e}_per_image")
        ax.set_title(f"Fig. 3 - {lab} per image ({tmin} thread{'s' if tmin > 1 else ''})", fontsize=9)
        ax.set_ylabel("count per image")
    for ax in list(axes.flat)[len(events):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def fig_power_events(samples: pd.DataFrame, cells: pd.DataFrame, path: Path, reasons: dict[str, str]
                     ) -> Path | str:
    """Fig. 4: power vs event rates, one colour per framework (trace samples, else cells)."""
    src = samples if samples is not None and _has(samples, "power_w") else cells
    if src is None or not _has(src, "power_w"):
        return _why("power_w", reasons, "no power data")
    rates = [(f"{e}_per_s", lab) for e, lab in EVENT_FIGURES if _has(src, f"{e}_per_s")][:4]
    if not rates:
        return "no event rates (events per second) to plot power against"
    plt = _plt()
    fig, axes = plt.subplots(1, len(rates), figsize=(4 * len(rates), 3.4), squeeze=False)
    for ax, (col, lab) in zip(axes.flat, rates):
        for fw, g in src.groupby("framework", sort=True):
            ax.scatter(g[col], g["power_w"], s=14, label=str(fw), alpha=0.8)
        ax.set_xlabel(f"{lab} per second")
        ax.set_ylabel("power (W)")
        ax.set_title(f"Fig. 4 - power vs {lab}/s")
        ax.legend(fontsize=7)
    return _save(fig, path)


#: one marker shape per network in Fig. 5 (colours are the frameworks)
NETWORK_MARKERS = "osD^vP*Xh<>p8Hd"


def throughput_metric(cells: pd.DataFrame) -> str | None:
    """The per-image metric Fig. 5 plots: the first of :data:`EVENT_FIGURES` the cells have."""
    if cells is None:
        return None
    return next((f"{e}_per_image" for e, _ in EVENT_FIGURES if _has(cells, f"{e}_per_image")), None)


def throughput_metric_points(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Fig. 5's points: mean metric and throughput per framework x network x threads, both > 0."""
    g = cells.groupby(["framework", "network", "threads"], sort=True)[[metric, "throughput_fps"]].mean().reset_index()
    g = g.dropna()
    return g[(g[metric] > 0) & (g["throughput_fps"] > 0)]


def loglog_fit(x, y) -> tuple[float, float]:
    """``(slope, intercept)`` of log10(y) on log10(x) (NaN with fewer than 2 distinct x)."""
    lx, ly = np.log10(np.asarray(x, float)), np.log10(np.asarray(y, float))
    if len(lx) < 2 or np.ptp(lx) == 0:
        return math.nan, math.nan
    slope, icpt = np.polyfit(lx, ly, 1)
    return float(slope), float(icpt)


def fig_throughput_metric(cells: pd.DataFrame, path: Path, metric: str | None = None) -> Path | str:
    """Fig. 5: throughput vs a per-image hardware metric, log-log, one panel per thread count; colour =
    framework (with its fitted log-log line), marker shape = network (legend, no point labels)."""
    if cells is None or not _has(cells, "throughput_fps"):
        return "no throughput in the data set"
    metric = metric or throughput_metric(cells)
    if metric is None or not _has(cells, metric):
        return "no per-image hardware metric in the data set"
    g = throughput_metric_points(cells, metric)
    if g.empty:
        return f"no cell with both a positive {metric} and a throughput"
    plt = _plt()
    from matplotlib.lines import Line2D

    threads = sorted(g["threads"].unique())[:3]
    fig, axes = plt.subplots(1, len(threads), figsize=(4.2 * len(threads) + 1.6, 4.0), squeeze=False,
                             sharex=True, sharey=True)
    nets = sorted(g["network"].unique())
    fws = sorted(g["framework"].unique())
    colours = {fw: f"C{i % 10}" for i, fw in enumerate(fws)}
    markers = {n: NETWORK_MARKERS[i % len(NETWORK_MARKERS)] for i, n in enumerate(nets)}
    for ax, th in zip(axes.flat, threads):
        part = g[g["threads"] == th]
        for fw, sub in part.groupby("framework", sort=True):
            for _, r in sub.iterrows():
                ax.scatter(r[metric], r["throughput_fps"], s=30, marker=markers[r["network"]], color=colours[fw],
                           edgecolors="k", linewidths=0.3, alpha=0.9)
            slope, icpt = loglog_fit(sub[metric], sub["throughput_fps"])
            if not math.isnan(slope):
                xs = np.geomspace(sub[metric].min(), sub[metric].max(), 20)
                ax.plot(xs, 10 ** (icpt + slope * np.log10(xs)), color=colours[fw], lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{int(th)} thread{'s' if th > 1 else ''}")
        ax.set_xlabel(f"{metric.replace('_', ' ')} (log)")
    axes.flat[0].set_ylabel("throughput (img/s, log)")
    fw_handles = [Line2D([], [], color=colours[fw], marker="o", lw=1.2, label=fw) for fw in fws]
    net_handles = [Line2D([], [], color="0.4", marker=markers[n], lw=0, label=n) for n in nets]
    first = fig.legend(handles=fw_handles, title="framework (fitted line)", fontsize=7, title_fontsize=7,
                       loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.add_artist(first)
    fig.legend(handles=net_handles, title="network", fontsize=7, title_fontsize=7, loc="upper left",
               bbox_to_anchor=(1.0, 0.62), ncol=1)
    fig.suptitle(f"Fig. 5 - throughput vs {metric} (log-log)", fontsize=10)
    return _save(fig, path)


__all__ = ["loglog_fit", "throughput_metric", "throughput_metric_points", "trace_intervals", "fig_timeseries", "fig_cpu_throughput", "fig_events", "fig_power_events", "fig_throughput_metric"]
