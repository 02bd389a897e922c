"""The library parts of ``perfmodel pipeline`` (the main job: collect -> fit -> select -> report; the
command in :mod:`perfmodel.cli.pipeline` runs these steps and prints between them).

- :func:`training_table`: the campaign's cells with the best per-image work figure there is (hardware
  instruction counts, else the reference data set's simulated counts of the frameworks whose library
  version matches, else MACs);
- :func:`fit_throughput_model`: the ``overhead-linear`` throughput model on it (leave-one-network-out CV),
  written to ``<out>/models/throughput.json``;
- :func:`prediction_check`: that model's predictions for the campaign's measured cells;
- :func:`select_on_campaign`, :func:`pipeline_report`: the selection and the report with the reference's
  counts and the shipped traces as labelled fallbacks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.workflows import Say, silent
from perfmodel.workflows.defaults import default_traces, reference_dataset, trained_dir

PAPER_NETWORKS = "squeezenet1_1,googlenet,resnet50"
ALL_FRAMEWORKS = "tensorflow,litert,onnxruntime,opencv"


@functools.lru_cache(maxsize=2)
def _reference_records(reference: str):
    """The reference data set's long records, read (and validated) once per run of the pipeline."""
    from perfmodel.data import read_dataset

    return read_dataset(reference)


def simulated_records(reference: Path, frameworks=None):
    """The reference's simulated (valgrind) cells: per-image counts, no timing; ``frameworks``: only these."""
    from perfmodel.data import is_simulated

    ref = _reference_records(str(reference))
    sim = ref[is_simulated(ref)]
    return sim if frameworks is None else sim[sim["framework"].astype(str).isin(list(frameworks))]


def _has_values(table, col: str, provenance: str | None = None) -> bool:
    if col not in table.columns or not table.frame[col].notna().all():
        return False
    if provenance is None:
        return True
    return provenance in str(table.provenance.get(col) or "").split("+")


def check_reference(reference: Path | None) -> Path | None:
    """The reference data set to use: ``reference``, else the checkout's (None when there is none);
    PerfmodelError for a folder that is not a data set."""
    ref = reference if reference is not None else reference_dataset()
    if ref is not None and not (Path(ref) / "dataset.json").is_file():
        raise PerfmodelError(f"reference data set {ref} does not exist (no dataset.json)")
    return ref


def training_table(campaign_long, campaign_meta: dict, reference: Path | None
                   ) -> tuple[Any, str, str, list[str] | None, list[str]]:
    """``(table to fit on (a :class:`~perfmodel.data.Table`), per-image work column, sentence saying where the
    work figures came from,
    frameworks whose reference counts are used (None: not on the reference path), notes)``.

    The reference's simulated counts are taken per framework (:func:`perfmodel.versions.counts_applicability`,
    the policy a quick sample follows too): a framework whose library version (here or in the campaign)
    differs from the reference's loses its counts, named with both versions; the others keep theirs."""
    from perfmodel.data import dataset_metadata, wide_per_cell
    from perfmodel.model.features import attach_macs, join_simulated
    from perfmodel.versions import counts_applicability

    cells = wide_per_cell(campaign_long)
    if _has_values(cells, "instructions_per_image", "real"):
        return cells, "instructions_per_image", "hardware instruction counts measured by this campaign", None, []
    notes: list[str] = []
    if reference is not None:
        ref_meta, ref_campaign = dataset_metadata(reference)
        frameworks = sorted(set(cells.frame["framework"].astype(str))
                            | set((ref_campaign or {}).get("frameworks") or []))
        fit = counts_applicability(ref_meta, frameworks, here_meta=campaign_meta)
        notes = [f"{fw}: the reference's simulated counts do not apply ({'; '.join(rs)})"
                 for fw, rs in fit.refused.items()] + fit.notes()
        why = "the reference's simulated counts do not apply to any framework: " + "; ".join(fit.reasons())
        if fit.usable:
            ref_long = _reference_records(str(reference))
            ref_cells = wide_per_cell(ref_long[ref_long["framework"].astype(str).isin(fit.usable)])
            try:
                joined = join_simulated(ref_cells)
            except Exception as exc:  # noqa: BLE001 - no simulated cells: fall through to MACs
                why = f"reference data set has no usable simulated counts ({exc})"
            else:
                joined = joined.rows(joined.frame["instructions_per_image"].notna())
                if len(joined) >= 8:
                    used = sorted(set(joined.frame["framework"].astype(str)))
                    left = [f for f in frameworks if f not in used]
                    return (joined, "instructions_per_image",
                            f"valgrind-simulated instruction counts of the reference data set {reference}"
                            + (f" ({', '.join(used)}; not {', '.join(left)})" if left else ""), used, notes)
                why = "reference data set has too few cells with simulated counts"
    else:
        why = "no reference data set (datasets/reference) next to this perfmodel"
    return attach_macs(cells), "macs", f"MACs of the networks (no instruction counts: {why})", None, notes


