"""The report's figures (analogues of the study's Figs. 1-5), drawn with matplotlib's Agg backend.

Every function returns the written PNG path, or a string (the reason) when it has nothing to draw; the
report then shows the reason as text instead of an empty axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

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


def fig_timeseries(samples: pd.DataFrame, path: Path, reasons: dict[str, str], max_cells: int = 8) -> Path | str:
    """Fig. 1: throughput / CPU % / temperature / frequency over each trace (one line per cell)."""
    if samples is None or samples.empty:
        return "no trace samples (phase 'trace') in the data set"
    plt = _plt()
    fig, axes = plt.subplots(len(TRACE_SERIES), 1, figsize=(8, 2.1 * len(TRACE_SERIES)), sharex=True)
    cells = list(samples.groupby(["framework", "network", "threads", "cell_id", "repeat"], sort=True))
    shown = cells[:max_cells]
    for ax, (col, label) in zip(axes, TRACE_SERIES):
        src = col if _has(samples, col) else ("system_cpu_percent" if col == "cpu_percent"
                                              and _has(samples, "system_cpu_percent") else None)
        ax.set_ylabel(label)
        if src is None:
            ax.set_yticks([])
            ax.grid(False)
            import textwrap

            ax.text(0.5, 0.5, textwrap.fill(_why(col, reasons), 70), ha="center", va="center",
                    transform=ax.transAxes, fontsize=9, color="0.3")
            continue
        prov = samples.attrs.get("provenance", {}).get(src)
        if prov and prov != "real":
            # say where a figure comes from when it is not a measurement of a real sensor / counter
            # (e.g. the nominal frequency a VM reports in /proc/cpuinfo is "software", not measured)
            ax.text(0.99, 0.95, f"source: {prov}", ha="right", va="top", transform=ax.transAxes, fontsize=7,
                    color="0.35")
        for (fw, net, th, _cid, rep), g in shown:
            g = g.sort_values("t_rel_s")
            ax.plot(g["t_rel_s"], g[src], marker=".", lw=1, label=f"{fw}/{net} x{th}" + (f" r{rep}" if rep else ""))
        if src != col:
            ax.set_ylabel(f"{label}\n(system)")
    axes[0].set_title("Fig. 1 - trace of each cell" + (f" (first {max_cells} of {len(cells)})"
                                                       if len(cells) > max_cells else ""))
    axes[-1].set_xlabel("time since the cell's first sample (s)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2, loc="best")
            break
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


def fig_throughput_metric(cells: pd.DataFrame, path: Path, metric: str | None = None) -> Path | str:
    """Fig. 5: throughput vs a per-image hardware metric on a log x axis, points labelled."""
    if cells is None or not _has(cells, "throughput_fps"):
        return "no throughput in the data set"
    if metric is None:
        metric = next((f"{e}_per_image" for e, _ in EVENT_FIGURES if _has(cells, f"{e}_per_image")), None)
    if metric is None or not _has(cells, metric):
        return "no per-image hardware metric in the data set"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    g = cells.groupby(["framework", "network", "threads"], sort=True)[[metric, "throughput_fps"]].mean().reset_index()
    g = g.dropna()
    markers = {t: m for t, m in zip(sorted(g["threads"].unique()), "os^Dv")}
    for fw, sub in g.groupby("framework", sort=True):
        color = None
        for th, part in sub.groupby("threads", sort=True):
            pts = ax.scatter(part[metric], part["throughput_fps"], s=24, marker=markers.get(th, "o"), color=color,
                             label=f"{fw} x{int(th)}")
            color = pts.get_facecolor()[0]
        # label each network once (at its lowest thread count) to keep the plot readable
        first = sub[sub["threads"] == sub["threads"].min()]
        for _, r in first.iterrows():
            ax.annotate(str(r["network"]), (r[metric], r["throughput_fps"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    if len(g) and (g[metric] > 0).all():
        from matplotlib.ticker import LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{metric.replace('_', ' ')} (log)")
    ax.set_ylabel("throughput (img/s)")
    ax.set_title(f"Fig. 5 - throughput vs {metric}")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


__all__ = ["fig_timeseries", "fig_cpu_throughput", "fig_events", "fig_power_events", "fig_throughput_metric"]
