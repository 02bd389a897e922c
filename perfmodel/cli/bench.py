"""``perfmodel bench``: quick side-by-side timing of frameworks x networks x threads.

The timing loop and statistics live in :mod:`perfmodel.runners.timing`; this module only parses options,
runs the cells (each in a fresh process by default, see :mod:`perfmodel.runners.worker`) and prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from perfmodel.cli.options import json_option, list_option
from perfmodel.cli.show import print_table
from perfmodel.workflows.bench import DEFAULT_NETWORK, bench_cell, bench_cells, machine
SYNTHETIC_IMAGES = 16


def bench(
    frameworks: list[str] = list_option(None, "--framework", "-f", help="tensorflow, litert, onnxruntime or "
                                        "opencv (default: all four)."),
    networks: list[str] = list_option(None, "--network", "-n", help=f"Zoo networks (default: {DEFAULT_NETWORK}). "
                                      "See `perfmodel zoo list`."),
    threads: list[str] = list_option(None, "--threads", "-t", item=int, help="Thread counts (default: 1)."),
    images: Path = typer.Option(None, "--images", help="Folder of JPEG/PNG images (default: "
                                f"{SYNTHETIC_IMAGES} deterministic synthetic 500x375 JPEGs)."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed images before timing each cell."),
    count: int = typer.Option(20, "--count", min=1, help="Timed images per cell (at least)."),
    min_time: float = typer.Option(1.0, "--min-time", min=0.0, help="Seconds of timing per cell (at least); "
                                   "a cell runs --count images or --min-time seconds, whichever is longer."),
    model: Path = typer.Option(None, "--model", help="Time this model file instead of a zoo network "
                               "(SavedModel folder, .tflite or .onnx; needs exactly one --framework)."),
    xnnpack: bool = typer.Option(True, "--xnnpack/--no-xnnpack", help="LiteRT: XNNPACK delegate (default) "
                                 "or built-in kernels."),
    opencv_engine: str = typer.Option(None, "--opencv-engine", help="OpenCV DNN engine: classic, new or auto "
                                      "(OpenCV 5; default: classic where the release has it - 4.x, 5.0 - else its "
                                      "own engine, recorded)."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate", help="Run every cell in a fresh process "
                                 "(default; needed for several TensorFlow thread counts)."),
    samples: bool = typer.Option(False, "--samples", help="With --json: include per-image times."),
    json_out: bool = json_option("Print JSON instead of the table."),
) -> None:
    """Time read + pre-process + inference per image for each framework x network x threads cell.

    Each cell loads the model (exported from the zoo on first use), runs --warmup untimed images, then
    at least --count images and at least --min-time seconds. Prints count / min / median / mean / p90 /
    p99 / max latency (ms) and images/s (= 1000 / mean), like TFLite's benchmark_model; pre and infer
    are the mean pre-processing (read + decode + resize + normalise) and inference parts.
    """
    from perfmodel.errors import PerfmodelError

    cells = bench_cells(frameworks, networks, threads, opencv_engine=opencv_engine, model=model)
    from perfmodel.images import default_images, list_images

    paths = list_images(images) if images is not None else default_images(SYNTHETIC_IMAGES)
    timing = {"warmup": warmup, "count": count, "min_time_s": min_time}
    options = {"litert": {"xnnpack": xnnpack}, "opencv": {"engine": opencv_engine} if opencv_engine else {}}

    rows: list[dict[str, Any]] = []
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=True,
                  disable=json_out or not sys.stderr.isatty()) as bar:
        task = bar.add_task("bench", total=len(cells))
        for fw, net, t in cells:
            bar.update(task, description=f"{fw} {net} t={t}")
            rows.append(bench_cell(fw, net, t, paths, model, options.get(fw, {}), timing, isolate, samples))
            bar.advance(task)

    failed = [r for r in rows if "error" in r]
    if json_out:
        doc = {"machine": machine(), "images": {"count": len(paths), "source": str(images) if images else
                                                  "synthetic 500x375 JPEG (perfmodel.images.default_images)"},
               "timing": timing, "isolate": isolate, "cells": rows}
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_bench(rows, len(paths), images)
    if failed:
        raise PerfmodelError(f"{len(failed)} of {len(rows)} cell(s) failed: "
                             + "; ".join(f"{r['framework']} {r['network']} t={r['threads']}: {r['error']}"
                                         for r in failed))


def _print_bench(rows: list[dict[str, Any]], n_images: int, images: Path | None) -> None:
    src = str(images) if images else "synthetic 500x375 JPEGs"
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["framework"], str(r["network"]), str(r["threads"]), "[red]error[/red]", *[""] * 9])
            continue
        table.append([r["framework"], r["network"], str(r["threads"]), str(r["count"]),
                      *(f"{r[k]:.2f}" for k in ("min_ms", "median_ms", "mean_ms", "p90_ms", "p99_ms", "max_ms")),
                      f"{r['images_per_s']:.1f}", f"{r['preprocess_mean_ms']:.2f}",
                      f"{r['inference_mean_ms']:.2f}"])
    print_table(f"perfmodel bench: ms per image (read + pre-process + inference), {n_images} images from {src}",
                ["framework", "network", "threads", "count", "min", "median", "mean", "p90", "p99", "max", "img/s",
                 "pre", "infer"], table, left=3, no_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``perfmodel bench``."""
    app.command("bench", help=_reflow(bench.__doc__ or ""))(bench)


def _reflow(doc: str) -> str:
    """Docstring paragraphs as single lines (rich help would otherwise keep the source line breaks)."""
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)
