"""Kernel profiling and the operator-level model (``perfmodel kernels profile / fit / show``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.workflows import Say, silent

#: the shipped operator model's form (benchmarks/bench_operator_model.py, docs/operator-model.md)
#: the shipped form: kernel predictors on the per-node profiles where the framework has a profiler, else on the
#: units, plus the networks' whole timings as sum rows of the same total weight (docs/operator-model.md)
DEFAULT_FORM = {"kernel_predictor": "nnls", "type_scheme": "split", "overhead_form": "add", "source": "auto",
                "network_weight": 1.0}


def profile(out: str | Path, *, units: int = 480, seed: int = 0, rounds: int = 2,
            frameworks: Sequence[str] = ("tensorflow", "litert", "onnxruntime", "opencv"),
            threads: Sequence[int] = (1, 2), networks: Sequence[str] | None = None, adaptive_from: str | None = None,
            adaptive_units: int = 0, profiles: bool = False, python: str | None = None, note: str | None = None,
            say: Say = silent) -> Path:
    """Sample ``units`` one-kernel models (or, with ``adaptive_from`` an operator model, ``adaptive_units`` more
    around the units its predictors price worst) and time them with the networks, interleaved, into ``out``.
    ``python``: the interpreter of the workers (a venv with another framework release); ``note``: what is
    special about this platform (recorded in the call, e.g. "competing load on CPU 1")."""
    from perfmodel.collect.kernel_campaign import run_kernel_campaign
    from perfmodel.zoo import NETWORKS
    from perfmodel.zoo.units import sample_units, zoo_prior

    from perfmodel.errors import UnknownNameError
    from perfmodel.runners import FRAMEWORKS

    for fw in frameworks:
        if fw not in FRAMEWORKS:
            raise UnknownNameError("framework", fw, FRAMEWORKS)
    for n in networks or ():
        if n not in NETWORKS:
            raise UnknownNameError("network", n, NETWORKS)
    if not threads or any(int(t) < 1 for t in threads):
        raise PerfmodelError(f"--threads must be positive integers, got {list(threads)}")
    if rounds < 1:
        raise PerfmodelError(f"--rounds must be at least 1, got {rounds}")
    nets = list(networks) if networks is not None else list(NETWORKS)
    offset = 0
    call_info: dict[str, Any] = {}
    if adaptive_units < 0:
        raise PerfmodelError(f"--adaptive must be a positive number of units, got {adaptive_units}")
    if adaptive_units:
        if not (Path(out) / "timings.csv").is_file():
            raise PerfmodelError(f"--adaptive adds units to an existing kernel data set; {str(out)!r} has none yet")
        unfinished = _unfinished_adaptive(Path(out), adaptive_units)
        if unfinished is not None:  # an interrupted adaptive call: the same units in the same rounds
            chosen, offset = unfinished
            say(f"resuming the unfinished adaptive call ({len(chosen)} units, rounds from {offset})")
        else:
            say(f"choosing {adaptive_units} units around those predicted worst (5-fold CV of the units)")
            chosen = worst_units_neighbours(out, adaptive_units, seed=seed + 1)
            offset = _next_round(Path(out))
        call_info = {"adaptive": adaptive_units, "unit_ids": [u.id for u in chosen]}
        nets = list(networks) if networks is not None else []
    else:
        if 0 < units < 10 or units < 0:
            raise PerfmodelError(f"--units {units}: at least 10 units are needed to fit kernel predictors "
                                 "(0: time the networks only, e.g. a later check of a fitted model)")
        if units == 0 and not nets and not profiles:
            raise PerfmodelError("--units 0 and no networks: nothing to time")
        from perfmodel.runlog import native_output_to_log

        with native_output_to_log("kernels profile: the zoo's operators (sampling prior)"):
            prior = zoo_prior() if units else {}
        chosen = sample_units(units, seed=seed, prior=prior) if units else []
    profile_nets = (list(networks) if networks else list(NETWORKS)) if profiles else []
    if python is not None:
        check_python(python)
    if note:
        call_info = {**call_info, "note": note}
    return run_kernel_campaign(out, chosen, networks=nets, frameworks=frameworks, threads=threads, rounds=rounds,
                               seed=seed, round_offset=offset, profile_networks=profile_nets, call_info=call_info,
                               python=python, say=lambda m: say(m))


def check_python(python: str) -> None:
    """Refuse an interpreter that cannot run the kernel worker (missing, or perfmodel not importable in it)."""
    import subprocess

    try:
        res = subprocess.run([python, "-c", "import perfmodel.collect.kernel_worker"], capture_output=True,
                             text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PerfmodelError(f"--python {python!r} cannot be run: {exc}") from None
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise PerfmodelError(f"--python {python!r} cannot run perfmodel's kernel worker ({last}); install "
                             "perfmodel in that environment, or add the project's environment to it (a .pth "
                             "file: docs/retrain.md)")


def _unfinished_adaptive(folder: Path, n: int) -> tuple[list[Any], int] | None:
    """The units and first round of the last call when it was an adaptive call of ``n`` units that did not
    finish (interrupted), else None."""
    import json

    from perfmodel.data.kernelset import read_jsonl
    from perfmodel.zoo.units import Unit

    from perfmodel.data.kernelset import KERNELSET_FILE

    meta_path = folder / KERNELSET_FILE
    calls = json.loads(meta_path.read_text()).get("calls", []) if meta_path.is_file() else []
    last = calls[-1] if calls else {}
    if last.get("adaptive") != n or "finished" in last or not last.get("unit_ids"):
        return None
    recs = {d["id"]: d for d in read_jsonl(folder / "units.jsonl")}
    units = [Unit.from_dict(recs[i]["unit"]) for i in last["unit_ids"] if i in recs]
    return units, int(last["rounds"][0])


def _next_round(folder: Path) -> int:
    import csv

    path = folder / "timings.csv"
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return 1 + max((int(r["round"]) for r in csv.DictReader(f)), default=-1)


def worst_units_neighbours(folder: str | Path, n: int, seed: int = 0) -> list[Any]:
    """nn-Meter's adaptive sampling: the units whose time the default form predicts worst (5-fold CV, summed
    over the framework x threads cells), and ``n`` new units around them."""
    import numpy as np

    from perfmodel.data.kernelset import read_kernelset
    from perfmodel.model.operator import OperatorModel
    from perfmodel.zoo.units import Unit, units_near

    kset = read_kernelset(folder)
    ids = sorted(kset.units)
    if len(ids) < 10:
        raise PerfmodelError(f"--adaptive needs a kernel data set with timed units ({len(ids)} in {str(folder)!r})")
    rng = np.random.default_rng(seed)
    fold = {u: int(i) for u, i in zip(ids, rng.integers(0, 5, len(ids)))}
    err = {u: 0.0 for u in ids}
    for cell in kset.cells:
        if cell not in kset.unit_ms:
            continue
        for f in range(5):
            train = [u for u in ids if fold[u] != f]
            m = OperatorModel(**{**DEFAULT_FORM, "source": "units", "network_weight": 0.0}).fit(kset, cells=[cell],
                                                                                   unit_ids=train)
            for u in ids:
                if fold[u] != f or u not in kset.unit_ms[cell]:
                    continue
                ks = kset.units[u].kernels.get(cell[0], [])
                cm = m.cell(*cell)
                pred = m.raw_ms(cm, ks, kset.units[u].io_bytes() / 1e6)
                meas = kset.unit_ms[cell][u]
                err[u] += abs(pred - meas) / meas
    worst = sorted(ids, key=lambda u: -err[u])[:max(1, n // 3)]
    return units_near([Unit.from_dict(kset.units[u].unit) for u in worst], n, seed=seed)


def fit_operator(data: str | Path, out: str | Path, *, form: dict[str, Any] | None = None,
                 say: Say = silent) -> dict[str, Any]:
    """Fit the operator-level model on a kernel data set (kernel predictors on its units, the overhead on all
    its networks) and save it; returns a summary per cell."""
    from perfmodel.data.kernelset import read_kernelset
    from perfmodel.model.operator import OperatorModel

    t0 = time.time()
    kset = read_kernelset(data)
    nets = sorted({n for c in kset.cells for n in kset.network_ms.get(c, {})})
    say(f"reading {len(nets)} network graphs for the overhead fit")
    nk = network_kernels(nets, sorted({c[0] for c in kset.cells}))
    model = OperatorModel(**(form or DEFAULT_FORM)).fit(kset, nk)
    model.save(out)
    cells = [{"framework": cm.framework, "threads": cm.threads, "source": cm.source, "units": cm.n_units,
              "unit_cv_mape": cm.unit_cv_mape, "network_lono_rel_sd": cm.network_rel_sigma}
             for _, cm in sorted(model.cells_.items())]
    for (fw, t), why in sorted(model.skipped_.items()):
        say(f"{fw} x{t} not fitted: {why}", warn=True)
    return {"model": str(out), "data": str(data), "networks": nets, "cells": cells,
            "skipped": {f"{fw} x{t}": why for (fw, t), why in sorted(model.skipped_.items())},
            "seconds": round(time.time() - t0, 1)}


def network_kernels(networks: Sequence[str], frameworks: Sequence[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """network -> framework -> the kernels it runs (``zoo.kernels.kernel_dicts`` on each zoo graph); TensorFlow's
    banners go to the run log."""
    from perfmodel.runlog import native_output_to_log
    from perfmodel.zoo.kernels import kernel_dicts, read_graph

    with native_output_to_log(f"read {len(networks)} network graphs"):
        return {n: kernel_dicts(read_graph(n), frameworks) for n in networks}


def graph_kernels(graph: str, framework: str) -> list[dict[str, Any]]:
    """The kernels ``framework`` runs for ``graph`` (a zoo name, .onnx or .keras), as dicts."""
    from perfmodel.zoo.kernels import detect_kernels, read_graph

    return [k.as_dict() for k in detect_kernels(read_graph(graph), framework)]
