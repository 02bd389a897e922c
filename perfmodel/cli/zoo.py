"""``perfmodel zoo``: list the networks with their graph facts, and build / cache their exports."""

from __future__ import annotations

import json
import sys

import typer

from perfmodel.cli.options import json_option, list_option
from perfmodel.cli.show import fmt, stdout_console

from perfmodel.readings import json_safe

zoo_app = typer.Typer(
    help="The network zoo: graph facts (params, MACs, layers, reference accuracy) and cached exports.",
    no_args_is_help=True,
)


@zoo_app.command("list")
def list_cmd(
    json_out: bool = json_option("Print the facts as a JSON list instead of a table."),
    input_size: int = typer.Option(None, "--input-size", help="Count the graphs at this input size "
                                   "instead of each network's default."),
) -> None:
    """List the networks with facts computed from their graphs.

    Parameters (M), GMACs per image, convolution (incl. depthwise) and fully-connected layer counts,
    input size, and the published ImageNet top-1 / top-5 of the trained model with its source.
    Facts are cached, so only the first call imports TensorFlow.
    """
    from perfmodel.zoo import facts, network_names

    rows = [facts(name, input_size) for name in network_names()]
    if json_out:
        typer.echo(json.dumps([json_safe(r) for r in rows], indent=2))
        return
    from rich.table import Table

    table = Table(title="perfmodel zoo: facts from the Keras graphs; accuracy = published (trained model)")
    table.add_column("network", no_wrap=True)
    for col in ("params M", "GMACs", "conv", "dw", "FC", "input", "top1 %", "top5 %"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("source", overflow="fold")
    for r in rows:
        table.add_row(r["network"], f"{r['params'] / 1e6:.2f}", f"{r['gmacs']:.3f}", str(r["conv_layers"]),
                      str(r["depthwise_layers"]), str(r["fc_layers"]), str(r["input_size"]),
                      fmt(r["top1"], ".1f"), fmt(r["top5"], ".1f"), r["accuracy_ref"])
    stdout_console(130).print(table)
    typer.echo("conv includes the dw (depthwise) convolutions; full accuracy sources and notes: "
               "perfmodel zoo list --json")


@zoo_app.command("build")
def build_cmd(
    networks: list[str] = typer.Argument(None, help="Networks to build (see `perfmodel zoo list`)."),
    formats: list[str] = list_option(None, "--format", "-f", help="savedmodel, tflite or onnx (default: all "
                                     "three)."),
    all_networks: bool = typer.Option(False, "--all", help="Build every network of the zoo."),
    seed: int = typer.Option(0, "--seed", min=0, help="Weight seed (part of the cache key)."),
    input_size: int = typer.Option(None, "--input-size", help="Input size instead of each network's default."),
    json_out: bool = json_option("Print the cached paths as JSON."),
) -> None:
    """Export networks to TF SavedModel / TFLite / ONNX into the model cache and print the paths.

    Already-built (and checksum-valid) models are reused; a missing or corrupt cached file is rebuilt.
    """
    from perfmodel.errors import PerfmodelError, check_choice
    from perfmodel.zoo import FORMATS, export, network_names

    if all_networks and networks:
        raise PerfmodelError("give network names or --all, not both")
    names = network_names() if all_networks else list(networks or [])
    if not names:
        raise PerfmodelError(f"name at least one network or use --all; networks: {', '.join(network_names())}")
    for name in names:
        check_choice("network", name, network_names())
    fmts = list(formats or FORMATS)
    for fmt in fmts:
        check_choice("format", fmt, FORMATS)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    results = []
    jobs = [(n, f) for n in names for f in fmts]
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("building", total=len(jobs))
        for name, fmt in jobs:
            bar.update(task, description=f"{name} {fmt}")
            path = export(name, fmt, seed=seed, input_size=input_size)
            results.append({"network": name, "format": fmt, "path": str(path)})
            if not json_out:
                typer.echo(f"{name}\t{fmt}\t{path}")
            bar.advance(task)
    if json_out:
        typer.echo(json.dumps(results, indent=2))


def register(app: typer.Typer) -> None:
    """Add the ``zoo`` command group to the ``perfmodel`` app."""
    app.add_typer(zoo_app, name="zoo")
