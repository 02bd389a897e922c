"""Inputs a fitted model needs beyond the measured columns, attached the same way wherever a model predicts
(``perfmodel predict``, ``select`` / ``report`` filling unmeasured cells, the pipeline's check):

* ``fc_stream_ms``: the time to stream a network's FC weights at the machine's calibrated bandwidth
  (:func:`with_stream_time`);
* ``conv_over_l2_mb``: conv weights beyond the model's machine's L2 (:func:`with_l2_overflow`);
* ``macs``: the network's multiply-accumulates (zoo facts);
* the speed calibration of an additive time model: counts priced at the GEMM speed of the data predicted
  (:func:`with_speed_calibration`).

:func:`prepare_for_model` applies what a model's features need and says where each figure came from. What
``perfmodel fit`` did to its data is the model's typed ``preparation``
(:class:`perfmodel.model.schema.Preparation`: its calibrations, L2 size, cache geometry, ...): read here as
attributes, never as free metadata keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError


def needs_l2_overflow(features) -> bool:
    """Whether any of ``features`` uses the conv-weights-over-L2 column (:func:`attach_l2_overflow`)."""
    from perfmodel.model.features import L2_OVERFLOW_COLUMN, base_columns

    return L2_OVERFLOW_COLUMN in base_columns(features or [])


def with_l2_overflow(df, dataset: str | os.PathLike | None, *, explicit_kib: float | None = None,
                     model=None):
    """``(df + conv_over_l2_mb, L2 bytes used, where it came from)``.

    Fitting (no ``model``): ``explicit_kib`` (``--l2-kib``), else the L2 size the data set's runs
    recorded, else this machine's when the data set recorded this CPU (:func:`perfmodel.data.dataset_l2_bytes`),
    else :class:`PerfmodelError` asking for ``--l2-kib``. Predicting with ``model``: always the model's
    ``preparation.l2_bytes`` - its fitted costs are of that machine's cache - and a data set that recorded
    another L2 size gets a warning, not a silent mix; a model that records no L2 size can only use a
    column the data already has, else :class:`PerfmodelError`.
    """
    from perfmodel.data import dataset_l2_bytes
    from perfmodel.model.features import L2_OVERFLOW_COLUMN, attach_l2_overflow

    model_l2 = None if model is None else model.preparation.l2_bytes
    if model is not None and model_l2 is None and L2_OVERFLOW_COLUMN not in df.columns:
        raise PerfmodelError(f"the model uses {L2_OVERFLOW_COLUMN} but records no L2 size (preparation.l2_bytes)")
    if L2_OVERFLOW_COLUMN in df.columns and (model_l2 is None or "network" not in df.columns):
        return df, None, f"the data's own {L2_OVERFLOW_COLUMN} column"
    dataset = None if dataset is None else str(dataset)
    usable = bool(dataset) and not dataset.startswith("armpm:") and Path(dataset).exists()
    if model_l2 is not None:
        source = f"the model's machine: {float(model_l2) / 1024:.0f} KiB L2"
        if usable:
            try:
                theirs, said = dataset_l2_bytes(dataset)
            except PerfmodelError as exc:
                theirs, said = None, str(exc)
            if theirs is not None and int(theirs) != int(model_l2):
                from rich.console import Console
                from rich.markup import escape

                Console(stderr=True).print(
                    f"[yellow]warning: {escape(dataset)} was timed with a {theirs / 1024:.0f} KiB L2 ({escape(said)}); "
                    f"the model's costs are of a {float(model_l2) / 1024:.0f} KiB L2 machine: a cross-machine "
                    "prediction", highlight=False)
        return attach_l2_overflow(df, float(model_l2)), float(model_l2), source
    explicit = None if explicit_kib is None else 1024.0 * float(explicit_kib)
    if usable or explicit is not None:
        l2, source = dataset_l2_bytes(dataset or ".", explicit=explicit)
    else:
        l2, source = None, "this data records no machine (a CSV or an ARMPM file)"
    if l2 is None:
        raise PerfmodelError(f"the conv-weights-over-L2 term needs the L2 cache size of the machine the data was "
                             f"timed on: {source}. Give --l2-kib (e.g. 512 for a Cortex-A53 cluster's L2)")
    return attach_l2_overflow(df, l2), l2, source


def needs_stream_time(features) -> bool:
    """Whether any of ``features`` uses the weight-streaming time ``fc_stream_ms``."""
    from perfmodel.model.features import base_columns

    return "fc_stream_ms" in base_columns(features or [])


#: how a figure's source begins when it comes from the data set's own calibrations (:func:`_own_calibrations`)
OWN_CALIBRATIONS = "calibrations of"


def _own_calibrations(dataset: str | os.PathLike | None) -> tuple[list, str | None]:
    """``(calibrations, source)`` of a data set folder (:func:`perfmodel.data.dataset_calibrations`), or
    ``([], None)`` when ``dataset`` is not one (none given, an ``armpm:`` file, a records file, a CSV)."""
    from perfmodel.data import dataset_calibrations

    dataset = None if dataset is None else str(dataset)
    if not dataset or dataset.startswith("armpm:") or not Path(dataset).is_dir():
        return [], None
    cals = dataset_calibrations(dataset)
    return cals, f"{OWN_CALIBRATIONS} {dataset} ({len(cals)})"


def with_stream_time(df, dataset: str | os.PathLike | None, fallback: dict | None = None, *,
                     measured: dict | None = None):
    """``(df + fc_stream_ms, {threads: GB/s} used, where it came from)``: the bandwidth ``measured`` now (a
    quick sample's calibration, ``{threads: GB/s}``; ``{}`` when measuring failed) when it covers the rows'
    thread counts, else that of the data set's own calibrations (:func:`perfmodel.data.dataset_calibrations`)
    when they cover them, else ``fallback`` (a model's training calibration; the source says why), else
    :class:`PerfmodelError` saying how to get one. A frame that has ``fc_stream_ms`` already (a CSV) is
    returned as it is. One policy for ``perfmodel fit`` / ``predict`` (data sets and quick samples) and the
    pipeline's prediction check."""
    import pandas as pd

    from perfmodel.data import frame_of, stream_bandwidth
    from perfmodel.model.features import attach_stream_time

    if "fc_stream_ms" in df.columns:
        return df, None, "the data's own fc_stream_ms column"
    bw, source = {}, ""
    cals, own = _own_calibrations(dataset)
    if own is not None:
        bw, source = stream_bandwidth(cals), own
    need = set()
    if "threads" in df.columns:
        given = frame_of(df)["threads"]
        thr = pd.to_numeric(given, errors="coerce")
        bad = ~(thr.notna() & (thr == thr.round()) & (thr > 0))
        if bad.any():
            raise PerfmodelError(f"the weight-streaming time needs a whole thread count (> 0) in every row: "
                                 f"{int(bad.sum())} row(s) have {', '.join(str(v) for v in given[bad].unique()[:3])}")
        need = {int(t) for t in pd.unique(thr)}
    if measured is not None:
        now = {int(k): float(v) for k, v in measured.items()}
        if now and need <= set(now):
            return attach_stream_time(df, now), now, "measured now (" + ", ".join(
                f"{t} thr {g:.1f} GB/s" for t, g in sorted(now.items()) if t in need) + ")"
        failed = f"measuring it now gave no figure for thread count(s) {', '.join(map(str, sorted(need - set(now))))}"
    else:
        failed = None
    if bw and fallback and not need <= set(bw):
        lacking = ", ".join(map(str, sorted(need - set(bw))))
        bw = {int(k): float(v) for k, v in fallback.items()}
        source = f"the model's training calibration (the calibrations of {dataset} lack thread count(s) {lacking})"
    elif not bw and fallback:
        bw = {int(k): float(v) for k, v in fallback.items()}
        source = "the model's training calibration (this data has none: the machines' bandwidths may differ)"
    if bw and failed:
        source += f" ({failed})"
    if not bw:
        raise PerfmodelError(
            "the weight-streaming time fc_stream_ms needs the machine's streaming bandwidth and this data has no "
            "calibration: `perfmodel collect` measures one (unless --no-calibrate); for a data set collected "
            "without, run `perfmodel calibrate --attach DATASET --note '...'` on the same machine")
    return attach_stream_time(df, bw), bw, source


def training_speed(dataset: str | os.PathLike | None) -> tuple[dict[int, float], str]:
    """``({threads: GEMM GFLOP/s}, source)`` of a training data set's calibrations (``{}`` when none)."""
    from perfmodel.data import gemm_speed

    cals, own = _own_calibrations(dataset)
    if own is None:
        return {}, "no calibration (not a data set folder)"
    return gemm_speed(cals), own


def with_speed_calibration(df, model, *, dataset: str | os.PathLike | None = None,
                           now_gflops: dict | None = None):
    """``(df, info)``: ``df`` with the fitted terms' counts priced at the machine's speed now, when the model
    is an additive time model (``overhead-linear``) that stored its training data's GEMM speed
    (``preparation.gemm_gflops``) and the prediction's data has one for its thread counts (``now_gflops``, a
    quick sample's calibration, else the data set's calibrations). ``info`` = ``{"applied": bool,
    "ratio": {threads: train / now}, "source" or "reason"}``; without either speed nothing is scaled and
    the reason says the prediction is of the machine as it was when the model was trained.

    A shared VM's speed drifts (this one by -19 % between a morning and an afternoon calibration); the
    fitted costs per instruction are of the training hour. :func:`perfmodel.model.features.speed_scaled`.
    """
    import numpy as np
    import pandas as pd

    from perfmodel.data import frame_of
    from perfmodel.model.features import FeatureError, KNOWN_TIME_COLUMNS, speed_scaled

    as_trained = "predicting the machine as it was when the model was trained"
    train = dict(model.preparation.gemm_gflops or {})
    if model.kind != "overhead-linear":
        return df, {"applied": False, "reason": f"a {model.kind} model is not an additive time model"}
    if not train:
        return df, {"applied": False, "reason": "the model stores no training GEMM speed (fitted on data without a "
                                                f"calibration, or before perfmodel stored it): {as_trained}"}
    if now_gflops is not None:  # a quick sample's own measurement ({} when it failed)
        now, source = {int(k): float(v) for k, v in now_gflops.items()}, "measured now"
        where = "the calibration measured now"
    else:
        now, source = training_speed(dataset)
        where = "the data's calibrations"
    thr = pd.to_numeric(frame_of(df)["threads"], errors="coerce").to_numpy(dtype="float64") if "threads" in df.columns \
        else np.array([np.nan])
    if not (np.isfinite(thr) & (thr == np.round(thr))).all():
        return df, {"applied": False, "reason": f"rows without a whole thread count: {as_trained}"}
    need = {int(t) for t in thr}
    lacking = sorted(need - (set(now) & set(train)))
    if not now or lacking:
        return df, {"applied": False, "reason": f"no GEMM speed for thread count(s) {lacking or sorted(need)} in "
                                                f"{where}: {as_trained}"}
    ratio = {t: train[t] / now[t] for t in sorted(need)}
    # the model's own known-time terms (coefficient 1) are not rescaled
    known = tuple((model.training or {}).get("fixed_coefficients") or {}) or KNOWN_TIME_COLUMNS
    try:
        out, _ = speed_scaled(df, model.features, ratio, known=known)
    except FeatureError as exc:
        return df, {"applied": False, "reason": f"{exc}: {as_trained}"}
    info = {"applied": True, "ratio": ratio, "source": f"GEMM speed: model {', '.join(f'{t}: {train[t]:.0f}' for t in sorted(need))} "
            f"GFLOP/s vs {source} {', '.join(f'{t}: {now[t]:.0f}' for t in sorted(need))}"}
    odd = {t: r for t, r in ratio.items() if not 0.5 <= r <= 2.0}
    if odd:  # a drifting VM moves by 10-30 %; 2x is another machine or a broken calibration
        info["warning"] = (f"speed ratio {', '.join(f'{t} thr {r:.2f}' for t, r in odd.items())} is far from 1: "
                           "the data may be of another machine than the model's (its costs do not transfer by "
                           "a GEMM ratio) or a calibration failed")
    return out, info


def speed_ratio_text(speed: dict) -> str:
    """The per-thread-count ratios of :func:`with_speed_calibration`'s info, e.g. ``1 thr 1.184, 2 thr 1.170``."""
    return ", ".join(f"{t} thr {r:.3f}" for t, r in speed["ratio"].items())


def _geometry_text(g: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(g.items())) if g else "not recorded"


def counts_geometry(sources: Sequence) -> dict | None:
    """The simulated cache geometry (valgrind ``--I1/--D1/--LL``) of the valgrind cells of data set folders
    ``sources`` (None when none records one: a records file, a CSV, an ARMPM file, an old data set);
    :class:`PerfmodelError` when they differ (counts of two cache geometries are not one feature)."""
    from perfmodel.data import Dataset

    found: dict[str, dict] = {}
    for src in sources:
        src = str(src)
        if src.startswith("armpm:") or not (Path(src) / "dataset.json").is_file():
            continue
        g = Dataset.open(src).compat().get("cache_geometry")
        if g:
            found[src] = dict(g)
    if len({json.dumps(g, sort_keys=True) for g in found.values()}) > 1:
        raise PerfmodelError("the simulated counts come from data sets simulated with different caches: "
                             + "; ".join(f"{k}: {_geometry_text(g)}" for k, g in found.items()))
    return next(iter(found.values()), None)


def check_counts_geometry(model, geometry: dict | None, where: str, *, option: str = "--counts-from") -> None:
    """Refuse to price simulated counts of another cache geometry than the model's (``preparation.
    simulated_geometry``, written by ``perfmodel fit``); a model or data that records none is not checked."""
    want = model.preparation.simulated_geometry
    simulated = [c for c, p in model.column_provenance.items() if p and "simulated" in p]
    if not want or not geometry or not simulated:
        return
    if dict(want) != dict(geometry):
        raise PerfmodelError(
            f"the model's simulated counts were simulated with caches {_geometry_text(want)}; those of {where} "
            f"with {_geometry_text(geometry)}: a count of one geometry is not the feature of another. Give "
            f"{option} DATASET (valgrind cells simulated with the model's caches)")


def prepare_for_model(df, model, *, dataset: str | os.PathLike | None = None, now_gflops: dict | None = None,
                      now_bandwidth: dict | None = None,
                      counts_from: Sequence | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """``(df to predict, df as measured, notes)``: ``df`` with the columns ``model``'s features need attached
    (``macs``, ``fc_stream_ms``, ``conv_over_l2_mb``) and, for an additive time model, its counts priced at
    the machine's speed now. ``now_gflops`` / ``now_bandwidth``: ``{threads: figure}`` of a calibration
    measured now (a quick sample's; ``{}`` when it failed), used before the data set's calibrations.
    ``df as measured`` is the frame before the pricing (for the training-range check). ``notes``: ``stream_bandwidth_from``,
    ``l2_from``, ``speed_calibration`` (the :func:`with_speed_calibration` info) where they apply.
    Raises :class:`PerfmodelError` when a needed input cannot be had (e.g. no bandwidth calibration)."""
    from perfmodel.model.features import attach_macs, base_columns

    notes: dict[str, Any] = {}
    sources = list(counts_from) if counts_from is not None else ([dataset] if dataset is not None else [])
    if sources:
        check_counts_geometry(model, counts_geometry(sources), ", ".join(map(str, sources)))
    if ("macs" in base_columns(model.features) or "macs" in model.column_provenance) and "macs" not in df.columns:
        df = attach_macs(df)
    if needs_stream_time(model.features) and "fc_stream_ms" not in df.columns:
        df, _, notes["stream_bandwidth_from"] = with_stream_time(
            df, dataset, model.preparation.stream_bandwidth_gbps, measured=now_bandwidth)
    if needs_l2_overflow(model.features):
        df, _, notes["l2_from"] = with_l2_overflow(df, dataset, model=model)
    as_measured = df
    if model.kind == "overhead-linear":
        df, notes["speed_calibration"] = with_speed_calibration(df, model, dataset=dataset, now_gflops=now_gflops)
    return df, as_measured, notes


def predict_each(model, df, *, alpha: float = 0.05, provenance=None, prepare=None):
    """``(predictions, {row index: why not})``: ``model.predict_frame`` of the rows of ``df`` (a
    :class:`~perfmodel.data.provenance.Table`, whose provenance every row keeps, or a DataFrame; ``prepare``:
    an optional callable applied to the rows first, e.g. :func:`prepare_for_model`), all together, and one
    by one when that fails, so that one row's missing figure does not cost the other rows their
    predictions. The predictions are indexed like ``df`` and hold only the rows that could be predicted.
    When no row can be predicted for the same reason the error is raised as it is (a model / data
    mismatch, not a row's problem)."""
    import pandas as pd

    from perfmodel.data import as_table, frame_of
    from perfmodel.data.provenance import like

    def one_go(part):
        part = prepare(part) if prepare is not None else part
        kw = {"alpha": alpha} if provenance is None else {"alpha": alpha, "provenance": provenance}
        out = model.predict_frame(part, **kw)
        return out.set_axis(list(frame_of(part).index)) if len(out) == len(part) else out

    try:
        return one_go(df), {}
    except PerfmodelError as exc:
        if len(df) <= 1:
            raise
        first = exc
    preds, failed = [], {}
    table = as_table(df)
    for idx in table.frame.index:
        row = like(df, table.rows([idx]))
        try:
            preds.append(one_go(row))
        except PerfmodelError as exc:
            failed[idx] = str(exc)
    if not preds and len(set(failed.values())) == 1:
        raise first
    return (pd.concat(preds) if preds else frame_of(df).iloc[:0]), failed


__all__ = ["OWN_CALIBRATIONS", "check_counts_geometry", "counts_geometry", "needs_l2_overflow", "needs_stream_time",
           "predict_each", "prepare_for_model", "speed_ratio_text", "training_speed", "with_l2_overflow",
           "with_speed_calibration", "with_stream_time"]
