"""``perfmodel predict --graph``: a network never run, from its graph alone. Imports neither typer nor the
network-level model, so that :mod:`perfmodel.cli.entry` can run it without building the typer app."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from perfmodel.cli.checks import check_option, split_list
from perfmodel.cli.show import print_table, say
from perfmodel.errors import PerfmodelError


def predict_graph_command(graph: str, model_path: Path | None, framework: str | None, threads: int | None,
                          alpha: float, json_out: bool, others: Sequence[object] = ()) -> None:
    """fps with its interval for each framework x threads of the operator model (or those asked), printed as a
    table or, with ``json_out``, as a JSON list."""
    from perfmodel.workflows.graph import fmt_interval, predict_graph

    check_option("--alpha", alpha, above=0, below=1, what=" (1 - the confidence of the interval)")
    if any(others):
        raise PerfmodelError("--graph predicts from a graph alone: give no --dataset, --csv, --network or -- CMD")
    if model_path is None:
        raise PerfmodelError("--graph needs --model: an operator model (trained/throughput_operator.json)")
    check_option("--threads", threads, minimum=1)
    res = predict_graph(model_path, graph, frameworks=split_list([framework]) if framework else None,
                        threads=[threads] if threads else None, alpha=alpha, say=say)
    if json_out:
        keys = ("framework", "threads", "fps", "lo", "hi", "ms", "kernels", "unmodelled_types", "floored")
        sys.stdout.write(json.dumps([{k: r[k] for k in keys} for r in res["rows"]], indent=1) + "\n")
        sys.stdout.flush()
        return
    conf = f"{100 * (1 - alpha):g} %"
    print_table(f"{res['graph']}: inference throughput from the graph ({res['model']})",
                ["framework", "threads", "fps", f"{conf} interval", "ms / image", "kernels"],
                [[r["framework"], str(r["threads"]), f"{r['fps']:.1f}", fmt_interval(r["lo"], r["hi"]),
                  f"{r['ms']:.2f}", str(r["kernels"])] for r in res["rows"]])
    say("fps = 1000 / the predicted model-call time (batch 1; image read and pre-processing not included)")