@dataclass
class PipelineFit:
    """The pipeline's throughput model (None when it could not be fitted, said), where its per-image work
    came from, and its CV figures (``base``: the MACs-only baseline's row)."""

    model: Any = None
    path: Path | None = None
    work: str | None = None
    work_note: str = ""
    counts_frameworks: list[str] | None = None
    count_notes: list[str] = field(default_factory=list)

    @property
    def cv(self) -> dict:
        return self.model.cv if self.model is not None else {}

    @property
    def base(self) -> dict:
        return next((r for r in self.cv.get("results", []) if str(r.get("model", "")).startswith("baseline: MACs")),
                    {})


def fit_throughput_model(long_df, meta: dict, ref: Path | None, out: Path, say: Say = silent) -> PipelineFit:
    """Fit the throughput model on the campaign ``long_df`` (``meta``: its metadata) and write it to
    ``out/models/throughput.json``: ``fps = 1000 / (overhead + t)``, ``t`` an additive CPI stack (work x
    (framework, threads) + L1-d refills where counted + the FC weights' streaming time at the calibrated
    bandwidth; kind ``overhead-linear``), plain log-linear where the table lacks the read / pre-process
    times. A model that cannot be fitted is said, not raised."""
    import numpy as np
    import pandas as pd

    from perfmodel.data import dataset_calibrations, gemm_speed, stream_bandwidth
    from perfmodel.model import fit_model, save_model
    from perfmodel.model.features import (OVERHEAD_COLUMNS, additive_throughput_terms, attach_stream_time,
                                          per_thread_terms, throughput_terms)
    from perfmodel.model.schema import Preparation

    res = PipelineFit()
    model = None
    try:
        train, res.work, res.work_note, res.counts_frameworks, res.count_notes = training_table(long_df, meta, ref)
        work = res.work
        for note in res.count_notes:
            say(f"note: {note}", warn=True)
        # latency = read + pre-process overhead + inference, the inference time an additive CPI stack
        # (work x (framework, threads) + L2-d refills where counted); plain log-linear where the table
        # lacks the read / pre-process times
        fit_meta = {"work": work, "work_source": res.work_note, "made_by": "perfmodel pipeline"}
        prep = Preparation()  # what a prediction replays: the training calibrations
        frame = train.frame  # (train: a Table, whose provenance the model records)
        if set(OVERHEAD_COLUMNS) <= set(frame.columns):
            kind, terms = "overhead-linear", additive_throughput_terms(frame, work=work)
            # + L1-d refills at one cost per thread count where counted (trained/'s throughput-stream-l1d)
            l1 = pd.to_numeric(frame["l1d_refills_per_image"], errors="coerce").to_numpy(dtype="float64") \
                if work == "instructions_per_image" and "l1d_refills_per_image" in frame.columns else None
            if l1 is not None and len(l1) and np.isfinite(l1).all():
                terms += per_thread_terms(frame, "l1d_refills_per_image")
            # + the FC weights' streaming time at the bandwidth calibrated with the training cells
            # the training rows are the reference's timing cells only on the simulated-counts path
            from_ref = ref is not None and res.counts_frameworks is not None
            cal_src = ref if from_ref else out / "campaign"
            cals = dataset_calibrations(cal_src)
            bw = stream_bandwidth(cals)
            speed = gemm_speed(cals)  # to price counts at the speed of later data
            prep.gemm_gflops, prep.gemm_gflops_source = speed or None, f"the calibrations of {cal_src}"
            need = {int(t) for t in frame["threads"].unique()}
            if bw and need <= set(bw):
                train, terms = attach_stream_time(train, bw), terms + ["fc_stream_ms"]
                prep.stream_bandwidth_gbps = bw
                prep.stream_bandwidth_source = f"the calibrations of {cal_src}"
            else:
                say(f"no FC weight-streaming term: {cal_src} has no calibration for threads "
                    f"{sorted(need - set(bw))}", warn=True)
        else:
            kind, terms = "loglinear", throughput_terms(frame, work=work)
        model = fit_model(train, "throughput_fps", terms, kind=kind, groups="network", select="fixed",
                          metadata=fit_meta, preparation=prep)
    except PerfmodelError as exc:
        say(f"throughput model not fitted: {exc}", warn=True)
    if model is not None:
        res.model, res.path = model, out / "models" / "throughput.json"
        res.path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, res.path)
    return res


