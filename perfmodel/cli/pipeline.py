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

import json
import time
from pathlib import Path

import typer

from perfmodel.cli.options import SELECTION_MAX_ENERGY, SELECTION_MAX_POWER, json_option, list_option, split_list
from perfmodel.cli.show import fmt, say
from perfmodel.workflows.pipeline import ALL_FRAMEWORKS, PAPER_NETWORKS

PIPELINE_HELP = (
    "Run the main job end to end on a built-in default: collect a short campaign on this machine (all "
    "frameworks, the study's networks SqueezeNet v1.1 / GoogLeNet / ResNet-50, threads 1 and 2, a few "
    "images per cell), fit a throughput model with leave-one-network-out CV, select the best candidate "
    "for a spec, and write an HTML report. Re-running with the same --out resumes the campaign and "
    "writes the model and the report again: the pipeline owns its --out folder (campaign/, models/, report/), "
    "unlike `perfmodel fit -o` / `report -o`, which refuse to replace a file without --force.\n\n"
    "On a machine without a PMU the throughput model uses the simulated instruction counts of the "
    "reference data set shipped in datasets/ (same library versions) or, failing that, MACs; on a "
    "machine without a power sensor a power budget is reported as not evaluable.")


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
    max_power: float = SELECTION_MAX_POWER,
    max_energy: float = SELECTION_MAX_ENERGY,
    objective: str = typer.Option("throughput", "--objective", help="throughput, energy, power or merit."),
    json_out: bool = json_option("Print a JSON summary at the end."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the frameworks' own output (TensorFlow "
                                 "/ absl / oneDNN banners, converter warnings) on the terminal; by default it "
                                 "goes to OUT/perfmodel.log."),
) -> None:
    import contextlib
    import sys

    from rich.console import Console

    from perfmodel.cli.select import print_selection
    from perfmodel.collect import CampaignSpec, run_campaign
    from perfmodel.data import dataset_metadata, read_dataset
    from perfmodel.errors import PerfmodelError
    from perfmodel.workflows import pipeline as job
    from perfmodel.workflows.select import spec_from_options

    con = Console(stderr=True)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    spec = spec_from_options(max_power=max_power, max_energy=max_energy, min_fps=min_fps, min_top1=min_top1,
                             min_top5=None, max_memory=None, max_temp=None, objective=objective,
                             weights=None, allow_unknown=False)
    ref = job.check_reference(reference)
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
    fit = job.fit_throughput_model(long_df, meta, ref, out, say)
    check_rows: list[dict] = []
    if fit.model is not None:
        cv, base = fit.cv, fit.base
        con.print(f"throughput model ({fit.work_note}): leave-one-network-out MAPE {fmt(cv.get('mape'), '.1f', '-')}%, "
                  f"{fmt(cv.get('within_10'), '.0f', '-')}% within +-10% (MACs-only baseline: "
                  f"{fmt(base.get('mape'), '.1f', '-')}%) -> {fit.path}")
        check_rows = job.prediction_check(fit.model, long_df, ref, fit.counts_frameworks, out / "campaign", say)
    models = job.selection_models(fit.model)
    timings["fit_s"] = time.monotonic() - t1

    # 3. select
    t2 = time.monotonic()
    con.rule("[bold]3/4 select")
    selection = job.select_on_campaign(long_df, models, spec, out / "campaign")
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the --json summary
        print_selection(selection)
    timings["select_s"] = time.monotonic() - t2

    # 4. report
    t3 = time.monotonic()
    con.rule("[bold]4/4 report")
    html = job.pipeline_report(out, models, selection, str(meta.get("board", "this machine")), ref,
                               fit.counts_frameworks)
    if check_rows:
        (out / "report" / "prediction_check.json").write_text(json.dumps(check_rows, indent=1))
    timings["report_s"] = time.monotonic() - t3
    timings["total_s"] = time.monotonic() - t0
    summary = job.summary(out, fit, html, selection, check_rows, timings)
    if json_out:
        typer.echo(json.dumps(summary, indent=1, default=str))
    con.rule("[bold]done")
    con.print(f"selected: [bold]{summary['selected'] or 'nothing feasible (see above)'}[/bold]")
    con.print(f"report: [bold]{html}[/bold]  (open it in a browser)")
    if not verbose:
        con.print(f"frameworks' own output: {out / 'perfmodel.log'} (--verbose shows it)", highlight=False)
    con.print(f"total {timings['total_s']:.0f} s (collect {timings['collect_s']:.0f} s, fit "
              f"{timings['fit_s']:.0f} s, select {timings['select_s']:.0f} s, report {timings['report_s']:.0f} s)")


def register(app: typer.Typer) -> None:
    app.command("pipeline", help=PIPELINE_HELP)(pipeline_cmd)
