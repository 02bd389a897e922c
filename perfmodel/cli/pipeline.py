"""``perfmodel pipeline``: the main job end to end - collect, fit, select, report - on a built-in default.

Steps (each prints what it did; the whole run is resumable because the campaign is):

1. **collect** a short campaign on this machine (all frameworks, the study's networks, a few images per
   cell, counters ``auto``) into ``<out>/campaign``;
2. **fit** a throughput model ``fps = 1000 / (overhead + t)`` with ``t`` an additive CPI stack
   (work per image x (framework, threads) + L2-d refills where counted + the time to stream the FC
   weights at the bandwidth the campaign calibrated; kind ``overhead-linear``) with
   leave-one-network-out CV. The per-image work is, best first: hardware instruction counts of the
   campaign (a board with a PMU), the simulated instruction counts of the reference data set shipped in
   ``datasets/reference`` (a machine without a PMU, same library versions), or the networks' MACs. The
   model file goes to ``<out>/models/throughput.json``; the campaign's measured cells are compared with
   its predictions;
3. **select** the best candidate for the spec (``--min-fps``, ``--min-top1``, ``--max-power`` ...);
   a constraint that cannot be evaluated here (a power budget on a machine without a power sensor or an
   applicable power model) is reported as such;
4. **report**: ``<out>/report/report.html`` with the figures, the CV tables and the selection.
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path
from typing import Any

import typer

from perfmodel.cli.options import list_option, split_list

PAPER_NETWORKS = "squeezenet1_1,googlenet,resnet50"
ALL_FRAMEWORKS = "tensorflow,litert,onnxruntime,opencv"


def reference_dataset() -> Path | None:
    """``datasets/reference`` of the source checkout perfmodel runs from, if present."""
    from perfmodel.cli.model import default_reference

    p = default_reference()
    return p if (p / "dataset.json").is_file() else None


def trained_dir() -> Path | None:
    import perfmodel

    p = Path(perfmodel.__file__).resolve().parents[1] / "trained"
    return p if p.is_dir() else None


@functools.lru_cache(maxsize=2)
def _reference_records(reference: str):
    """The reference data set's long records, read (and validated) once per run of the pipeline."""
    from perfmodel.data import read_dataset

    return read_dataset(reference)


def _simulated_records(reference: Path, frameworks=None):
    """The reference's simulated (valgrind) cells: per-image counts, no timing; ``frameworks``: only these."""
    ref = _reference_records(str(reference))
    sim = ref[ref["cell_id"].astype(str).str.endswith("__valgrind")]
    return sim if frameworks is None else sim[sim["framework"].astype(str).isin(list(frameworks))]


def _has_values(df, col: str, provenance: str | None = None) -> bool:
    if col not in df.columns or not df[col].notna().all():
        return False
    if provenance is None:
        return True
    prov = (df.attrs or {}).get("provenance", {}).get(col, "")
    return provenance in str(prov).split("+")


def training_table(campaign_long, campaign_meta: dict, reference: Path | None
                   ) -> tuple[Any, str, str, list[str] | None, list[str]]:
    """``(table to fit on, per-image work column, sentence saying where the work figures came from,
    frameworks whose reference counts are used (None: not on the reference path), notes)``.

    The reference's simulated counts are taken per framework (:func:`perfmodel.versions.counts_applicability`):
    a framework whose library version (here or in the campaign) differs from the reference's loses its
    counts, named with both versions; the others keep theirs."""
    from perfmodel.data import dataset_metadata, wide_per_cell
    from perfmodel.model.features import attach_macs, join_simulated
    from perfmodel.versions import counts_applicability

    cells = wide_per_cell(campaign_long)
    if _has_values(cells, "instructions_per_image", "real"):
        return cells, "instructions_per_image", "hardware instruction counts measured by this campaign", None, []
    notes: list[str] = []
    if reference is not None:
        ref_meta, ref_campaign = dataset_metadata(reference)
        frameworks = sorted(set(cells["framework"].astype(str)) | set((ref_campaign or {}).get("frameworks") or []))
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
                joined = joined[joined["instructions_per_image"].notna()]
                if len(joined) >= 8:
                    used = sorted(set(joined["framework"].astype(str)))
                    left = [f for f in frameworks if f not in used]
                    return (joined, "instructions_per_image",
                            f"valgrind-simulated instruction counts of the reference data set {reference}"
                            + (f" ({', '.join(used)}; not {', '.join(left)})" if left else ""), used, notes)
                why = "reference data set has too few cells with simulated counts"
    else:
        why = "no reference data set (datasets/reference) next to this perfmodel"
    return attach_macs(cells), "macs", f"MACs of the networks (no instruction counts: {why})", None, notes