def _campaign_for_prediction(campaign_long, reference: Path | None, frameworks=None):
    """Campaign cells with the reference's simulated counts of ``frameworks`` attached, for the prediction
    check (the cells of other frameworks get no counts and are reported as not predicted)."""
    import pandas as pd

    from perfmodel.data import wide_per_cell
    from perfmodel.model.features import join_simulated

    if reference is None:
        return wide_per_cell(campaign_long)
    sim = simulated_records(reference, frameworks)
    return join_simulated(wide_per_cell(pd.concat([campaign_long, sim], ignore_index=True)))


def prediction_check(model, long_df, ref, counts_frameworks: list[str] | None, campaign: Path,
                     say: Say = silent) -> list[dict]:
    """The fitted model's predictions for this campaign's measured cells (not a CV figure: a check).
    ``counts_frameworks``: the frameworks whose reference counts the model was fitted on (None: the model
    does not use the reference's counts); the campaign's cells of other frameworks are reported unpredicted."""
    rows: list[dict] = []
    try:
        pc = _campaign_for_prediction(long_df, ref if counts_frameworks is not None else None, counts_frameworks)
        pc = pc.rows(pc.frame["throughput_fps"].notna())
        if counts_frameworks is not None:
            ours = pc.frame["framework"].astype(str).isin(counts_frameworks)
            other = pc.frame[~ours]
            if len(other):
                say(f"prediction check: {len(other)} cell(s) of {', '.join(sorted(set(other['framework'])))} "
                    "not predicted (no simulated counts of their version)")
            pc = pc.rows(ours)
        from perfmodel.model.prepare import prepare_for_model, speed_ratio_text

        # macs, the campaign's own streaming bandwidth where it covers the cells, and the reference's costs
        # priced at this campaign's GEMM speed
        pc, _, notes = prepare_for_model(pc, model, dataset=campaign)
        speed = notes.get("speed_calibration")
        if speed is not None:
            say("prediction check: " + (
                f"counts priced at this campaign's speed (x {speed_ratio_text(speed)})"
                if speed["applied"] else speed["reason"]))
            if speed.get("warning"):
                say(f"warning: {speed['warning']}", warn=True)
        pred = model.predict_frame(pc)
    except PerfmodelError as exc:
        say(f"prediction check skipped: {exc}", warn=True)
        return rows
    for i, r in pc.frame.iterrows():
        err = 100.0 * (pred.loc[i, "pred"] - r["throughput_fps"]) / r["throughput_fps"]
        rows.append({"framework": r["framework"], "network": r["network"], "threads": int(r["threads"]),
                     "measured_fps": float(r["throughput_fps"]), "predicted_fps": float(pred.loc[i, "pred"]),
                     "lo": float(pred.loc[i, "lo"]), "hi": float(pred.loc[i, "hi"]), "error_pct": float(err)})
    if rows:
        errs = [abs(r["error_pct"]) for r in rows]
        say(f"model vs this campaign's measurements: mean |error| {sum(errs) / len(errs):.1f}% over "
            f"{len(errs)} cells (max {max(errs):.1f}%)")
    return rows


