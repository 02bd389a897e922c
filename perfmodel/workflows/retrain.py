"""``perfmodel retrain``: adapt the shipped operator-level model to a new platform from a small, chosen sample.

1. The networks to measure: the few whose kernels tell most about the model's predictors on the cells asked
   (:func:`perfmodel.model.adapt.choose_networks`), or those named.
2. Measure them on this machine (end-to-end times and, where the framework has a profiler, the per-node profile:
   :func:`perfmodel.workflows.kernels.profile` with ``--units 0``; ``python``: a venv with another framework
   release), or take them from data recorded elsewhere (``data``: a kernel data set, or a data set of cells with
   ``inference_ms``, e.g. another board's campaign).
3. Adapt each cell (:func:`perfmodel.model.adapt.adapt_operator_model`) and save the model with its
   ``adaptation`` record: the model it came from (path, sha256, what that was fitted on), what was measured
   (networks, cells, library versions, machine, note) and how long it took.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfmodel.errors import PerfmodelError
from perfmodel.workflows import Say, silent

#: networks sampled by default: with the refit candidate, 8 of the 13 zoo networks reach the full re-profile's
#: accuracy (docs/retrain.md: P1 96 %, P2 / P3 at their noise floor) in 2-3 minutes of measuring
DEFAULT_NETWORKS = 8


def retrain(model_path: str | Path, out: str | Path, *, frameworks: Sequence[str] | None = None,
            threads: Sequence[int] | None = None, networks: Sequence[str] | None = None,
            n_networks: int = DEFAULT_NETWORKS, measure_dir: str | Path | None = None,
            data: str | Path | None = None, python: str | None = None, note: str | None = None,
            rounds: int = 1, method: str = "auto", keep_other_cells: bool = True,
            network_model: str | Path | None = None, network_out: str | Path | None = None,
            say: Say = silent) -> dict[str, Any]:
    """Adapt ``model_path`` (an operator model) to this platform (or ``data``'s) and save it as ``out``; with
    ``network_model`` (a network-level throughput model) also that one, from the same sample, as
    ``network_out``. Returns the summary printed by the CLI (cells, what was measured, seconds)."""
    from perfmodel.errors import UnknownNameError
    from perfmodel.model.adapt import CellSample, adapt_operator_model, base_cell, check_method, choose_networks
    from perfmodel.model.operator import load_operator_model
    from perfmodel.runners import FRAMEWORKS
    from perfmodel.workflows.kernels import network_kernels
    from perfmodel.zoo import NETWORKS
    from perfmodel.zoo.networks import same_architecture

    t0 = time.time()
    model = load_operator_model(model_path)
    fws = list(frameworks) if frameworks else sorted({f for f, _ in model.cells_})
    for fw in fws:
        if fw not in FRAMEWORKS:
            raise UnknownNameError("framework", fw, FRAMEWORKS)
    ths = [int(t) for t in threads] if threads else sorted({t for _, t in model.cells_})
    if any(t < 1 for t in ths):
        raise PerfmodelError(f"--threads must be positive integers, got {ths}")
    for n in networks or ():
        if n not in NETWORKS:
            raise UnknownNameError("network", n, NETWORKS)
    check_method(method)
    if n_networks < 1:
        raise PerfmodelError(f"--count must be at least 1, got {n_networks}")
    if data is not None and measure_dir is not None:
        raise PerfmodelError("give --data (measured elsewhere) or --measure DIR (measure here), not both")
    if data is not None and python is not None:
        raise PerfmodelError("--python picks the interpreter that measures here; with --data nothing is measured")
    if (network_model is None) != (network_out is None):
        raise PerfmodelError("--network-model and --network-out go together")
    net_model = _network_model(network_model) if network_model is not None else None
    cells = [(fw, t) for fw in fws for t in ths]
    for c in cells:  # refuses a framework the model lacks, before measuring
        base_cell(model, *c)
    say(f"reading the zoo's {len(NETWORKS)} network graphs")
    nk = network_kernels(list(NETWORKS), [*fws, *(["opencv-new"] if "opencv" in fws else [])])
    siblings = {n: same_architecture(n) for n in NETWORKS}
    pool = nk
    recorded = _samples(Path(data), list(NETWORKS), cells) if data is not None else None  # read once
    if recorded is not None and not networks:  # choose among the networks it timed on every cell
        timed = set.intersection(*[set(recorded[0].get(c, CellSample()).networks) for c in cells]) if cells else set()
        pool = {n: v for n, v in nk.items() if n in timed}
        if not pool:
            raise PerfmodelError(f"{data} has no zoo network timed on every cell asked "
                                 f"({', '.join(f'{f} x{t}' for f, t in cells)})")
    chosen = list(networks) if networks else choose_networks(model, pool, cells, n_networks, siblings)
    t_choose = time.time() - t0
    say(f"networks to {'measure' if data is None else 'take from ' + str(data)}: {', '.join(chosen)}")
    t1 = time.time()
    if data is None:
        measure_dir = Path(measure_dir) if measure_dir is not None else Path(out).with_suffix("").with_name(
            Path(out).stem + "-sample")
        from perfmodel.workflows.kernels import profile

        _check_same_platform(Path(measure_dir), python or sys.executable, note)
        profile(measure_dir, units=0, networks=chosen, profiles=True, frameworks=fws, threads=ths, rounds=rounds,
                python=python, note=note, say=say)
        source_dir = Path(measure_dir)
        samples, src_meta = _samples(source_dir, chosen, cells)
        measure_s = time.time() - t1
        src_meta = {**src_meta, "measured_s": _rows_seconds(source_dir, chosen, cells)}
    else:
        source_dir = Path(data)
        samples = {c: CellSample({n: ms for n, ms in s.networks.items() if n in chosen},
                                 {n: p for n, p in s.profiles.items() if n in chosen})
                   for c, s in recorded[0].items()}
        samples = {c: s for c, s in samples.items() if s.networks or s.profiles}
        src_meta = recorded[1]
        measure_s = _rows_seconds(source_dir, chosen, cells) if src_meta["kind"] == "kernel data set" else math.nan
        src_meta = {**src_meta, "measured_s": measure_s}
    missing = [c for c in cells if c not in samples]
    if missing:
        what = ", ".join(f"{f} x{t}" for f, t in missing)
        if data is None:
            raise PerfmodelError(f"nothing was measured for {what} (see the run log)")
        raise PerfmodelError(f"{source_dir} has no timing of {', '.join(chosen)} for {what}")
    t2 = time.time()
    rules = {c: r for c in cells if (r := kernel_rules(c[0], src_meta.get("versions", {}))) is not None}
    new, report = adapt_operator_model(model, samples, nk, method=method, rules=rules,
                                       keep_other_cells=keep_other_cells)
    fit_s = time.time() - t2
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    new.source_ = {**model.source_, "adaptation": {
        "from": {"model": str(model_path), "sha256": digest, "fitted_on": model.source_.get("dataset"),
                 "versions": model.source_.get("versions")},
        "with": {"data": str(source_dir), "measured_here": data is None, "networks": chosen,
                 "cells": [f"{f} x{t}" for f, t in cells], **src_meta},
        "cells": [r.to_dict() for r in report],
        "seconds": {"choose": round(t_choose, 1), "measure": _r1(measure_s), "adapt": round(fit_s, 2),
                    "total": round(time.time() - t0, 1)},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    network_summary = None
    if net_model is not None:  # before the operator model is written: a refusal leaves no half result
        say(f"adapting the network-level model {network_model}")
        network_summary = _adapt_network_model(net_model, network_model, network_out, samples, chosen,
                                               new.source_["adaptation"])
    new.save(out)
    kept = sorted(set(model.cells_) - set(cells)) if keep_other_cells else []
    return {"model": str(out), "from": str(model_path), "networks": chosen, "data": str(source_dir),
            "cells": [r.to_dict() for r in report], "kept": [f"{f} x{t}" for f, t in kept],
            "seconds": new.source_["adaptation"]["seconds"], "versions": src_meta.get("versions", {}),
            "network_model": network_summary}


def _check_same_platform(folder: Path, python: str, note: str | None) -> None:
    """A sample folder is resumed only on the platform it was measured on: rows timed by another interpreter
    (another framework release) or under another note would pass for this one's."""
    import json

    from perfmodel.data.kernelset import KERNELSET_FILE

    meta = folder / KERNELSET_FILE
    if not meta.is_file():
        return
    for call in json.loads(meta.read_text()).get("calls", []):
        if call.get("python", python) != python or (call.get("note") or None) != (note or None):
            raise PerfmodelError(f"{folder} holds a sample measured with --python {call.get('python')!r} and "
                                 f"--note {call.get('note')!r}; measure this platform into another folder "
                                 "(--measure DIR), or remove that one")


def _network_model(path: str | Path):
    from perfmodel.model import load_model

    m = load_model(path)
    if m.target != "throughput_fps":
        raise PerfmodelError(f"--network-model {str(path)!r} predicts {m.target}; retrain adapts throughput "
                             "models (throughput_fps)")
    if not m.metadata.get("dataset"):
        raise PerfmodelError(f"--network-model {str(path)!r} does not name the data set it was fitted on "
                             "(metadata.dataset): its inputs for the zoo networks cannot be found")
    return m


def network_model_fps(model: Any, keys: Sequence[tuple[str, int, str]]) -> dict[tuple[str, int, str], float]:
    """The network-level model's predicted fps of (framework, threads, network) cells, from the rows of the
    data set it was fitted on (its counts as the model reads them; median over a cell's rows)."""
    from perfmodel.runlog import native_output_to_log
    from perfmodel.workflows.predict import dataset_samples, predict_samples, prepare_samples

    dataset = str(model.metadata["dataset"])
    counts = model.metadata.get("counts_from")
    counts_from = Path(counts) if counts else None
    with native_output_to_log("network-level model inputs"):
        df = dataset_samples(model, dataset, counts_from=counts_from)
        prepared = prepare_samples(model, df, dataset=dataset, counts_from=counts_from)
        pred = predict_samples(model, prepared, source=dataset).table
    want = set(keys)
    out: dict[tuple[str, int, str], float] = {}
    for (fw, t, n), g in pred.groupby(["framework", "threads", "network"]):
        key = (str(fw), int(t), str(n))
        if key in want:
            v = g["pred"].dropna()
            if len(v):
                out[key] = float(v.median())
    return out


def _adapt_network_model(model: Any, path: str | Path, out: str | Path, samples: dict, chosen: Sequence[str],
                         record: dict[str, Any]) -> dict[str, Any]:
    """The network-level model with a time factor per sampled (framework, threads) (``preparation.
    time_scale``), saved as ``out``."""
    import copy

    from perfmodel.model import save_model
    from perfmodel.model.adapt import network_time_scales

    measured = {(fw, t, n): ms for (fw, t), s in samples.items() for n, ms in s.networks.items()}
    plain = copy.deepcopy(model)  # an earlier retrain's factors: replaced for the cells sampled now, kept elsewhere
    plain.preparation.time_scale = None
    fps = network_model_fps(plain, list(measured))
    scales = network_time_scales(plain, fps, measured)
    if not scales:
        raise PerfmodelError(f"the network-level model {str(path)!r} has no prediction for any sampled cell "
                             f"({', '.join(chosen)}: its training data set lacks them)")
    new = copy.deepcopy(model)
    old = dict(new.preparation.time_scale or {})
    ts = {**old, **{c.cell: c.scale for c in scales}}
    new.preparation.time_scale = ts
    new.preparation.time_scale_source = f"perfmodel retrain from {', '.join(chosen)} ({record['when']})"
    new.metadata = {**new.metadata, "adaptation": {
        "from": {"model": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()},
        "with": record["with"], "cells": [c.to_dict() for c in scales], "when": record["when"]}}
    save_model(new, out)
    skipped = sorted({f"{fw} x{t}" for fw, t in samples} - {c.cell for c in scales})
    return {"model": str(out), "from": str(path), "cells": [c.to_dict() for c in scales], "not_adapted": skipped}


def kernel_rules(framework: str, versions: dict[str, str]) -> str | None:
    """The fusion rules (``zoo.kernels``) of ``framework`` as the measured platform ran it: OpenCV's new engine
    (the workers report ``opencv_engine``; OpenCV >= 5.1 has no other) runs ``opencv-new``. None where the data
    does not say (the base cell's rules are kept)."""
    if framework != "opencv":
        return framework
    engine = versions.get("opencv_engine")
    if engine is None and versions.get("opencv"):
        try:
            major, minor = (int(x) for x in versions["opencv"].split(".")[:2])
            engine = "new" if (major, minor) >= (5, 1) else "classic"
        except ValueError:
            engine = None
    from perfmodel.zoo.kernels import rules_name

    return None if engine is None else rules_name(framework, engine)


def _r1(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 1)


def _samples(folder: Path, networks: Sequence[str], cells: Sequence[tuple[str, int]]):
    """Per-cell samples of ``networks`` from a kernel data set or a data set of cells, and what it says of
    itself (kind, versions, machine, note)."""
    from perfmodel.data.kernelset import KERNELSET_FILE, read_kernelset
    from perfmodel.model.adapt import CellSample, sample_from_kernelset

    if (folder / KERNELSET_FILE).is_file():
        kset = read_kernelset(folder)
        samples = sample_from_kernelset(kset, networks, cells)
        calls = kset.meta.get("calls", [])
        versions: dict[str, str] = {}
        for c in calls:
            versions.update(c.get("versions", {}))
        notes = sorted({c["note"] for c in calls if c.get("note")})
        meta = {"kind": "kernel data set", "versions": versions, "machine": (kset.meta.get("machine") or {}).get(
            "cpu_model"), "note": "; ".join(notes) or None}
        return samples, meta
    if (folder / "dataset.json").is_file():
        from perfmodel.data import read_dataset, wide_per_cell

        ds = read_dataset(folder)
        df = wide_per_cell(ds).frame
        if "inference_ms" not in df.columns:
            raise PerfmodelError(f"{folder}: the data set has no inference_ms to adapt from")
        med = df.groupby(["framework", "threads", "network"])["inference_ms"].median()
        samples: dict[tuple[str, int], CellSample] = {}
        for (fw, t, n), ms in med.items():
            cell = (str(fw), int(t))
            if cell in cells and n in networks and ms > 0:
                samples.setdefault(cell, CellSample()).networks[str(n)] = float(ms)
        md = getattr(ds, "metadata", None) or {}
        cpu = md.get("cpu_model") if isinstance(md, dict) else None
        return samples, {"kind": "data set of cells", "machine": cpu, "versions": {}}
    raise PerfmodelError(f"{str(folder)!r} is neither a kernel data set (kernelset.json) nor a data set of cells "
                         "(dataset.json)")


def _rows_seconds(folder: Path, networks: Sequence[str], cells: Sequence[tuple[str, int]]) -> float:
    """The measuring time of the rows of ``networks`` x ``cells`` in a kernel data set (their wall_s)."""
    import csv

    total = 0.0
    want_cells = {(f, int(t)) for f, t in cells}
    with open(folder / "timings.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["item"] in networks and (row["framework"], int(row["threads"])) in want_cells:
                try:
                    w = float(row["wall_s"])
                except ValueError:
                    continue
                if not math.isnan(w):
                    total += w
    return total


def describe(summary: dict[str, Any]) -> list[list[str]]:
    """Table rows of a retrain summary: one per adapted cell."""
    rows = []
    for c in summary["cells"]:
        lono = c["lono_mape"]
        rows.append([c["framework"], str(c["threads"]), c["base"], c["method"], f"{c['global_scale']:.3f}",
                     str(c["profiled_kernels"]),
                     ", ".join(f"{k} {v:.1f}" for k, v in lono.items()) or "(one network: none)"])
    return rows


__all__ = ["DEFAULT_NETWORKS", "describe", "retrain"]
