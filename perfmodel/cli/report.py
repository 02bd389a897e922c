"""``perfmodel report``: a self-contained HTML report of a data set (figures, correlations, models, selection)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from perfmodel.cli.options import SELECTION_MAX_ENERGY, SELECTION_MAX_POWER, json_option, list_option
from perfmodel.workflows.report import check_datasets_exist, check_report_out, extra_records, report_files
from perfmodel.workflows.select import load_models, spec_from_options


REPORT_HELP = (
    "Write an HTML report of a data set: metadata and the source of every figure (real / simulated / "
    "software), throughput / CPU % / temperature / frequency traces, CPU % and throughput per framework x "
    "network, events per image, power vs event rates, throughput vs a hardware metric, correlation "
    "tables, the models' cross-validation and, with constraint options, the selection result.\n\n"
    "The PNG figures sit next to report.html with relative links, so the folder can be moved. A figure "
    "with no data is replaced by a sentence saying why (e.g. 'not measured: no thermal zone').")


def report_cmd(
    datasets: list[Path] = typer.Argument(..., help="Data set folder(s) or records file(s) (.parquet); the "
                                          "first gives the metadata, the others are added (e.g. traces)."),
    model: list[Path] = list_option(None, "--model", "-m", help="Model files (perfmodel fit)."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Output folder (created)."),
    title: str = typer.Option(None, "--title", help="Report title."),
    max_power: float = SELECTION_MAX_POWER,
    max_energy: float = SELECTION_MAX_ENERGY,
    min_fps: float = typer.Option(None, "--min-fps", help="Selection: minimum throughput (img/s)."),
    min_top1: float = typer.Option(None, "--min-top1", help="Selection: minimum top-1 (fraction)."),
    min_top5: float = typer.Option(None, "--min-top5", help="Selection: minimum top-5 (fraction)."),
    max_memory: float = typer.Option(None, "--max-memory", help="Selection: max peak memory (MB)."),
    max_temp: float = typer.Option(None, "--max-temp", help="Selection: max temperature (degC)."),
    objective: str = typer.Option(None, "--objective", help="Selection objective: throughput, energy, power "
                                  "or merit (a selection is included when this or a constraint is given)."),
    weights: list[str] = list_option(None, "--weights", help="Merit weights, column=number terms (see "
                                     "perfmodel select --help)."),
    allow_unknown: bool = typer.Option(False, "--allow-unknown", help="Selection: rank unevaluable "
                                       "candidates anyway, flagged."),
    force: bool = typer.Option(False, "--force", help="Replace a report already in --out (report.html and "
                               "its figures); refused without it, as fit -o refuses to replace a model file."),
    json_out: bool = json_option("Print {\"report\": path, \"files\": [...]} as JSON."),
) -> None:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from perfmodel.report import build_report

    limits = dict(max_power=max_power, max_energy=max_energy, min_fps=min_fps, min_top1=min_top1,
                  min_top5=min_top5, max_memory=max_memory, max_temp=max_temp)
    spec = None
    if objective is not None or weights is not None or any(v is not None for v in limits.values()):
        spec = spec_from_options(**limits, objective=objective or "throughput", weights=weights,
                                 allow_unknown=allow_unknown)
    check_report_out(out, force=force)
    check_datasets_exist(datasets)
    dataset = datasets[0]
    extra, sources = extra_records(datasets[1:])
    load_models(model)  # every model file is checked before the report starts
    models = list(model or [])  # build_report loads them again, naming each by its file
    err = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                  transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("report", total=None)
        path = build_report(dataset, out, models=models, selection=spec, extra_records=extra,
                            extra_label="the records of " + ", ".join(map(str, datasets[1:])) if extra is not None
                            else None, extra_sources=sources,
                            title=title, progress=lambda msg: bar.update(task, description=f"report: {msg}"))
    files = report_files(path)
    if json_out:
        typer.echo(json.dumps({"report": str(path), "files": files}, indent=1))
    else:
        typer.echo(f"report written to {path} ({len(files) - 1} figures; open it in a browser)")


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``perfmodel`` app."""
    app.command("report", help=REPORT_HELP)(report_cmd)