def selection_models(model) -> list:
    """The models selection and the report use: the pipeline's throughput model (when fitted) and the
    shipped power model of ``trained/`` (when present)."""
    from perfmodel.model import load_model

    models = [model] if model is not None else []
    td = trained_dir()
    if td is not None and (td / "power_armpm_xu3_a15.json").is_file():
        models.append(load_model(td / "power_armpm_xu3_a15.json"))
    return models


def select_on_campaign(long_df, models: list, spec, campaign: Path):
    """Rank the campaign's cells (figures a cell lacks predicted by ``models``) against ``spec``."""
    from perfmodel.data import wide_per_cell
    from perfmodel.select import candidates_from_cells, missing_reasons, rank

    cand = candidates_from_cells(wide_per_cell(long_df), models=models, reasons=missing_reasons(long_df),
                                 dataset=campaign)
    return rank(cand, spec)


def report_fallbacks(reference: Path | None) -> list:
    """Data the report draws a figure from when this campaign cannot (no PMU: no per-image counts; a short
    campaign: no trace): the reference data set, then the shipped long-run traces, each labelled."""
    from perfmodel.report import FigureSource

    out = []
    if reference is not None:
        out.append(FigureSource.from_datasets([reference], "the reference data set"))
    traces = default_traces()
    if traces:
        out.append(FigureSource.from_datasets(traces, "the shipped long-run traces"))
    return out


def pipeline_report(out: Path, models: list, selection, board: str, ref: Path | None,
                    counts_frameworks: list[str] | None) -> Path:
    """``out/report/report.html`` of the campaign, with the reference's simulated counts of
    ``counts_frameworks`` as extra records and the fallbacks of :func:`report_fallbacks`."""
    from perfmodel.report import build_report

    extra = None
    if counts_frameworks is not None and ref is not None:
        extra = simulated_records(ref, counts_frameworks)
    return build_report(out / "campaign", out / "report", models=models, selection=selection,
                        title="perfmodel pipeline: " + board,
                        extra_records=extra, fallbacks=report_fallbacks(ref),
                        extra_label=(f"the simulated per-image counts of the reference data set {ref} "
                                     f"({', '.join(counts_frameworks or [])})") if extra is not None else None)


def summary(out: Path, fit: PipelineFit, html: Path, selection, check_rows: list[dict],
            timings: dict[str, float]) -> dict[str, Any]:
    """The ``perfmodel pipeline --json`` summary (``selected``: the best candidate when one is feasible)."""
    cv = fit.cv
    return {"campaign": str(out / "campaign"), "model": str(fit.path) if fit.path else None,
            "report": str(html),
            "work_source": fit.work_note, "counts_frameworks": fit.counts_frameworks,
            "count_notes": fit.count_notes, "cv": {k: cv.get(k) for k in ("scheme", "mape", "within_10")},
            "baseline_macs_mape": fit.base.get("mape"), "selected": best_label(selection),
            "feasible": bool(selection.feasible), "prediction_check": check_rows,
            "timings_s": {k: round(v, 1) for k, v in timings.items()}}


def best_label(selection) -> str | None:
    """The selected candidate's label, None when nothing is feasible."""
    best = selection.best if selection.feasible else None
    if best is None:
        return None
    return str(best.get("candidate")) if hasattr(best, "get") else str(best)
