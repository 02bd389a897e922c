"""``perfmodel retrain``: adapt the operator-level model to a new board, framework release or thread count."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from perfmodel.cli.options import json_option, list_option, platform_note_option, worker_python_option
from perfmodel.cli.show import print_table, say
from perfmodel.workflows.retrain import DEFAULT_NETWORKS


def retrain_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Adapted model file to write (JSON)."),
    model: Path = typer.Option(Path("trained/throughput_operator.json"), "--model", "-m",
                               help="Operator-level model to adapt."),
    frameworks: list[str] = list_option(None, "--frameworks", help="Frameworks to adapt (default: the model's)."),
    threads: list[str] = list_option(None, "--threads", item=int, help="Thread counts to adapt (default: the "
                                     "model's); one the model lacks starts from the nearest it has."),
    networks: list[str] = list_option(None, "--networks", help="Zoo networks to measure (default: chosen, "
                                      "--count of them, to cover the model's kernel types)."),
    count: int = typer.Option(DEFAULT_NETWORKS, "--count", help="How many networks to choose when --networks is "
                              "not given (8: about 2-3 minutes of measuring here; fewer is faster but the kernel "
                              "refit needs at least 4 and the per-type scales rest on few networks)."),
    measure: Path = typer.Option(None, "--measure", help="Folder of the measured sample (a kernel data set; "
                                 "default: next to --out). Re-run the same command to resume it."),
    data: Path = typer.Option(None, "--data", help="Measure nothing: adapt from data recorded elsewhere (a "
                              "kernel data set, or a data set of cells with inference_ms, e.g. another "
                              "board's campaign)."),
    python: str = worker_python_option(),
    note: str = platform_note_option(),
    rounds: int = typer.Option(1, "--rounds", help="Measuring rounds of the sample."),
    method: str = typer.Option("auto", "--method", help="auto (per cell, the candidate with the lowest "
                               "leave-one-network-out error over the sample), size, scale, global, none or "
                               "refit (the kernels refitted on the sample alone: for a large --count)."),
    network_model: Path = typer.Option(None, "--network-model", help="Also adapt this network-level throughput "
                                       "model (e.g. trained/throughput_reference.json) from the same sample: a "
                                       "factor on its inference time per framework x threads."),
    network_out: Path = typer.Option(None, "--network-out", help="Where to write the adapted network-level "
                                     "model (with --network-model)."),
    only: bool = typer.Option(False, "--only", help="Write only the adapted cells (default: the model's other "
                              "cells are kept as they are)."),
    json_out: bool = json_option("Print the summary as JSON."),
) -> None:
    """Adapt the operator-level throughput model to this platform from a small sample.

    Measures a few zoo networks chosen to cover the model's kernel types (end-to-end times, and per-node
    profiles where the framework has a profiler) on every framework x threads asked, then corrects each cell's
    kernel predictors (per-type scales and size trends from the profiles, or one scale from the times, as the
    sample's leave-one-network-out error decides) and refits its overhead. The model records what it was
    adapted from and with what. Typically 1-3 minutes per framework on 2 cores; see docs/retrain.md."""
    from perfmodel.workflows.retrain import describe, retrain

    if rounds < 1:
        raise typer.BadParameter("--rounds must be at least 1")
    res = retrain(model, out, frameworks=frameworks, threads=threads, networks=networks, n_networks=count,
                  measure_dir=measure, data=data, python=python, note=note, rounds=rounds, method=method,
                  keep_other_cells=not only, network_model=network_model, network_out=network_out, say=say)
    if json_out:
        typer.echo(json.dumps(res, indent=1, default=str))
        return
    sec = res["seconds"]
    print_table(f"adapted {res['from']} -> {res['model']} (sample: {', '.join(res['networks'])}; "
                f"{res['data']})",
                ["framework", "threads", "from", "method", "global scale", "profiled kernels",
                 "sample LONO MAPE % by candidate"], describe(res))
    if res["kept"]:
        typer.echo(f"kept as they were: {', '.join(res['kept'])}")
    if res.get("versions"):
        typer.echo("measured with: " + ", ".join(f"{k} {v}" for k, v in sorted(res["versions"].items())))
    nm = res.get("network_model")
    if nm:
        print_table(f"network-level {nm['from']} -> {nm['model']}",
                    ["cell", "time factor", "sample MAPE % before", "sample LONO MAPE % after", "networks"],
                    [[c["cell"], f"{c['scale']:.3f}", f"{c['before_mape']:.1f}", f"{c['lono_mape']:.1f}",
                      ", ".join(c["networks"])] for c in nm["cells"]])
        if nm["not_adapted"]:
            typer.echo(f"network-level model not adapted for {', '.join(nm['not_adapted'])} (no prediction of "
                       "its own for those cells)")
    measured = f"{sec['measure']} s measuring, " if sec.get("measure") is not None else ""
    typer.echo(f"{measured}{sec['total']} s in all")


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain_cmd)
