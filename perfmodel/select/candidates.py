"""The candidate table: one row per (board,) framework x network x threads, every figure with its source.

:func:`candidates_from_cells` turns :func:`perfmodel.data.wide_per_cell` output into candidates:

* repeats / runs of the same framework x network x threads are averaged (``n_cells`` counts them);
* each value column of :data:`VALUE_COLUMNS` gets ``<col>_source``: ``measured`` (from the data set),
  ``predicted`` (a model filled it; ``<col>_lo`` / ``<col>_hi`` hold the prediction interval and
  ``<col>_model`` the model), ``derived`` (computed here, e.g. energy per image = power / throughput),
  ``published`` (accuracy from the zoo's reference) or ``unavailable: <reason>`` (the value is NaN);
  and ``<col>_provenance``: the provenance of the measurements behind it (``real``, ``simulated``,
  ``software``, ... or ``predicted``).
* Measured values always win over predictions; a model only fills a NaN. A model that cannot predict a
  candidate (``PerfmodelError``: incompatible features / provenance) leaves the value unavailable with
  the model's message as the reason.
* ``energy_j`` is **energy per image**: measured only when per-image energy records exist
  (``energy_j_n`` > 0 in the cell table), else power / throughput where both are known.
* ``top1`` / ``top5`` are fractions (0.582 = 58.2 %).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.data.cells import is_simulated
from perfmodel.data.provenance import NO_PROVENANCE, Provenance, Table, frame_of, provenance_of
from perfmodel.errors import PerfmodelError

#: figures a candidate carries, with units
VALUE_COLUMNS: dict[str, str] = {
    "throughput_fps": "img/s",
    "latency_ms": "ms",
    "power_w": "W",
    "energy_j": "J/image",
    "temperature_c": "degC",
    "max_rss_mb": "MiB",
    "cpu_percent": "%",
    "top1": "fraction",
    "top5": "fraction",
}

KEY_COLUMNS: tuple[str, ...] = ("board", "framework", "network", "threads")

_SKIP_SUFFIXES = ("_std", "_n")


def _unavailable(reason: str) -> str:
    return f"unavailable: {reason}"


def missing_reasons(long_df: pd.DataFrame) -> dict[str, str]:
    """metric -> the most common ``reason`` of its missing values in long records (for messages)."""
    if long_df is None or "reason" not in long_df.columns or long_df.empty:
        return {}
    miss = long_df.loc[long_df["reason"].astype(str) != "", ["metric", "reason"]]
    out: dict[str, str] = {}
    for metric, grp in miss.groupby("metric", sort=False):
        out[str(metric)] = str(grp["reason"].value_counts().index[0])
    return out


def _model_name(model: Any, i: int) -> str:
    for attr in ("name",):
        v = getattr(model, attr, None)
        if isinstance(v, str) and v:
            return v
    meta = getattr(model, "metadata", None) or {}
    if isinstance(meta, Mapping):
        for k in ("name", "path", "file"):
            if meta.get(k):
                return str(meta[k])
    return f"model {i + 1} ({getattr(model, 'target', '?')})"


def _base_prov(provenance: Provenance, col: str) -> str:
    out = {p for _, leaf in provenance.leaves(col) if leaf for p in str(leaf).split("+") if p and p != "none"}
    return "+".join(sorted(out)) if out else "unknown"


def _accuracy(network: str, accuracy: bool | Mapping) -> tuple[float, float, str, str, str]:
    """(top1, top5, source1, source2, reference) as fractions, sources with reasons."""
    if accuracy is False or accuracy is None:
        r = _unavailable("accuracy not requested")
        return math.nan, math.nan, r, r, ""
    if isinstance(accuracy, Mapping):
        info = accuracy.get(network)
        if info is None:
            r = _unavailable(f"no accuracy given for network {network!r}")
            return math.nan, math.nan, r, r, ""
        top1, top5 = info.get("top1"), info.get("top5")
        ref = str(info.get("accuracy_source") or info.get("accuracy_ref") or "given")
    else:
        if not network:
            r = _unavailable("not a zoo network")
            return math.nan, math.nan, r, r, ""
        from perfmodel.zoo import NETWORKS

        spec = NETWORKS.get(network)
        if spec is None:
            r = _unavailable(f"network {network!r} is not in the zoo")
            return math.nan, math.nan, r, r, ""
        top1, top5 = spec.top1, spec.top5
        ref = spec.accuracy_ref or spec.accuracy_source

    def conv(v):
        if v is None:
            return math.nan
        v = float(v)
        if math.isnan(v):
            return math.nan
        return v / 100.0 if v > 1 else v

    t1, t5 = conv(top1), conv(top5)
    s1 = "published" if not math.isnan(t1) else _unavailable(f"top-1 not reported by {ref}")
    s5 = "published" if not math.isnan(t5) else _unavailable(f"top-5 not reported by {ref}")
    return t1, t5, s1, s5, ref



def join_simulated_cells(cells: Table | pd.DataFrame) -> Table | pd.DataFrame:
    """Timing cells only, with the simulated (valgrind) cells' per-image counts attached
    (:func:`perfmodel.model.features.join_simulated`); a table without simulated cells as it is.

    A valgrind cell holds simulated counts and no timing, so it is not a candidate of its own; its counts
    describe every timing cell of the same framework x network (any thread count), which is what a model
    trained on simulated counts needs to predict them.
    """
    from perfmodel.model.features import join_simulated

    df = frame_of(cells)
    if len(df) and is_simulated(df).all():
        raise PerfmodelError("the data set holds only simulated (valgrind) cells: there is no measured "
                             "throughput to select on")
    return join_simulated(cells, if_mixed=True)

def _candidates_from_cells(
    cells: Table | pd.DataFrame,
    models: Iterable[Any] = (),
    accuracy: bool | Mapping[str, Mapping[str, Any]] = True,
    *,
    reasons: Mapping[str, str] | None = None,
    expand: bool = False,
    alpha: float = 0.05,
    dataset: Any = None,
) -> pd.DataFrame:
    """Candidate table from a per-cell wide table (module docstring): a :class:`~perfmodel.data.provenance.Table`,
    whose provenance the ``<col>_provenance`` columns and the models' provenance checks take (a bare
    DataFrame records none).

    ``models``: objects with ``target`` and ``predict_frame(table, alpha) -> DataFrame[pred, lo, hi]`` (``table``: a
    :class:`~perfmodel.data.provenance.Table` of the rows to predict, with the cells' provenance)
    (:class:`perfmodel.model.ModelFile`). ``accuracy``: True (the zoo's published figures), False, or
    a mapping network -> ``{"top1", "top5", "accuracy_source"}`` (fractions or percent).
    ``reasons``: metric -> why it is missing (:func:`missing_reasons` of the long records).
    ``expand``: add a row for every framework x network x threads combination seen in the data but not
    measured, so that models can fill it (or it is reported as unavailable); such a row takes the
    simulated (valgrind) counts of its framework x network, which do not depend on the thread count.
    ``dataset``: the data set's folder, whose calibrations a model's inputs may need (the streaming
    bandwidth, the GEMM speed: :func:`perfmodel.model.prepare.prepare_for_model`); without it a model's
    training calibration is used where it has one.
    """
    if not isinstance(cells, (Table, pd.DataFrame)):
        raise PerfmodelError(f"expected a per-cell DataFrame, got {type(cells).__name__}")
    cell_df, provenance = frame_of(cells), provenance_of(cells)
    missing = [c for c in ("framework", "network", "threads") if c not in cell_df.columns]
    if missing:
        raise PerfmodelError(f"not a per-cell table: missing column(s) {', '.join(missing)}")
    reasons = dict(reasons or {})
    df = frame_of(join_simulated_cells(cell_df))
    if "board" not in df.columns:
        df = df.assign(board="")
    keys = list(KEY_COLUMNS)
    numeric = [c for c in df.columns if c not in keys and c not in ("run_id", "cell_id", "workload", "repeat")
               and pd.api.types.is_numeric_dtype(df[c])]
    if df.empty:
        cand = pd.DataFrame(columns=keys + ["workload", "n_cells"])
    else:
        g = df.groupby(keys, sort=True, dropna=False)
        cand = g[numeric].mean() if numeric else g.size().to_frame("n_cells").iloc[:, :0]
        cand.insert(0, "n_cells", g.size())
        if "workload" in df.columns:
            cand.insert(0, "workload", g["workload"].first())
        else:
            cand.insert(0, "workload", [f"{f}/{n}" for _, f, n, _ in cand.index])
        cand = cand.reset_index()
    cand["threads"] = cand["threads"].astype("int64") if len(cand) else cand["threads"]
    not_measured = pd.Series(False, index=cand.index)
    if expand and len(cand):
        grid = [(b, f, n, t) for b in sorted(cand["board"].unique()) for f in sorted(cand["framework"].unique())
                for n in sorted(cand["network"].unique()) for t in sorted(cand["threads"].unique())]
        have = set(map(tuple, cand[keys].itertuples(index=False, name=None)))
        extra = [dict(zip(keys, k)) | {"workload": f"{k[1]}/{k[2]}", "n_cells": 0} for k in grid if k not in have]
        if extra:
            cand = pd.concat([cand, pd.DataFrame(extra)], ignore_index=True)
            not_measured = pd.Series(cand["n_cells"] == 0, index=cand.index)
            _share_simulated(cand, not_measured, provenance)
        cand = cand.sort_values(keys, kind="stable")
        not_measured = not_measured.loc[cand.index].reset_index(drop=True)
        cand = cand.reset_index(drop=True)

    n = len(cand)
    for col in VALUE_COLUMNS:
        if col in ("top1", "top5", "energy_j"):
            continue
        src = np.empty(n, dtype=object)
        prov = np.empty(n, dtype=object)
        if col in cand.columns:
            vals = cand[col].astype(float)
            bp = _base_prov(provenance, col)
            why = reasons.get(col, "not measured in this cell")
        else:
            vals = pd.Series(np.nan, index=cand.index)
            bp = ""
            why = reasons.get(col, f"no {col} in the data set")
        for i in range(n):
            if not math.isnan(vals.iloc[i]):
                src[i], prov[i] = "measured", bp
            else:
                src[i] = _unavailable("cell not measured" if not_measured.iloc[i] else why)
                prov[i] = "none"
        cand[col] = vals.to_numpy()
        cand[f"{col}_source"] = src
        cand[f"{col}_provenance"] = prov

    # energy per image: measured per-image records, else derived later
    e_vals = np.full(n, np.nan)
    e_src = np.empty(n, dtype=object)
    e_prov = np.empty(n, dtype=object)
    per_image_energy = "energy_j" in cand.columns and "energy_j_n" in cand.columns
    for i in range(n):
        if per_image_energy and cand["energy_j_n"].iloc[i] > 0 and not math.isnan(cand["energy_j"].iloc[i]):
            e_vals[i], e_src[i], e_prov[i] = cand["energy_j"].iloc[i], "measured", _base_prov(provenance, "energy_j")
        else:
            e_src[i] = _unavailable(reasons.get("power_w", "no per-image energy and no power to derive it from"))
            e_prov[i] = "none"
    cand["energy_j"] = e_vals
    cand["energy_j_source"] = e_src
    cand["energy_j_provenance"] = e_prov

    _apply_models(cand, list(models), alpha, dataset, provenance)
    _derive_energy(cand)

    # accuracy
    acc = [_accuracy(str(net), accuracy) for net in cand["network"]] if n else []
    cand["top1"] = [a[0] for a in acc]
    cand["top5"] = [a[1] for a in acc]
    cand["top1_source"] = [a[2] for a in acc]
    cand["top5_source"] = [a[3] for a in acc]
    cand["accuracy_source"] = [a[4] for a in acc]
    for col in ("top1", "top5"):
        cand[f"{col}_provenance"] = ["external" if s == "published" else "none" for s in cand[f"{col}_source"]]
    return cand



def candidates_from_cells(cells: Table | pd.DataFrame, models: Iterable[Any] = (),
                          accuracy: bool | Mapping[str, Mapping[str, Any]] = True, *,
                          reasons: Mapping[str, str] | None = None, expand: bool = False,
                          alpha: float = 0.05, dataset: Any = None) -> pd.DataFrame:
    """Candidate table from a per-cell wide table: see :func:`_candidates_from_cells`."""
    import warnings

    with warnings.catch_warnings():
        # one companion column per value column is added in turn; pandas warns about fragmentation
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        out = _candidates_from_cells(cells, models, accuracy, reasons=reasons, expand=expand, alpha=alpha,
                                     dataset=dataset)
    return out.copy()  # one consolidated block per dtype

def _share_simulated(cand: pd.DataFrame, added: pd.Series, provenance: Provenance) -> None:
    """Give the ``added`` (not measured) rows the simulated counts of a measured row of the same board x
    framework x network: a valgrind cell's counts describe every thread count of it (:func:`join_simulated_cells`)."""
    cols = [c for c in cand.columns if "simulated" in _base_prov(provenance, c).split("+")]
    if not cols:
        return
    keys = ["board", "framework", "network"]
    have = cand.loc[~added.to_numpy()].dropna(subset=cols, how="all").drop_duplicates(keys).set_index(keys)[cols]
    for i in np.flatnonzero(added.to_numpy()):
        k = tuple(cand.loc[i, keys])
        if k in have.index:
            cand.loc[i, cols] = have.loc[k].to_numpy(dtype="float64")


def _predict_rows(model: Any, rows: Table, alpha: float, dataset: Any) -> tuple[pd.DataFrame, dict]:
    """``(predictions of the rows that could be predicted, {row index: why not})``, the model's inputs
    attached first (:func:`perfmodel.model.prepare.prepare_for_model`)."""
    from perfmodel.model.prepare import predict_each, prepare_for_model

    def prepare(part):
        if hasattr(model, "features") and hasattr(model, "kind"):  # a ModelFile: attach what its features need
            part, _, _ = prepare_for_model(part, model, dataset=dataset)
        return part

    try:
        return predict_each(model, rows, alpha=alpha, prepare=prepare)
    except PerfmodelError as exc:  # the same reason for every row
        return rows.frame.iloc[:0], {idx: str(exc) for idx in rows.frame.index}


def _apply_models(cand: pd.DataFrame, models: Sequence[Any], alpha: float, dataset: Any = None,
                  provenance: Provenance = NO_PROVENANCE) -> None:
    """Fill the candidates' missing figures from ``models``; the rows predicted carry ``provenance`` (that of
    the cell table the candidates are made from) into the models' provenance checks."""
    for i, model in enumerate(models):
        target = getattr(model, "target", None)
        if not isinstance(target, str) or not hasattr(model, "predict_frame"):
            raise PerfmodelError(f"{_model_name(model, i)} is not a fitted model (needs .target and .predict_frame)")
        col = target
        fills = {target}
        if target == "latency_ms":
            fills.add("throughput_fps")
        if target not in VALUE_COLUMNS:
            continue  # a model of a figure selection does not use
        need = np.zeros(len(cand), dtype=bool)
        for c in fills:
            need |= cand[c].isna().to_numpy()
        if not need.any():
            continue
        name = _model_name(model, i)
        rows = Table(cand.loc[need], provenance)
        pred, failed = _predict_rows(model, rows, alpha, dataset)
        for idx, why in failed.items():
            for c in fills:
                if math.isnan(cand.at[idx, c]):
                    cand.at[idx, f"{c}_source"] = _append_reason(cand.at[idx, f"{c}_source"],
                                                                 f"{name} cannot predict it: {why}")
        for idx in [i for i in rows.frame.index if i not in failed]:
            p = pred.loc[idx]
            val, lo, hi = float(p["pred"]), float(p.get("lo", np.nan)), float(p.get("hi", np.nan))
            vals = {col: (val, lo, hi)}
            if target == "latency_ms":
                vals["throughput_fps"] = tuple(1000.0 / v if v and v > 0 else math.nan for v in (val, hi, lo))
            for c, (v, l, h) in vals.items():
                if not math.isnan(cand.at[idx, c]):
                    continue
                if math.isnan(v):
                    cand.at[idx, f"{c}_source"] = _append_reason(
                        cand.at[idx, f"{c}_source"], f"{name} gave no prediction")
                    continue
                cand.at[idx, c] = v
                for suffix, x in (("_lo", l), ("_hi", h)):
                    if f"{c}{suffix}" not in cand.columns:
                        cand[f"{c}{suffix}"] = np.nan
                    cand.at[idx, f"{c}{suffix}"] = x
                if f"{c}_model" not in cand.columns:
                    cand[f"{c}_model"] = ""
                cand.at[idx, f"{c}_model"] = name
                cand.at[idx, f"{c}_source"] = "predicted"
                cand.at[idx, f"{c}_provenance"] = "predicted"


def _append_reason(source: str, extra: str) -> str:
    if isinstance(source, str) and source.startswith("unavailable: "):
        return f"{source}; {extra}"
    return _unavailable(extra)


def _derive_energy(cand: pd.DataFrame) -> None:
    for i in cand.index:
        if not math.isnan(cand.at[i, "energy_j"]):
            continue
        p, t = cand.at[i, "power_w"], cand.at[i, "throughput_fps"]
        if math.isnan(p) or math.isnan(t) or t <= 0:
            parts = []
            if math.isnan(p):
                parts.append(f"power {str(cand.at[i, 'power_w_source']).removeprefix('unavailable: ')}")
            if math.isnan(t) or t <= 0:
                parts.append(f"throughput {str(cand.at[i, 'throughput_fps_source']).removeprefix('unavailable: ')}")
            cand.at[i, "energy_j_source"] = _unavailable("no per-image energy; " + "; ".join(parts))
            continue
        cand.at[i, "energy_j"] = p / t
        cand.at[i, "energy_j_source"] = "derived"
        cand.at[i, "energy_j_provenance"] = (f"power_w: {cand.at[i, 'power_w_source']}, "
                                             f"throughput_fps: {cand.at[i, 'throughput_fps_source']}")
        if "predicted" in (cand.at[i, "power_w_source"], cand.at[i, "throughput_fps_source"]):
            def bound(col, which):
                c = f"{col}_{which}"
                if cand.at[i, f"{col}_source"] == "predicted" and c in cand.columns:
                    return cand.at[i, c]
                return cand.at[i, col]
            for c in ("energy_j_lo", "energy_j_hi"):
                if c not in cand.columns:
                    cand[c] = np.nan
            t_hi, t_lo = bound("throughput_fps", "hi"), bound("throughput_fps", "lo")
            cand.at[i, "energy_j_lo"] = bound("power_w", "lo") / t_hi if t_hi > 0 else math.nan
            cand.at[i, "energy_j_hi"] = bound("power_w", "hi") / t_lo if t_lo > 0 else math.inf


__all__ = ["VALUE_COLUMNS", "KEY_COLUMNS", "candidates_from_cells", "missing_reasons"]
