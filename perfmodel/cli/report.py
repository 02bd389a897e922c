"""``perfmodel report``: a self-contained HTML report of a data set (figures, correlations, models, selection)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from perfmodel.cli.options import list_option


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``perfmodel`` app."""

    @app.command("report", help=(
        "Write an HTML report of a data set: metadata and the source of every figure (real / simulated / "
        "software), throughput / CPU % / temperature / frequency traces, CPU % and throughput per framework x "
        "network, events per image, power vs event rates, throughput vs a hardware metric, correlation "
        "tables, the models' cross-validation and, with constraint options, the selection result.\n\n"
        "The PNG figures sit next to report.html with relative links, so the folder can be moved. A figure "
        "with no data is replaced by a sentence saying why (e.g. 'not measured: no thermal zone')."))
    def report_cmd(
        datasets: list[Path] = typer.Argument(..., help="Data set folder(s) or records file(s) (.parquet); the "
                                              "first gives the metadata, the others are added (e.g. traces)."),
        model: list[Path] = list_option(None, "--model", "-m", help="Model files (perfmodel fit)."),
        out: Path = typer.Option(Path("report"), "--out", "-o", help="Output folder (created)."),
        title: str = typer.Option(None, "--title", help="Report title."),
        max_power: float = typer.Option(None, "--max-power", help="Selection: power budget (W)."),
        max_energy: float = typer.Option(None, "--max-energy", help="Selection: max energy per image (J)."),
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
        json_out: bool = typer.Option(False, "--json", help="Print {\"report\": path, \"files\": [...]} as JSON."),
    ) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from perfmodel.cli.select import _load_models, spec_from_options
        from perfmodel.report import build_report

        limits = dict(max_power=max_power, max_energy=max_energy, min_fps=min_fps, min_top1=min_top1,
                      min_top5=min_top5, max_memory=max_memory, max_temp=max_temp)
        spec = None
        if objective is not None or weights is not None or any(v is not None for v in limits.values()):
            spec = spec_from_options(**limits, objective=objective or "throughput", weights=weights,
                                     allow_unknown=allow_unknown)
        from perfmodel.errors import InputFileError, PerfmodelError
        from perfmodel.report import FIGURE_FILES

        # one policy for every output: an existing output file is replaced only with --force
        existing = [p for p in (out / "report.html", *(out / f for f in FIGURE_FILES)) if p.exists()]
        if existing and not force:
            more = f" (and {len(existing) - 1} figure file(s))" if len(existing) > 1 else ""
            raise PerfmodelError(f"--out {out} already holds a report: {existing[0]}{more}; give another folder, or "
                                 "--force to replace it")
        for d in datasets:
            if not d.exists():
                raise InputFileError(f"data set {d} does not exist")
        dataset = datasets[0]
        extra = None
        if len(datasets) > 1:
            import pandas as pd

            from perfmodel.cli.select import load_long

            parts = [load_long(d) for d in datasets[1:]]
            extra = pd.concat(parts, ignore_index=True)
            extra.attrs["dataset"] = ", ".join(map(str, datasets[1:]))
            # which data set each run came from: a figure's caption names the ones it draws
            extra.attrs["run_sources"] = {str(r): str(d) for d, part in zip(datasets[1:], parts)
                                          for r in part["run_id"].unique()}
        _load_models(model)  # every model file is checked before the report starts
        models = list(model or [])  # build_report loads them again, naming each by its file
        err = Console(stderr=True)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("report", total=None)
            path = build_report(dataset, out, models=models, selection=spec, extra_records=extra,
                                extra_label="the records of " + ", ".join(map(str, datasets[1:])) if extra is not None
                                else None,
                                title=title, progress=lambda msg: bar.update(task, description=f"report: {msg}"))
        files = [str(path)] + [str(path.parent / f) for f in FIGURE_FILES if (path.parent / f).exists()]
        if json_out:
            typer.echo(json.dumps({"report": str(path), "files": files}, indent=1))
        else:
            typer.echo(f"report written to {path} ({len(files) - 1} figures; open it in a browser)")