def _campaign_for_prediction(campaign_long, reference: Path | None, frameworks=None):
    """Campaign cells with the reference's simulated counts of ``frameworks`` attached, for the prediction
    check (the cells of other frameworks get no counts and are reported as not predicted)."""
    import pandas as pd

    from perfmodel.data import wide_per_cell
    from perfmodel.model.features import join_simulated

    if reference is None:
        return wide_per_cell(campaign_long)
    sim = _simulated_records(reference, frameworks)
    return join_simulated(wide_per_cell(pd.concat([campaign_long, sim], ignore_index=True)))


def _prediction_check(model, long_df, ref, counts_frameworks: list[str] | None, con, campaign: Path
                      ) -> list[dict]:
    """The fitted model's predictions for this campaign's measured cells (not a CV figure: a check).
    ``counts_frameworks``: the frameworks whose reference counts the model was fitted on (None: the model
    does not use the reference's counts); the campaign's cells of other frameworks are reported unpredicted."""
    from perfmodel.errors import PerfmodelError

    rows: list[dict] = []
    try:
        pc = _campaign_for_prediction(long_df, ref if counts_frameworks is not None else None, counts_frameworks)
        pc = pc[pc["throughput_fps"].notna()]
        if counts_frameworks is not None:
            other = pc[~pc["framework"].astype(str).isin(counts_frameworks)]
            if len(other):
                con.print(f"prediction check: {len(other)} cell(s) of {', '.join(sorted(set(other['framework'])))} "
                          "not predicted (no simulated counts of their version)", highlight=False)
            pc = pc[pc["framework"].astype(str).isin(counts_frameworks)]
        from perfmodel.model.prepare import prepare_for_model, speed_ratio_text

        # macs, the campaign's own streaming bandwidth where it covers the cells, and the reference's costs
        # priced at this campaign's GEMM speed
        pc, _, notes = prepare_for_model(pc, model, dataset=campaign)
        speed = notes.get("speed_calibration")
        if speed is not None:
            con.print("prediction check: " + (
                f"counts priced at this campaign's speed (x {speed_ratio_text(speed)})"
                if speed["applied"] else speed["reason"]), highlight=False)
            if speed.get("warning"):
                con.print(f"[yellow]warning: {speed['warning']}", highlight=False)
        pred = model.predict_frame(pc)
    except PerfmodelError as exc:
        con.print(f"[yellow]prediction check skipped: {exc}")
        return rows
    for i, r in pc.iterrows():
        err = 100.0 * (pred.loc[i, "pred"] - r["throughput_fps"]) / r["throughput_fps"]
        rows.append({"framework": r["framework"], "network": r["network"], "threads": int(r["threads"]),
                     "measured_fps": float(r["throughput_fps"]), "predicted_fps": float(pred.loc[i, "pred"]),
                     "lo": float(pred.loc[i, "lo"]), "hi": float(pred.loc[i, "hi"]), "error_pct": float(err)})
    if rows:
        errs = [abs(r["error_pct"]) for r in rows]
        con.print(f"model vs this campaign's measurements: mean |error| {sum(errs) / len(errs):.1f}% over "
                  f"{len(errs)} cells (max {max(errs):.1f}%)")
    return rows

