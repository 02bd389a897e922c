"""Prediction from a network's graph alone (``perfmodel predict --graph``, ``perfmodel select --graph``): the
operator-level model (:mod:`perfmodel.model.operator`) on the kernels each framework runs for the graph
(:mod:`perfmodel.zoo.kernels`), for every framework x threads of the model or those asked."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.workflows import Say, silent


def read_graph_source(graph: str) -> Any:
    """A zoo network name, a ``.onnx`` or a ``.keras`` file -> its unfused op graph."""
    from perfmodel.runlog import native_output_to_log
    from perfmodel.zoo.kernels import read_graph

    with native_output_to_log(f"read graph {graph}"):  # TensorFlow's import banners go to the run log
        return read_graph(graph)


def predict_graph(model_path: str | Path, graph: str | Any, *, frameworks: Sequence[str] | None = None,
                  threads: Sequence[int] | None = None, alpha: float = 0.1, say: Say = silent) -> dict[str, Any]:
    """fps with its (1 - alpha) interval for each framework x threads the model has (or those asked).

    Returns ``{"graph", "model", "rows": [{framework, threads, fps, lo, hi, ms, kernels, unmodelled_types}],
    "seconds": {...}}``."""
    from perfmodel.model.operator import load_operator_model
    from perfmodel.zoo.kernels import kernel_dicts

    if not 0 < alpha < 1:
        raise PerfmodelError(f"--alpha must be between 0 and 1, got {alpha}")
    t0 = time.perf_counter()
    model = load_operator_model(model_path)
    t1 = time.perf_counter()
    g = read_graph_source(graph) if isinstance(graph, str) else graph
    t2 = time.perf_counter()
    cells = model.cells
    if frameworks:
        have = sorted({c[0] for c in cells})
        bad = [f for f in frameworks if f not in have]
        if bad:
            raise PerfmodelError(f"the operator model has no framework {', '.join(bad)} (it has {', '.join(have)})")
        cells = [c for c in cells if c[0] in frameworks]
    if threads:
        have_t = sorted({c[1] for c in cells})
        bad_t = [t for t in threads if t not in have_t]
        if bad_t:
            raise PerfmodelError(f"the operator model has no predictors for threads {bad_t} (it has {have_t}); "
                                 "profile them with perfmodel kernels profile")
        cells = [c for c in cells if c[1] in threads]
    kernels = kernel_dicts(g, sorted({model.kernel_rules(*c) for c in cells}))
    rows = [model.predict_kernels(fw, t, kernels[model.kernel_rules(fw, t)], alpha=alpha) for fw, t in cells]
    t3 = time.perf_counter()
    missing: dict[str, list[str]] = {}
    for r in rows:
        for t in r["unmodelled_types"]:
            missing.setdefault(t, []).append(f"{r['framework']} x{r['threads']}")
    floored = [f"{r['framework']} x{r['threads']}" for r in rows if r["floored"]]
    if floored:
        say(f"{', '.join(floored)}: the graph is far smaller than the networks the overhead was fitted on; its "
            "time is floored at half its kernels' predicted time", warn=True)
    for t, where in missing.items():
        say(f"kernel type {t!r} has no predictor (no profiling unit of that type) in {', '.join(where)}: "
            "counted as 0 ms", warn=True)
    return {"graph": getattr(g, "source", str(graph)), "model": str(model_path), "alpha": alpha, "rows": rows,
            "seconds": {"load_model": t1 - t0, "read_graph": t2 - t1, "predict": t3 - t2}}


def select_graph(model_path: str | Path, graph: str, *, min_fps: float | None = None, alpha: float = 0.1,
                 unevaluable: Sequence[str] = (), say: Say = silent) -> dict[str, Any]:
    """Rank framework x threads for a network never run: by predicted fps, ``min_fps`` checked on the
    prediction and on its interval's lower end. Constraints the operator model cannot evaluate (power,
    accuracy, ...) are listed in ``not_evaluable``."""
    res = predict_graph(model_path, graph, alpha=alpha, say=say)
    ranked = sorted(res["rows"], key=lambda r: -r["fps"])
    for r in ranked:
        r["meets"] = None if min_fps is None else bool(r["fps"] >= min_fps)
        r["surely_meets"] = None if min_fps is None else bool(r["lo"] >= min_fps)
    feasible = [r for r in ranked if r["meets"] is not False]
    return {**res, "rows": ranked, "min_fps": min_fps, "choice": feasible[0] if feasible else None,
            "not_evaluable": list(unevaluable), "feasible": bool(feasible)}


def fmt_interval(lo: float, hi: float | None) -> str:
    """``lo - hi`` fps; an interval whose upper time end is not above 0 has no upper fps bound."""
    return f"{lo:.1f} - {hi:.1f}" if hi is not None else f"{lo:.1f} - (no bound)"
