"""``perfmodel kernels``: profile one-kernel models, fit the operator-level model, show a graph's kernels."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from perfmodel.cli.options import json_option, list_option, platform_note_option, worker_python_option
from perfmodel.cli.show import print_table, say

kernels_app = typer.Typer(
    help="Operator-level prediction: profile sampled one-kernel models (with the networks, interleaved), fit "
         "per-kernel predictors, and show the kernels each framework runs for a graph. Predict with "
         "perfmodel predict --model M --graph FILE.",
    no_args_is_help=True,
)


@kernels_app.command("profile")
def profile_cmd(
    out: Path = typer.Argument(..., help="Kernel data set folder (created, or resumed / extended)."),
    units: int = typer.Option(480, "--units", help="Sampled one-kernel models (configurations drawn around the "
                              "zoo's operators, sizes perturbed)."),
    rounds: int = typer.Option(2, "--rounds", help="Rounds: the units are split over them, the networks are "
                               "timed in each (their disagreement is the noise floor)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    frameworks: list[str] = list_option(None, "--frameworks", help="Frameworks (default all four)."),
    threads: list[str] = list_option(None, "--threads", item=int, help="Thread counts (default 1,2)."),
    networks: list[str] = list_option(None, "--networks", help="Zoo networks timed whole (default all; "
                                      "'none' for none)."),
    adaptive: int = typer.Option(0, "--adaptive", help="Add this many units around the units the current "
                                 "predictors price worst (nn-Meter's adaptive sampling) to an existing OUT."),
    profiles: bool = typer.Option(False, "--profiles", help="Also record the per-node profile of each network where "
                                  "the framework has a profiler (ONNX Runtime, OpenCV, TensorFlow: kernels timed "
                                  "inside their network; perfmodel kernels fit --source profiles). With --units 0 "
                                  "--networks none: the profiles only."),
    python: str = worker_python_option(),
    note: str = platform_note_option(),
) -> None:
    """Time sampled one-kernel models and whole networks on every framework x threads, in fresh worker
    processes (one per framework x threads block), interleaved; resumable (re-run the same command)."""
    from perfmodel.workflows.kernels import profile

    fws = frameworks or ["tensorflow", "litert", "onnxruntime", "opencv"]
    ths = threads or [1, 2]
    nets = networks
    if nets == ["none"]:
        nets = []
    if rounds < 1:
        raise typer.BadParameter("--rounds must be at least 1")
    folder = profile(out, units=units, seed=seed, rounds=rounds, frameworks=fws, threads=ths, networks=nets,
                     adaptive_units=adaptive, profiles=profiles, python=python, note=note, say=say)
    typer.echo(f"kernel data set: {folder}")


@kernels_app.command("fit")
def fit_cmd(
    data: Path = typer.Argument(..., help="Kernel data set (perfmodel kernels profile)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write (JSON)."),
    kernel_predictor: str = typer.Option("nnls", "--kernel-predictor", help="nnls, ridge, loglinear or forest."),
    type_scheme: str = typer.Option("split", "--types", help="base (kernel type), split (conv by shape class: 1x1, "
                                    "3x3/1, other), stem (split + a network's first conv on the image, at most 4 "
                                    "channels: OpenCV >= 5.1's new engine runs it 3-4x slower per MAC) or stem2 "
                                    "(stem with the other convs split into 3x3/2 and larger)."),
    overhead: str = typer.Option("add", "--overhead", help="add or affine network overhead."),
    source: str = typer.Option("auto", "--source", help="Fit the kernel predictors on: units (sampled one-kernel "
                               "models), profiles (the frameworks' per-node profiles of the networks: ONNX Runtime "
                               "and OpenCV cells only), both, or auto (profiles where the data set has them, "
                               "else units)."),
    network_weight: float = typer.Option(1.0, "--network-weight", help="The networks' whole timings as training "
                                         "rows of the kernel predictors (a network's kernels summed = its "
                                         "measured time), together weighing this many times all the unit / "
                                         "profile rows; 0: kernels from units / profiles alone."),
    json_out: bool = json_option("Print the fit summary as JSON."),
) -> None:
    """Fit the operator-level throughput model: per-kernel predictors on the data set's units or per-node
    profiles (and its networks' whole timings), the network overhead on its networks."""
    from perfmodel.workflows.kernels import fit_operator

    res = fit_operator(data, out, form={"kernel_predictor": kernel_predictor, "type_scheme": type_scheme,
                                        "overhead_form": overhead, "source": source,
                                        "network_weight": network_weight}, say=say)
    if json_out:
        typer.echo(json.dumps(res, indent=1, default=str))
        return
    print_table(f"operator model {out} ({len(res['networks'])} networks for the overhead)",
                ["framework", "threads", "fitted on", "rows", "rows' CV MAPE %", "network LONO rel. sd %"],
                [[c["framework"], str(c["threads"]), c["source"], str(c["units"]), f"{c['unit_cv_mape']:.1f}",
                  f"{100 * c['network_lono_rel_sd']:.1f}"] for c in res["cells"]])


@kernels_app.command("show")
def show_cmd(
    graph: str = typer.Argument(..., help="A zoo network name, a .onnx or a .keras file."),
    framework: str = typer.Option("onnxruntime", "--framework", help="Whose fusion rules."),
    json_out: bool = json_option("Print the kernels as JSON."),
) -> None:
    """The kernels FRAMEWORK runs for GRAPH, with their configuration."""
    from perfmodel.workflows.kernels import graph_kernels

    ks = graph_kernels(graph, framework)
    if json_out:
        typer.echo(json.dumps(ks, indent=1))
        return
    print_table(f"{graph}: {len(ks)} kernels ({framework})", ["#", "kernel", "in HxWxC", "out C", "k / s", "MMACs",
                "weights MB"],
                [[str(i), "+".join(k["ops"]), "x".join(map(str, k["input_hwc"])), str(k["output_hwc"][2]),
                  f"{k['kernel_size'][0]} / {k['stride'][0]}", f"{k['macs'] / 1e6:.1f}",
                  f"{k['weight_bytes'] / 1e6:.2f}"] for i, k in enumerate(ks)], left=2)


def register(app: typer.Typer) -> None:
    app.add_typer(kernels_app, name="kernels")
