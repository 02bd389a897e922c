"""Operator-level throughput model (issue 19): every zoo network x framework x threads predicted from its graph.

    python benchmarks/bench_operator_model.py [--data datasets/kernels] [--json] [--growth] [--later DIR]

For each network N, each (framework, threads) and each variant: the kernel predictors are fitted on the kernel
data set's sampled units, or on the *other* networks' per-node profiles, and (N1-N3, shipped) the *other*
networks' whole timings as sum rows; the network overhead on the other networks' timings (N and its input-size
sibling held out everywhere), then N's time is predicted from its graph alone and compared with its
measured time (the mean of the per-round medians of interleaved, unprofiled repeats, same campaign). Beside it,
fitted leave-one-network-out on the same timings: the MACs-only baseline (time = a + b MACs) and a network-level
linear model (time = a + b MACs + c weight MB + d kernels). Noise floor: each network's disagreement between the
campaign's rounds (|r0 - r1| / mean).

``--growth``: accuracy of the default variant vs the number of units used (random subsets).
``--later DIR``: a second network timing (``perfmodel kernels profile DIR --units 0``: the networks only) taken later: the
default model's predictions, rescaled by the GEMM calibration ratio, against it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfmodel.data.kernelset import read_kernelset  # noqa: E402
from perfmodel.model.operator import OperatorModel  # noqa: E402
from perfmodel.workflows.kernels import network_kernels  # noqa: E402

#: registered before the first run (docs/experiments.md): V1 the issue's form, V2 conv split by shape class,
#: V3 V2 with an affine network overhead; beside them the other kernel predictors of the issue
VARIANTS = {
    "V1 nnls/base/add": dict(kernel_predictor="nnls", type_scheme="base", overhead_form="add"),
    "V2 nnls/split/add": dict(kernel_predictor="nnls", type_scheme="split", overhead_form="add"),
    "V3 nnls/split/affine": dict(kernel_predictor="nnls", type_scheme="split", overhead_form="affine"),
    "ridge/split/add": dict(kernel_predictor="ridge", type_scheme="split", overhead_form="add"),
    "loglinear/split/add": dict(kernel_predictor="loglinear", type_scheme="split", overhead_form="add"),
    "forest/split/add": dict(kernel_predictor="forest", type_scheme="split", overhead_form="add"),
    # the design change (registered 2026-12-07 14:25, before their run): kernels timed inside the *other*
    # networks (ONNX Runtime's per-node profiles), alone or with the units
    "P1 profiles nnls/split/add": dict(source="profiles", kernel_predictor="nnls", type_scheme="split",
                                       overhead_form="add"),
    "P2 profiles+units nnls/split/add": dict(source="both", kernel_predictor="nnls", type_scheme="split",
                                             overhead_form="add"),
    # shipped until 2026-12-07 19:00: P1 where the framework has a per-node profiler, V2 elsewhere
    "S0 P1 where profiled + V2 elsewhere": dict(source="auto", kernel_predictor="nnls", type_scheme="split",
                                                overhead_form="add"),
    # registered 2026-12-07 19:00, before their run (docs/experiments.md): the other networks' whole timings as
    # sum rows beside the units (N1 same total weight, N2 4x), and beside the shipped source (N3)
    "N1 units+networks nnls/split/add": dict(source="units", network_weight=1.0, kernel_predictor="nnls",
                                             type_scheme="split", overhead_form="add"),
    "N2 units+networks x4 nnls/split/add": dict(source="units", network_weight=4.0, kernel_predictor="nnls",
                                                type_scheme="split", overhead_form="add"),
    # shipped since 19:00 (perfmodel.workflows.kernels.DEFAULT_FORM)
    "shipped: N3 = S0 + networks' whole timings": dict(source="auto", network_weight=1.0, kernel_predictor="nnls",
                                                       type_scheme="split", overhead_form="add"),
    # registered 2026-12-07 19:11, before their run: the stem convolution as its own type (T1), and T1 with
    # conv:other split into 3x3/2 and larger kernels (T2), on the shipped form
    "T1 shipped form + stem type": dict(source="auto", network_weight=1.0, kernel_predictor="nnls",
                                       type_scheme="stem", overhead_form="add"),
    "T2 shipped form + stem + 3x3/2 and larger": dict(source="auto", network_weight=1.0, kernel_predictor="nnls",
                                                  type_scheme="stem2", overhead_form="add"),
}
DEFAULT = "shipped: N3 = S0 + networks' whole timings"
from perfmodel.zoo.networks import NETWORKS, same_architecture  # noqa: E402

SIBLINGS = {n: same_architecture(n) for n in NETWORKS}  # held out together (one architecture, two input sizes)


def _rel_ls(X, y):
    w = 1.0 / y
    coef, *_ = np.linalg.lstsq(X * w[:, None], np.ones_like(y), rcond=None)
    return coef


def baselines(kset, nk, cell, nets, held):
    fw = cell[0]
    train = [n for n in nets if n != held and n not in SIBLINGS.get(held, ())
             and not math.isnan(kset.network_median(cell[0], cell[1], n))]

    def feats(n, full):
        ks = nk[n][fw]
        macs = sum(k["macs"] for k in ks) / 1e9
        if not full:
            return [1.0, macs]
        return [1.0, macs, sum(k["weight_bytes"] for k in ks) / 1e6, len(ks)]

    y = np.array([kset.network_median(fw, cell[1], n) for n in train])
    out = {}
    for name, full in (("MACs-only", False), ("network-level", True)):
        X = np.array([feats(n, full) for n in train])
        coef = _rel_ls(X, y)
        out[name] = float(np.dot(coef, feats(held, full)))
    return out


def measured(ks, cells, nets):
    """``(cell, network, ms)`` for every network the kernel set ``ks`` timed in ``cells``."""
    for cell in cells:
        for n in nets:
            meas = ks.network_median(cell[0], cell[1], n)
            if not math.isnan(meas):
                yield cell, n, meas


def disagreement(reps):
    """A network's round-to-round disagreement: (max - min) / mean of its rounds' medians."""
    return (max(reps) - min(reps)) / statistics.mean(reps)


def evaluate(kset, nk, variants, cells, nets, unit_ids=None):
    rows = []
    for vname, params in variants.items():
        # held-out profiles or network rows: refit per network
        profiled = params.get("source", "units") != "units" or params.get("network_weight", 0) > 0
        for cell in cells:
            if params.get("source") in ("profiles", "both") and cell not in kset.profiles:
                continue
            model = None if profiled else OperatorModel(**params).fit(kset, cells=[cell], unit_ids=unit_ids)
            for _, n, meas in measured(kset, [cell], nets):
                others = [m for m in nets if m != n and m not in SIBLINGS.get(n, ())]
                if profiled:  # the held-out network's own profile is never used; fit() fits the overhead on others
                    model = OperatorModel(**params).fit(kset, nk, networks=others, cells=[cell], unit_ids=unit_ids)
                else:
                    model.fit_overhead(kset, nk, others)
                p = model.predict_kernels(cell[0], cell[1], nk[n][cell[0]])
                rows.append({"variant": vname, "framework": cell[0], "threads": cell[1], "network": n,
                             "measured_ms": meas, "predicted_ms": p["ms"], "err": (p["ms"] - meas) / meas,
                             "inside": p["lo"] <= 1000 / meas <= (p["hi"] if p["hi"] is not None else math.inf)})
    return rows


def summary(rows, key):
    groups = {}
    for r in rows:
        groups.setdefault(key(r), []).append(abs(r["err"]))
    return {g: {"cells": len(v), "within10": 100 * float(np.mean(np.array(v) <= 0.10)),
                "mape": 100 * float(np.mean(v))} for g, v in groups.items()}


def print_table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "datasets" / "kernels"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--growth", action="store_true", help="accuracy vs number of units sampled")
    ap.add_argument("--later", help="a later networks-only timing folder to check against")
    ap.add_argument("--validation", help="a perfmodel data set of network cells (e.g. datasets/validation-networks, "
                    "another day and CPU): its inference_ms medians against the default model x GEMM ratio")
    ap.add_argument("--simulated", action="store_true", help="the hardware-metric view from the data set's "
                    "simulated.jsonl (callgrind counts per unit and network)")
    ap.add_argument("--speed", metavar="MODEL", help="time predict --graph of DenseNet-121's ONNX file (426 ops, 186 "
                    "kernels) with this operator model: in a warm process and as a fresh CLI process")
    ap.add_argument("--variants", default="all", help="comma-separated variant names, or 'all'")
    args = ap.parse_args(argv)
    t0 = time.time()
    kset = read_kernelset(args.data)
    cells = [c for c in kset.cells if c in kset.unit_ms and kset.network_ms.get(c)]
    nets = sorted({n for c in cells for n in kset.network_ms[c]})
    frameworks = sorted({c[0] for c in cells})
    nk = network_kernels(nets, frameworks)
    variants = VARIANTS if args.variants == "all" else {k: VARIANTS[k] for k in args.variants.split(",")}
    rows = evaluate(kset, nk, variants, cells, nets)
    # baselines and noise, once per (cell, network)
    base_rows, noise = [], []
    for cell, n, meas in measured(kset, cells, nets):
        for name, pred in baselines(kset, nk, cell, nets, n).items():
            base_rows.append({"variant": name, "framework": cell[0], "threads": cell[1], "network": n,
                              "err": (pred - meas) / meas})
        reps = kset.network_ms[cell][n]
        if len(reps) >= 2:
            noise.append({"variant": "noise floor (round disagreement)", "framework": cell[0], "threads": cell[1],
                          "network": n, "err": disagreement(reps)})
    allrows = rows + base_rows + noise
    overall = summary(allrows, lambda r: r["variant"])
    per_fw = summary(allrows, lambda r: (r["variant"], r["framework"], r["threads"]))
    per_net = summary([r for r in allrows if r["variant"] in (DEFAULT, "network-level", "MACs-only",
                                                                "noise floor (round disagreement)")],
                      lambda r: (r["variant"], r["network"]))
    coverage = {v: 100 * float(np.mean([r["inside"] for r in rows if r["variant"] == v])) for v in variants}
    result = {"data": args.data, "units": len(kset.units), "cells": [list(c) for c in cells], "networks": nets,
              "overall": overall, "interval_coverage_90": coverage,
              "per_framework": {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in per_fw.items()},
              "per_network": {f"{k[0]}|{k[1]}": v for k, v in per_net.items()}, "rows": allrows}
    if args.growth:
        result["growth"] = growth(kset, nk, cells, nets)
    if args.later:
        result["later"] = later_check(kset, nk, cells, nets, args.later)
    if args.simulated:
        result["hardware_view"] = hardware_view(kset, nk, nets)
    if args.validation:
        result["validation"] = validation_check(kset, nk, cells, nets, args.validation)
    if args.speed:
        result["speed"] = speed(args.speed)
    cost = profiling_cost(kset)
    result["profiling_cost"] = cost
    result["wall_s"] = round(time.time() - t0, 1)
    if args.json:
        print(json.dumps(result, indent=1, default=float))
        return 0
    print(f"operator-level model: {len(nets)} networks x {len(cells)} framework x threads cells, "
          f"{len(kset.units)} units; {args.data}")
    print_table("overall (leave-one-network-out; noise floor = the same cell's round disagreement)",
                ["variant", "cells", "within +-10 %", "MAPE %", "90 % interval covers"],
                [[v, o["cells"], f"{o['within10']:.1f}", f"{o['mape']:.2f}",
                  f"{coverage[v]:.0f} %" if v in coverage else "-"] for v, o in overall.items()])
    keys = sorted({(k[1], k[2]) for k in per_fw})
    show = [DEFAULT, "network-level", "MACs-only", "noise floor (round disagreement)"]
    print_table(f"per framework x threads: within +-10 % / MAPE %", ["cell", *show],
                [[f"{f} x{t}", *[(lambda o: f"{o['within10']:.0f} / {o['mape']:.1f}" if o else "-")(
                    per_fw.get((v, f, t))) for v in show]] for f, t in keys])
    print_table(f"per network: within +-10 % / MAPE %", ["network", *show],
                [[n, *[(lambda o: f"{o['within10']:.0f} / {o['mape']:.1f}" if o else "-")(
                    per_net.get((v, n))) for v in show]] for n in nets])
    if "growth" in result:
        print_table("accuracy vs units sampled (default variant; random subsets)",
                    ["units", "within +-10 %", "MAPE %"],
                    [[g["units"], f"{g['within10']:.1f}", f"{g['mape']:.2f}"] for g in result["growth"]])
    if "later" in result:
        lc = result["later"]
        print(f"\nlater timing {args.later}, {lc['cells']} cells (GEMM speed ratio by threads {lc['ratio']}; its "
              f"own round disagreement {lc['noise']}): leave-one-network-out predictions within +-10 % "
              f"{lc['lono_within10']:.1f} %, MAPE {lc['lono_mape']:.2f} %; the model fitted on every network "
              f"(drift alone) {lc['within10']:.1f} %, {lc['mape']:.2f} %")
    if "hardware_view" in result:
        for fw, hv in result["hardware_view"].items():
            print(f"\nhardware-metric view, {fw} x1 ({hv['source']}; {hv['units']} units, {hv['networks']} networks)")
            print(f"  kernels' simulated instructions summed vs the network's own: "
                  + ", ".join(f"{n} {e:+.1f} %" for n, e in hv["add_up"].items()))
            print(f"  unit time from counts (non-negative, relative LS): " + ", ".join(
                f"{k} {v:.3g}" for k, v in hv["time_from_counts"]["coef"].items())
                + f"; 5-fold CV MAPE {hv['time_from_counts']['cv_mape']:.1f} % (MACs + bytes alone: "
                f"{hv['time_from_counts']['cv_mape_macs']:.1f} %)")
    if "validation" in result:
        v = result["validation"]
        print(f"\nvalidation data set {args.validation} ({v['cpu']}; the model fitted on every network): "
              f"{v['cells']} cells, within +-10 % "
              f"{v['within10']:.1f} %, MAPE {v['mape']:.2f} % (GEMM ratio {v['ratio']}); without the ratio: "
              f"within +-10 % {v['within10_raw']:.1f} %, MAPE {v['mape_raw']:.2f} %")
    if "speed" in result:
        sp = result["speed"]
        print(f"\npredict --graph {sp['graph']} ({sp['ops']} ops): warm process median {sp['warm_ms']:.0f} ms "
              f"(read {sp['read_ms']:.0f} ms, predict {sp['predict_ms']:.0f} ms for {sp['cells']} cells); fresh CLI "
              f"process median {sp['cli_ms']:.0f} ms (python -X importtime: import onnx {sp['import_onnx_ms']:.0f} ms)")
    print(f"\nprofiling cost: {cost}")
    print(f"wall {result['wall_s']} s")
    return 0


def growth(kset, nk, cells, nets):
    ids = sorted(kset.units)
    rng = np.random.default_rng(0)
    out = []
    for n_units in (60, 120, 240, 360, len(ids)):
        if n_units > len(ids):
            continue
        sub = list(rng.choice(ids, size=n_units, replace=False)) if n_units < len(ids) else ids
        rows = evaluate(kset, nk, {DEFAULT: VARIANTS[DEFAULT]}, cells, nets, unit_ids=sub)
        e = np.abs([r["err"] for r in rows])
        out.append({"units": n_units, "within10": 100 * float(np.mean(e <= 0.1)), "mape": 100 * float(np.mean(e))})
    return out


def later_check(kset, nk, cells, nets, folder):
    later = read_kernelset(folder)
    model = OperatorModel(**VARIANTS[DEFAULT]).fit(kset, nk, cells=cells)
    ratio = {t: kset.gemm_gflops(t) / later.gemm_gflops(t) for t in sorted({c[1] for c in cells})}
    scale = {t: 1.0 if math.isnan(r) else r for t, r in ratio.items()}  # no calibration: not rescaled
    errs, noise = [], []
    for cell, n, meas in measured(later, cells, nets):
        p = model.predict_kernels(cell[0], cell[1], nk[n][cell[0]])["ms"] * scale[cell[1]]
        errs.append(abs(p - meas) / meas)
        reps = later.network_ms[cell][n]
        if len(reps) >= 2:
            noise.append(disagreement(reps))
    e = np.array(errs)
    # the same leave-one-network-out predictions as the main table, scored on the later timing
    lono = []
    for row in evaluate(kset, nk, {DEFAULT: VARIANTS[DEFAULT]}, cells, nets):
        meas = later.network_median(row["framework"], row["threads"], row["network"])
        if not math.isnan(meas):
            lono.append(abs(row["predicted_ms"] * scale[row["threads"]] - meas) / meas)
    lo = np.array(lono)
    return {"cells": len(e), "within10": 100 * float(np.mean(e <= 0.1)), "mape": 100 * float(np.mean(e)),
            "lono_within10": 100 * float(np.mean(lo <= 0.1)), "lono_mape": 100 * float(np.mean(lo)),
            "ratio": {str(k): round(v, 3) for k, v in ratio.items()},
            "noise": f"{100 * float(np.mean(noise)):.1f} % mean" if noise else "n/a"}


def validation_check(kset, nk, cells, nets, folder):
    from perfmodel.data import read_dataset, wide_per_cell

    ds = read_dataset(folder)
    df = wide_per_cell(ds).frame
    calib = (ds.metadata or {}).get("calibration", {}) if hasattr(ds, "metadata") else {}
    meta = json.loads((Path(folder) / "dataset.json").read_text())
    calib = meta.get("metadata", {}).get("calibration", {}) or calib
    med = df.groupby(["framework", "threads", "network"])["inference_ms"].median()
    model = OperatorModel(**VARIANTS[DEFAULT]).fit(kset, nk, cells=cells)
    ratio = {t: kset.gemm_gflops(t) / float(calib.get("gemm_gflops", {}).get(str(t), math.nan))
             for t in sorted({c[1] for c in cells})}
    errs, raw = [], []
    for (fw, t, n), meas in med.items():
        if (fw, int(t)) not in model.cells_ or n not in nk:
            continue
        p = model.predict_kernels(fw, int(t), nk[n][fw])["ms"]
        r = ratio.get(int(t), math.nan)
        raw.append(abs(p - meas) / meas)
        if not math.isnan(r):
            errs.append(abs(p * r - meas) / meas)
    e, e0 = np.array(errs), np.array(raw)
    return {"cells": len(e0), "within10": 100 * float(np.mean(e <= 0.1)) if len(e) else math.nan,
            "mape": 100 * float(np.mean(e)) if len(e) else math.nan,
            "within10_raw": 100 * float(np.mean(e0 <= 0.1)), "mape_raw": 100 * float(np.mean(e0)),
            "ratio": {str(k): round(v, 3) for k, v in ratio.items()},
            "cpu": meta.get("metadata", {}).get("cpu_model", "?")}


def hardware_view(kset, nk, nets):
    """Per framework with simulated counts: (1) do the kernels' instructions add up to the network's? An
    instruction model per kernel type (the operator model's form, on the units' simulated instructions) summed
    over a network's kernels vs the network's own simulated instructions; (2) which counts carry a unit's time:
    time = sum of non-negative costs x [instructions, L1-d misses, LL misses] (relative LS), 5-fold CV."""
    from dataclasses import replace as dc_replace

    from scipy.optimize import nnls

    path = Path(kset.path) / "simulated.jsonl"
    if not path.is_file():
        return {}
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    out = {}
    for fw in sorted({r["framework"] for r in recs}):
        units = {r["item"]: r for r in recs if r["framework"] == fw and r["kind"] == "unit"}
        netc = {r["item"]: r for r in recs if r["framework"] == fw and r["kind"] == "network"}
        cell = (fw, 1)
        ins = {u: r["counts"]["instructions"] / 1e6 for u, r in units.items() if u in kset.units}
        fake = dc_replace(kset, unit_ms={cell: ins},
                          network_ms={cell: {n: [r["counts"]["instructions"] / 1e6] for n, r in netc.items()}})
        m = OperatorModel(kernel_predictor="nnls", type_scheme="split", overhead_form="add").fit(
            fake, cells=[cell])
        add_up = {}
        for n, r in netc.items():
            if n in nk:
                cm = m.cell(*cell)
                pred = m.raw_ms(cm, nk[n][fw])
                add_up[n] = 100 * (pred - ins_net(r)) / ins_net(r)
        # time from counts
        ids = [u for u in units if u in kset.unit_ms.get(cell, {})]
        names = ["instructions", "l1d_refills", "l2d_refills"]
        X = np.array([[1.0] + [units[u]["counts"].get(c, 0.0) / 1e6 for c in names] for u in ids])
        y = np.array([kset.unit_ms[cell][u] for u in ids])
        Xm = np.array([[1.0, sum(k["macs"] for k in kset.units[u].kernels[fw]) / 1e6,
                        sum(k["input_bytes"] + k["output_bytes"] + k["weight_bytes"] for k in kset.units[u].kernels[fw])
                        / 1e6] for u in ids])

        def cv(Xa):
            idx = np.arange(len(y)) % 5
            errs = []
            for f in range(5):
                tr, te = idx != f, idx == f
                w = 1 / y[tr]
                sc = np.linalg.norm(Xa[tr] * w[:, None], axis=0)
                sc[sc == 0] = 1
                b, _ = nnls(Xa[tr] * w[:, None] / sc, np.ones(tr.sum()))
                errs += list(np.abs(Xa[te] @ (b / sc) - y[te]) / y[te])
            return 100 * float(np.mean(errs)), None

        w = 1 / y
        sc = np.linalg.norm(X * w[:, None], axis=0)
        sc[sc == 0] = 1
        b, _ = nnls(X * w[:, None] / sc, np.ones(len(y)))
        b = b / sc
        out[fw] = {"source": next(iter(units.values()))["source"] if units else "?", "units": len(ids),
                   "networks": len(netc), "add_up": add_up,
                   "time_from_counts": {"coef": {"ms per call": b[0], **{f"ms per M {c}": b[i + 1]
                                                                         for i, c in enumerate(names)}},
                                        "cv_mape": cv(X)[0], "cv_mape_macs": cv(Xm)[0]}}
    return out


def ins_net(r):
    return r["counts"]["instructions"] / 1e6


def speed(model_path, repeats=5):
    import subprocess

    from perfmodel.workflows.graph import predict_graph
    from perfmodel.zoo import export

    onnx_path = str(export("densenet121", "onnx"))
    predict_graph(model_path, onnx_path)  # imports, first use
    warm, read, pred = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        res = predict_graph(model_path, onnx_path)
        warm.append((time.perf_counter() - t) * 1e3)
        read.append(res["seconds"]["read_graph"] * 1e3)
        pred.append(res["seconds"]["predict"] * 1e3)
    exe = str(Path(sys.executable).with_name("perfmodel"))
    cli = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([exe, "predict", "--model", str(model_path), "--graph", onnx_path, "--json"], check=True,
                       capture_output=True)
        cli.append((time.perf_counter() - t) * 1e3)
    imp = subprocess.run([sys.executable, "-X", "importtime", "-c", "import onnx"], capture_output=True, text=True)
    onnx_us = [int(line.split("|")[1]) for line in imp.stderr.splitlines() if line.rstrip().endswith("| onnx")]
    from perfmodel.zoo.kernels import read_onnx

    return {"graph": "densenet121.onnx", "ops": len(read_onnx(onnx_path)), "cells": len(res["rows"]),
            "warm_ms": statistics.median(warm), "read_ms": statistics.median(read),
            "predict_ms": statistics.median(pred), "cli_ms": statistics.median(cli),
            "import_onnx_ms": onnx_us[0] / 1e3 if onnx_us else math.nan}


def profiling_cost(kset):
    """Units, timings and the campaign calls' wall minutes (exports + timing, from their start / finish)."""
    from datetime import datetime

    def minutes(c):
        try:
            t0 = datetime.strptime(c["started"], "%Y-%m-%dT%H:%M:%SZ")
            t1 = datetime.strptime(c["finished"], "%Y-%m-%dT%H:%M:%SZ")
        except (KeyError, ValueError):
            return math.nan
        return (t1 - t0).total_seconds() / 60

    calls = kset.meta.get("calls", [])
    return {"units": len(kset.units), "unit_timings": sum(len(v) for v in kset.unit_ms.values()),
            "calls": [{"units": c.get("units"), "frameworks": c.get("frameworks"), "networks": len(c.get("networks", [])),
                       "minutes": round(minutes(c), 1), "timing_minutes": round(c.get("wall_s", math.nan) / 60, 1)}
                      for c in calls]}


if __name__ == "__main__":
    sys.exit(main())
