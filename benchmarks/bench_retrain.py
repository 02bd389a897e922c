"""Retraining on a new platform (issue 20): no adaptation vs the adapted model vs a full re-profile, on every
zoo network of the new platform.

    python benchmarks/bench_retrain.py --truth DIR --adapted MODEL [--model trained/throughput_operator.json]
        [--label NAME] [--json]

``--truth DIR``: a kernel data set measured on the new platform with every zoo network timed (end-to-end,
unprofiled, interleaved, two rounds) and, for the frameworks with a profiler, their per-node profiles; for a
full re-profile of LiteRT it also needs sampled units (``perfmodel kernels profile DIR --frameworks litert``).
``--adapted MODEL``: what ``perfmodel retrain`` wrote (its ``adaptation`` record names the cells, the networks it
measured and its wall time). Methods, per cell x network, against the truth's measured time:

* ``none``: the original model as it is (for a thread count it lacks: the same framework's nearest one);
* ``adapted``: the retrained model;
* ``full``: the operator model refitted on the truth data set alone (the shipped form), leave-one-network-out
  (the network and its input-size sibling held out of the kernel predictors where they come from profiles, and
  of the overhead);
* the noise floor: each network's round-to-round disagreement in the truth data set.

Rows for all networks and for those the adaptation did not measure ("held out"). Wall times: the adaptation's
(choose + measure + adapt) and the full re-profile's (the truth campaign's calls + the fit).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_operator_model import DEFAULT, SIBLINGS, VARIANTS, disagreement, evaluate, print_table  # noqa: E402

from perfmodel.data.kernelset import read_kernelset  # noqa: E402
from perfmodel.model.adapt import base_cell  # noqa: E402
from perfmodel.model.operator import load_operator_model  # noqa: E402
from perfmodel.workflows.kernels import network_kernels  # noqa: E402
from perfmodel.zoo import NETWORKS  # noqa: E402


def score(errs):
    e = np.abs(np.asarray(errs, float))
    if not len(e):
        return {"cells": 0, "within10": math.nan, "mape": math.nan}
    return {"cells": int(len(e)), "within10": 100 * float(np.mean(e <= 0.10)), "mape": 100 * float(np.mean(e))}


class CellsTruth:
    """A data set of cells (dataset.json: another board's campaign) seen as a truth: per (framework, threads,
    network) each repeat's median inference_ms (their disagreement: the noise floor; no profiles, no units: no
    full re-profile)."""

    def __init__(self, folder):
        from perfmodel.data import read_dataset, wide_per_cell

        df = wide_per_cell(read_dataset(folder)).frame
        self.path, self.meta, self.profiles, self.unit_ms = Path(folder), {"calls": []}, {}, {}
        self.network_ms = {}
        df = df[df["inference_ms"].notna()]
        by = "repeat" if "repeat" in df.columns else "run_id"
        for (fw, t, n), g in df.groupby(["framework", "threads", "network"]):  # each repeat's median
            self.network_ms.setdefault((str(fw), int(t)), {})[str(n)] = [
                float(r["inference_ms"].median()) for _, r in g.groupby(by)]

    @property
    def cells(self):
        return sorted(self.network_ms)

    def network_median(self, fw, t, n):
        v = self.network_ms.get((fw, t), {}).get(n)
        return float(np.mean(v)) if v else math.nan


def read_truth(folder):
    return read_kernelset(folder) if (Path(folder) / "kernelset.json").is_file() else CellsTruth(folder)


def network_level(net_model_path, net_adapted_path, truth, cells, nets, sampled):
    """The network-level model before / after retrain on the truth's networks: the predicted inference time
    (a rate model's time part) against the measured one."""
    from perfmodel.model import load_model
    from perfmodel.model.adapt import rate_time_ms
    from perfmodel.workflows.retrain import network_model_fps

    keys = [(c[0], c[1], n) for c in cells for n in nets]
    before, after = load_model(net_model_path), load_model(net_adapted_path)
    fb, fa = network_model_fps(before, keys), network_model_fps(after, keys)
    rows = []
    for fw, t, n in keys:
        meas = truth.network_median(fw, t, n)
        if (fw, t, n) not in fb or (fw, t, n) not in fa or math.isnan(meas):
            continue
        rows.append({"framework": fw, "threads": t, "network": n, "sampled": n in sampled,
                     "none": (rate_time_ms(before, fb[(fw, t, n)]) - meas) / meas,
                     "adapted": (rate_time_ms(after, fa[(fw, t, n)]) - meas) / meas})
    return {scope: {m: score([r[m] for r in sel]) for m in ("none", "adapted")}
            for scope, sel in (("all", rows), ("held out", [r for r in rows if not r["sampled"]]))}


def run(model_path, adapted_path, truth_dir, label="", net_model=None, net_adapted=None, full_variant=DEFAULT):
    model = load_operator_model(model_path)
    adapted = load_operator_model(adapted_path)
    rec = adapted.source_.get("adaptation")
    if not rec:
        raise SystemExit(f"{adapted_path} is not an adapted model (no adaptation record)")
    truth = read_truth(truth_dir)
    cells = [(c["framework"], c["threads"]) for c in rec["cells"] if (c["framework"], c["threads"]) in truth.cells]
    sampled = set(rec["with"]["networks"])
    nets = sorted({n for c in cells for n in truth.network_ms.get(c, {}) if n in NETWORKS})
    rules = {c: adapted.kernel_rules(*c) for c in cells}  # the new platform's fusion rules (OpenCV 5.1: new engine)
    nk = network_kernels(nets, sorted({c[0] for c in cells} | set(rules.values())))
    rows = []
    for cell in cells:
        base = model.cell(*base_cell(model, *cell))
        for n in nets:
            meas = truth.network_median(cell[0], cell[1], n)
            if math.isnan(meas):
                continue
            p_none = model.predict_kernels(base.framework, base.threads, nk[n][base.kernel_rules])["ms"]
            p_ad = adapted.predict_kernels(cell[0], cell[1], nk[n][rules[cell]])["ms"]
            reps = truth.network_ms[cell][n]
            rows.append({"framework": cell[0], "threads": cell[1], "network": n, "measured_ms": meas,
                         "sampled": n in sampled, "none": (p_none - meas) / meas, "adapted": (p_ad - meas) / meas,
                         "floor": disagreement(reps) if len(reps) > 1 else math.nan})
    # full re-profile: the shipped form refitted on the truth data set, leave-one-network-out
    t0 = time.time()
    full = {}
    for cell in ([] if isinstance(truth, CellsTruth) else cells):  # each cell with its own rules' kernel lists
        view = {n: {cell[0]: nk[n][rules[cell]]} for n in nets}
        full.update({(r["framework"], r["threads"], r["network"]): r["err"]
                     for r in evaluate(truth, view, {full_variant: VARIANTS[full_variant]}, [cell], nets)})
    fit_s = time.time() - t0
    for r in rows:
        r["full"] = full.get((r["framework"], r["threads"], r["network"]), math.nan)
    campaign_s = sum(c.get("wall_s", 0.0) + c.get("export_s", 0.0) for c in truth.meta.get("calls", []))
    out = {"label": label, "truth": str(truth_dir), "adapted": str(adapted_path), "model": str(model_path),
           "cells": [f"{f} x{t}" for f, t in cells], "sampled_networks": sorted(sampled),
           "versions_truth": {k: v for c in truth.meta.get("calls", []) for k, v in c.get("versions", {}).items()},
           "seconds": {"adapted": rec["seconds"], "full": {"campaign": round(campaign_s, 1),
                                                           "fit_lono_all": round(fit_s, 1)}},
           "summary": {}, "per_cell": {}, "rows": rows}
    for scope, sel in (("all", rows), ("held out", [r for r in rows if not r["sampled"]])):
        out["summary"][scope] = {m: score([r[m] for r in sel if not math.isnan(r[m])])
                                 for m in ("none", "adapted", "full")}
        fl = [r["floor"] for r in sel if not math.isnan(r["floor"])]
        out["summary"][scope]["floor"] = score(fl)
    if net_model and net_adapted:
        out["network_level"] = network_level(net_model, net_adapted, truth, cells, nets, sampled)
    for cell in cells:
        sel = [r for r in rows if (r["framework"], r["threads"]) == cell]
        out["per_cell"][f"{cell[0]} x{cell[1]}"] = {m: score([r[m] for r in sel if not math.isnan(r[m])])
                                                    for m in ("none", "adapted", "full", "floor")}
    return out


def show(res):
    s = res["seconds"]
    print(f"\n== {res['label'] or res['truth']}: {len(res['cells'])} cells, sampled {', '.join(res['sampled_networks'])}")
    print(f"   truth versions: {res['versions_truth']}")
    fmt = lambda d: f"{d['within10']:.1f} % / {d['mape']:.2f} %" if d["cells"] else "-"  # noqa: E731
    print_table("within +-10 % / MAPE", ["scope", "cells", "none", "adapted", "full re-profile", "noise floor"],
                [[scope, str(d["none"]["cells"]), fmt(d["none"]), fmt(d["adapted"]), fmt(d["full"]), fmt(d["floor"])]
                 for scope, d in res["summary"].items()])
    print_table("per cell (all networks)", ["cell", "none", "adapted", "full re-profile", "noise floor"],
                [[c, fmt(d["none"]), fmt(d["adapted"]), fmt(d["full"]), fmt(d["floor"])]
                 for c, d in res["per_cell"].items()])
    if res.get("network_level"):
        print_table("network-level model (inference time), within +-10 % / MAPE", ["scope", "cells", "none",
                    "adapted"], [[scope, str(d["none"]["cells"]), fmt(d["none"]), fmt(d["adapted"])]
                                 for scope, d in res["network_level"].items()])
    print(f"\nwall time: adaptation {s['adapted'].get('total')} s (measure {s['adapted'].get('measure')} s); "
          f"full re-profile campaign {s['full']['campaign']} s + fit")


def dry_adapt(model_path, truth_dir, k, out_dir, frameworks=None, threads=None, drop_threads=(), net_model=None):
    """``perfmodel retrain --data TRUTH`` with ``k`` chosen networks (the truth campaign's own rows of them as
    the sample); ``drop_threads``: first remove those thread counts from the model (a thread count not
    profiled). Returns (base model path, adapted model path)."""
    from perfmodel.workflows.retrain import retrain

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = Path(model_path)
    if drop_threads:
        m = load_operator_model(model_path)
        m.cells_ = {c: cm for c, cm in m.cells_.items() if c[1] not in drop_threads}
        base = m.save(out_dir / "base.json")
    out = out_dir / f"adapted-k{k}.json"
    net_out = out_dir / f"network-adapted-k{k}.json" if net_model else None
    retrain(base, out, frameworks=frameworks, threads=threads, n_networks=k, data=truth_dir,
            network_model=net_model, network_out=net_out)
    return base, out, net_out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "trained" / "throughput_operator.json"))
    ap.add_argument("--adapted", help="a model written by perfmodel retrain on the new platform")
    ap.add_argument("--dry", type=int, metavar="K", help="instead of --adapted: adapt from K networks of the "
                    "truth itself (perfmodel retrain --data TRUTH; its measuring time = those rows' wall time)")
    ap.add_argument("--growth", help="with --dry: also K = these (comma list): accuracy vs networks sampled")
    ap.add_argument("--frameworks", help="with --dry: comma list (default: the truth's)")
    ap.add_argument("--threads", help="with --dry: comma list (default: the truth's)")
    ap.add_argument("--drop-threads", default="", help="with --dry: remove these thread counts from the model "
                    "first (adapt a thread count it was never profiled at from the nearest)")
    ap.add_argument("--network-model", help="also the network-level model (e.g. trained/throughput_reference.json)"
                    ": before / after retrain (with --dry: adapted here; with --adapted: give --network-adapted)")
    ap.add_argument("--network-adapted", help="the network-level model perfmodel retrain wrote")
    ap.add_argument("--truth", required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--full-variant", default=DEFAULT, choices=sorted(VARIANTS),
                    help="the form of the full re-profile (bench_operator_model.py's variants; default: shipped)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if (a.adapted is None) == (a.dry is None):
        ap.error("give --adapted MODEL or --dry K")
    growth = {}
    if a.dry is not None:
        import tempfile

        truth = read_truth(a.truth)
        fws = a.frameworks.split(",") if a.frameworks else sorted({c[0] for c in truth.cells})
        ths = [int(t) for t in a.threads.split(",")] if a.threads else sorted({c[1] for c in truth.cells})
        drop = [int(t) for t in a.drop_threads.split(",") if t]
        tmp = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
        base, adapted, net_adapted = dry_adapt(a.model, a.truth, a.dry, tmp, fws, ths, drop, a.network_model)
        for k in [int(x) for x in a.growth.split(",")] if a.growth else []:
            b, ad, _ = dry_adapt(a.model, a.truth, k, tmp, fws, ths, drop)
            g = run(b, ad, a.truth, f"k={k}")
            growth[k] = {"sampled": g["sampled_networks"], **g["summary"]}
        res = run(base, adapted, a.truth, a.label, a.network_model, net_adapted, a.full_variant)
    else:
        res = run(a.model, a.adapted, a.truth, a.label, a.network_model, a.network_adapted, a.full_variant)
    res["growth"] = growth
    if a.json:
        print(json.dumps(res, indent=1, default=str))
        return
    show(res)
    if growth:
        fmt = lambda d: f"{d['within10']:.1f} % / {d['mape']:.2f} %" if d["cells"] else "-"  # noqa: E731
        print_table("accuracy vs networks sampled (held out / all; within +-10 % / MAPE)",
                    ["K", "sampled", "adapted, held out", "adapted, all", "none, all"],
                    [[str(k), ",".join(g["sampled"]), fmt(g["held out"]["adapted"]), fmt(g["all"]["adapted"]),
                      fmt(g["all"]["none"])] for k, g in growth.items()])


if __name__ == "__main__":
    main()
