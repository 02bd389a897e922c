"""The library parts of ``perfmodel bench``: the cells asked for, one cell timed, the machine's facts."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError

DEFAULT_NETWORK = "squeezenet1_1"


def bench_cells(frameworks: list[str] | None, networks: list[str] | None, threads: list[int] | None, *,
                opencv_engine: str | None = None, model: Path | None = None
                ) -> list[tuple[str, str | None, int]]:
    """The framework x network x threads cells to time, each name checked (``model``: a model file timed
    instead of zoo networks, by exactly one framework)."""
    from perfmodel.errors import check_choice
    from perfmodel.runners import FRAMEWORKS
    from perfmodel.runners.base import check_threads
    from perfmodel.runners.opencv import ENGINES

    fws = list(dict.fromkeys(frameworks or FRAMEWORKS))
    for fw in fws:
        check_choice("framework", fw, FRAMEWORKS)
    thread_counts = list(dict.fromkeys(check_threads(t) for t in (threads or [1])))
    if opencv_engine is not None:
        check_choice("OpenCV engine", opencv_engine, ENGINES)
    if model is not None:
        if len(fws) != 1:
            raise PerfmodelError("--model needs exactly one --framework (the one that reads that file)")
        if networks:
            raise PerfmodelError("give --model or --network, not both")
        if not model.exists():
            raise PerfmodelError(f"model {str(model)!r} not found")
        nets: list[str | None] = [model.stem if model.suffix else model.name]
    else:
        from perfmodel.zoo import get_network

        nets = list(dict.fromkeys(networks or [DEFAULT_NETWORK]))
        for net in nets:
            get_network(net)
    return [(fw, net, t) for net in nets for fw in fws for t in thread_counts]


def bench_cell(fw: str, net: str | None, t: int, paths: list[Path], model: Path | None, options: dict[str, Any],
               timing: dict[str, Any], isolate: bool, samples: bool) -> dict[str, Any]:
    """One cell timed (in a fresh process when ``isolate``): its statistics, or ``{"error"}``."""
    from perfmodel.runners import run_cell, time_isolated

    try:
        if isolate:
            result = time_isolated(fw, net, t, paths, model_path=model, options=options, **timing)
        else:
            result = run_cell(fw, net, t, paths, model_path=model, options=options, **timing)
    except PerfmodelError as exc:
        return {"framework": fw, "network": net, "threads": t, "error": str(exc)}
    return result.to_dict(samples=samples)


def machine() -> dict[str, Any]:
    """The machine a bench ran on (architecture, CPU model, logical CPUs, Python, system)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu": cpu, "logical_cpus": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform()}