def _report_fallbacks(reference: Path | None) -> list:
    """Data the report draws a figure from when this campaign cannot (no PMU: no per-image counts; a short
    campaign: no trace): the reference data set, then the shipped long-run traces, each labelled."""
    from perfmodel.cli.model import default_traces
    from perfmodel.report import FigureSource

    out = []
    if reference is not None:
        out.append(FigureSource.from_datasets([reference], "the reference data set"))
    traces = default_traces()
    if traces:
        out.append(FigureSource.from_datasets(traces, "the shipped long-run traces"))
    return out


def _fmt(x: Any, spec: str = ".3g") -> str:
    try:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def register(app: typer.Typer) -> None:
    @app.command("pipeline", help=(
        "Run the main job end to end on a built-in default: collect a short campaign on this machine (all "
        "frameworks, the study's networks SqueezeNet v1.1 / GoogLeNet / ResNet-50, threads 1 and 2, a few "
        "images per cell), fit a throughput model with leave-one-network-out CV, select the best candidate "
        "for a spec, and write an HTML report. Re-running with the same --out resumes the campaign and "
        "writes the model and the report again: the pipeline owns its --out folder (campaign/, models/, report/), "
        "unlike `perfmodel fit -o` / `report -o`, which refuse to replace a file without --force.\n\n"
        "On a machine without a PMU the throughput model uses the simulated instruction counts of the "
        "reference data set shipped in datasets/ (same library versions) or, failing that, MACs; on a "
        "machine without a power sensor a power budget is reported as not evaluable."))
    def pipeline_cmd(
        out: Path = typer.Option(Path("perfmodel-run"), "--out", "-o", help="Output folder (campaign, models, "
                                 "report)."),
        frameworks: list[str] = list_option([ALL_FRAMEWORKS], "--frameworks", help="Frameworks."),
        networks: list[str] = list_option([PAPER_NETWORKS], "--networks", help="Zoo networks."),
        threads: list[str] = list_option(["1,2"], "--threads", item=int, help="Thread counts."),
        images: int = typer.Option(20, "--images", help="Counted images per cell."),
        reference: Path = typer.Option(None, "--reference", help="Reference data set with simulated counts "
                                       "(default: datasets/reference of this checkout)."),
        min_fps: float = typer.Option(5.0, "--min-fps", help="Selection: minimum throughput (images/s)."),
        min_top1: float = typer.Option(0.6, "--min-top1", help="Selection: minimum top-1 accuracy (fraction)."),
        max_power: float = typer.Option(None, "--max-power", help="Selection: power budget (W)."),
        max_energy: float = typer.Option(None, "--max-energy", help="Selection: max energy per image (J)."),
        objective: str = typer.Option("throughput", "--objective", help="throughput, energy, power or merit."),
        json_out: bool = typer.Option(False, "--json", help="Print a JSON summary at the end."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the frameworks' own output (TensorFlow "
                                     "/ absl / oneDNN banners, converter warnings) on the terminal; by default it "
                                     "goes to OUT/perfmodel.log."),
    ) -> None:
        import numpy as np
        import pandas as pd
        from rich.console import Console

        from perfmodel.cli.select import print_selection, spec_from_options
        from perfmodel.collect import CampaignSpec, run_campaign
        from perfmodel.data import dataset_calibrations, dataset_metadata, gemm_speed, read_dataset, stream_bandwidth
        from perfmodel.errors import PerfmodelError
        from perfmodel.model import fit_model, load_model, save_model
        from perfmodel.model.features import (OVERHEAD_COLUMNS, additive_throughput_terms, attach_stream_time,
                                              per_thread_terms, throughput_terms)
        from perfmodel.report import build_report
        from perfmodel.select import candidates_from_cells, missing_reasons, rank

        con = Console(stderr=True)
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        spec = spec_from_options(max_power=max_power, max_energy=max_energy, min_fps=min_fps, min_top1=min_top1,
                                 min_top5=None, max_memory=None, max_temp=None, objective=objective,
                                 weights=None, allow_unknown=False)
        ref = reference if reference is not None else reference_dataset()
        if ref is not None and not (Path(ref) / "dataset.json").is_file():
            raise PerfmodelError(f"reference data set {ref} does not exist (no dataset.json)")
        cspec = CampaignSpec(frameworks=split_list(frameworks, "--frameworks"),
                             networks=split_list(networks, "--networks"),
                             threads=split_list(threads, "--threads", int), images=images,
                             counters="auto").validate()
        if out.exists() and not out.is_dir():
            raise PerfmodelError(f"--out {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        from perfmodel.runlog import set_run_log

        set_run_log(out / "perfmodel.log", verbose=verbose)

        # 1. collect
        con.rule("[bold]1/4 collect")
        result = run_campaign(cspec, out / "campaign", resume=True, progress=True)
        timings["collect_s"] = time.monotonic() - t0
        if result.interrupted:
            raise typer.Exit(130)
        con.print(f"campaign: {len(result.done)} cells measured, {len(result.skipped)} already done, "
                  f"{len(result.failed)} failed -> {out / 'campaign'}")
        long_df = read_dataset(out / "campaign")
        meta, _ = dataset_metadata(out / "campaign")

        # 2. fit
        t1 = time.monotonic()
        con.rule("[bold]2/4 fit")
        model, model_path, base, cv, check_rows = None, None, {}, {}, []
        work, work_note, counts_fws, count_notes = None, "", None, []
        try:
            train, work, work_note, counts_fws, count_notes = training_table(long_df, meta, ref)
            for note in count_notes:
                con.print(f"[yellow]note:[/] {note}", highlight=False)
            # latency = read + pre-process overhead + inference, the inference time an additive CPI stack
            # (work x (framework, threads) + L2-d refills where counted); plain log-linear where the table
            # lacks the read / pre-process times
            from perfmodel.model.schema import Preparation

            fit_meta, prep = {"work": work, "work_source": work_note, "made_by": "perfmodel pipeline"}, Preparation()
            if set(OVERHEAD_COLUMNS) <= set(train.columns):
                kind, terms = "overhead-linear", additive_throughput_terms(train, work=work)
                # + L1-d refills at one cost per thread count where counted (trained/'s throughput-stream-l1d)
                l1 = pd.to_numeric(train["l1d_refills_per_image"], errors="coerce").to_numpy(dtype="float64") \
                    if work == "instructions_per_image" and "l1d_refills_per_image" in train.columns else None
                if l1 is not None and len(l1) and np.isfinite(l1).all():
                    terms += per_thread_terms(train, "l1d_refills_per_image")
                # + the FC weights' streaming time at the bandwidth calibrated with the training cells
                # the training rows are the reference's timing cells only on the simulated-counts path
                from_ref = ref is not None and counts_fws is not None
                cal_src = ref if from_ref else out / "campaign"
                cals = dataset_calibrations(cal_src)
                bw = stream_bandwidth(cals)
                speed = gemm_speed(cals)  # to price counts at the speed of later data
                prep.gemm_gflops, prep.gemm_gflops_source = speed or None, f"the calibrations of {cal_src}"
                need = {int(t) for t in train["threads"].unique()}
                if bw and need <= set(bw):
                    train, terms = attach_stream_time(train, bw), terms + ["fc_stream_ms"]
                    prep.stream_bandwidth_gbps = bw
                    prep.stream_bandwidth_source = f"the calibrations of {cal_src}"
                else:
                    con.print(f"[yellow]no FC weight-streaming term: {cal_src} has no calibration for threads "
                              f"{sorted(need - set(bw))}")
            else:
                kind, terms = "loglinear", throughput_terms(train, work=work)
            model = fit_model(train, "throughput_fps", terms, kind=kind, groups="network", select="fixed",
                              metadata=fit_meta, preparation=prep)
        except PerfmodelError as exc:
            con.print(f"[yellow]throughput model not fitted: {exc}")
        if model is not None:
            model_path = out / "models" / "throughput.json"
            model_path.parent.mkdir(parents=True, exist_ok=True)
            save_model(model, model_path)
            cv = model.cv
            base = next((r for r in cv.get("results", []) if str(r.get("model", "")).startswith("baseline: MACs")),
                        {})
            con.print(f"throughput model ({work_note}): leave-one-network-out MAPE {_fmt(cv.get('mape'), '.1f')}%, "
                      f"{_fmt(cv.get('within_10'), '.0f')}% within +-10% (MACs-only baseline: "
                      f"{_fmt(base.get('mape'), '.1f')}%) -> {model_path}")
            check_rows = _prediction_check(model, long_df, ref, counts_fws, con, out / "campaign")
        models = [model] if model is not None else []
        td = trained_dir()
        if td is not None and (td / "power_armpm_xu3_a15.json").is_file():
            models.append(load_model(td / "power_armpm_xu3_a15.json"))
        timings["fit_s"] = time.monotonic() - t1

        # 3. select
        t2 = time.monotonic()
        con.rule("[bold]3/4 select")
        from perfmodel.data import wide_per_cell

        cand = candidates_from_cells(wide_per_cell(long_df), models=models, reasons=missing_reasons(long_df),
                                     dataset=out / "campaign")
        selection = rank(cand, spec)
        import contextlib
        import sys

        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the --json summary
            print_selection(selection)
        timings["select_s"] = time.monotonic() - t2

        # 4. report
        t3 = time.monotonic()
        con.rule("[bold]4/4 report")
        extra = None
        if counts_fws is not None and ref is not None:
            extra = _simulated_records(ref, counts_fws)
        html = build_report(out / "campaign", out / "report", models=models, selection=selection,
                            title="perfmodel pipeline: " + str(meta.get("board", "this machine")),
                            extra_records=extra, fallbacks=_report_fallbacks(ref),
                            extra_label=(f"the simulated per-image counts of the reference data set {ref} "
                                         f"({', '.join(counts_fws or [])})") if extra is not None else None)
        if check_rows:
            (out / "report" / "prediction_check.json").write_text(json.dumps(check_rows, indent=1))
        timings["report_s"] = time.monotonic() - t3
        timings["total_s"] = time.monotonic() - t0
        best = selection.best if selection.feasible else None
        best_label = None
        if best is not None:
            best_label = str(best.get("candidate")) if hasattr(best, "get") else str(best)
        summary = {"campaign": str(out / "campaign"), "model": str(model_path) if model_path else None,
                   "report": str(html),
                   "work_source": work_note, "counts_frameworks": counts_fws,
                   "count_notes": count_notes, "cv": {k: cv.get(k) for k in ("scheme", "mape", "within_10")},
                   "baseline_macs_mape": base.get("mape"), "selected": best_label,
                   "feasible": bool(selection.feasible), "prediction_check": check_rows,
                   "timings_s": {k: round(v, 1) for k, v in timings.items()}}
        if json_out:
            typer.echo(json.dumps(summary, indent=1, default=str))
        con.rule("[bold]done")
        con.print(f"selected: [bold]{best_label or 'nothing feasible (see above)'}[/bold]")
        con.print(f"report: [bold]{html}[/bold]  (open it in a browser)")
        if not verbose:
            con.print(f"frameworks' own output: {out / 'perfmodel.log'} (--verbose shows it)", highlight=False)
        con.print(f"total {timings['total_s']:.0f} s (collect {timings['collect_s']:.0f} s, fit "
                  f"{timings['fit_s']:.0f} s, select {timings['select_s']:.0f} s, report {timings['report_s']:.0f} s)")
