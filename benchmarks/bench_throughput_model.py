"""Throughput model on a data set: leave-one-network-out MAPE / RMSPE / share within +-10 % per model.

    python benchmarks/bench_throughput_model.py DATASET [--json OUT]
    python benchmarks/bench_throughput_model.py --synthetic        # demo on generated data (not a measurement)

DATASET: a data set folder / records file with timing cells (framework, network, threads, latency) and
separate valgrind cells (threads=1, simulated per-image counts); the simulated counts are attached to
the timing cells of every thread count (perfmodel.model.features.join_simulated). Timing cells whose
valgrind cell is not there (yet) are left out and listed. Every model is scored on the same
leave-one-network-out splits (the held-out network is never seen in fitting, selection or choice):

* ``fixed``: ``log(fps) ~ log(instructions/image) + framework + log(threads) x framework`` (log-linear);
* ``levels``: the same with one indicator per (framework, threads > 1) instead of ``log(threads)``;
* linear and ridge (alpha by inner CV) on those terms (target not logged);
* ``+ <count>``: one extra simulated count per image (or miss rate) added to ``levels`` - exploration:
  choosing the best of these rows by its score would be tuning on the held-out networks;
* ``stepwise (nested)``: extra simulated counts chosen by stepwise selection *inside* every outer fold
  (inner leave-one-network-out on the training networks) - an honest score;
* ``stepwise (optimistic)``: selection on all networks, scored on the same splits - optimistic, labelled;
* ``choice among the above (nested)``: the term set with the best inner-CV MAPE, chosen inside every outer
  fold - the honest score of "explore and keep the best";
* ``overhead-loglinear``: ``fps = 1000 / (overhead + t)``, ``log t`` on the ``fixed`` terms, the overhead
  being the training cells' mean read + pre-process time (per fold) (chosen before the four added networks were measured);
  ``+ stepwise counts (nested)`` as above;
* ``overhead-linear additive``: the same rate with an
  additive (CPI-stack) inference time, ``t =
  sum_fw,thr c instr x [fw, thr] + c_mem x L2-d refills`` (non-negative costs, relative-error fit); with
  instructions only beside it; ``hybrid``: + the weights read per image (4 x parameters: a graph fact, not a
  counter) instead of the refills;
* ``stream`` (the form of trained/throughput_reference.json): the additive model plus ``fc_stream_ms``, the
  time to read the network's FC weights once (4 bytes x FC parameters, a graph fact) at the streaming
  bandwidth the data set's calibration measured (``perfmodel calibrate``), with coefficient 1 (not fitted:
  the conv networks cannot tell what a streamed byte costs, their traffic overlaps with arithmetic); the
  row with that cost fitted instead shows why; ``+ stepwise raw counts (nested)``: more simulated
  per-image counts (a cost each) chosen inside every outer fold;
* ``measured-run``: the same plus the log of the cell's own measured CPU utilisation (task-clock ms per s,
  a software counter of the held-out cell's run): not a prediction before running, shown for the
  quick-sample use (where the sample is measured anyway);
* baselines: MACs-only per (framework, threads) (``log fps = a + b log MACs``), ``log(MACs) + framework +
  threads levels`` (the structure of the model with MACs as the work), ``overhead-loglinear`` on
  ``log(MACs)`` and ``overhead-linear`` on MACs x (framework, threads) (the two rate forms without
  counters), and the mean.

Issue targets: MAPE <= 8 %, >= 90 % within +-10 %, and the simulated-count model beats the MACs baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = "throughput_fps"
MISS_RATE_COLUMNS = ("l1d_miss_rate", "l2d_miss_rate", "llc_miss_rate", "branch_miss_rate")


class NestedStepwise:
    """Frame model: stepwise selection of extra terms on the training part only (inner LONO), then a fit."""

    def __init__(self, kind, always, candidates, group="network"):
        self.kind, self.always, self.candidates, self.group = kind, list(always), list(candidates), group

    def fit(self, df, y):
        from perfmodel.model.cv import FeatureModel, make_splits, with_frame_overhead
        from perfmodel.model.estimators import make_estimator
        from perfmodel.model.selection import stepwise_select

        df = df.reset_index(drop=True).assign(**{TARGET: y})
        splits = make_splits(df, group=self.group)
        est = with_frame_overhead(make_estimator(self.kind), df)  # the training part's read + pre-process time
        res = stepwise_select(df, TARGET, self.candidates, est, splits, always=self.always)
        self.features_ = res.features
        self.model_ = FeatureModel(make_estimator(self.kind), self.features_).fit(df, y)
        return self

    def predict(self, df):
        return self.model_.predict(df)


class NestedChoice:
    """Frame model: the term set with the lowest inner leave-one-network-out MAPE on the training part."""

    def __init__(self, kind, term_sets, group="network"):
        self.kind, self.term_sets, self.group = kind, dict(term_sets), group

    def fit(self, df, y):
        from perfmodel.model.cv import FeatureModel, make_splits
        from perfmodel.model.estimators import make_estimator
        from perfmodel.model.features import feature_matrix
        from perfmodel.model.selection import cv_mape

        df = df.reset_index(drop=True)
        splits = make_splits(df, group=self.group)
        scores = {name: cv_mape(make_estimator(self.kind), feature_matrix(df, f), y, splits)
                  for name, f in self.term_sets.items()}
        self.chosen_ = min(scores, key=scores.get)
        self.model_ = FeatureModel(make_estimator(self.kind), self.term_sets[self.chosen_]).fit(df, y)
        return self

    def predict(self, df):
        return self.model_.predict(df)


def load(args):
    """``(joined table or None, all timing cells, timing cells left out, simulated events, why None)``; the
    tables are :class:`perfmodel.data.Table` (frame + provenance)."""
    from perfmodel.data import is_simulated, read_dataset, splice_simulated, wide_per_cell
    from perfmodel.model.features import FeatureError, attach_macs, join_simulated

    if args.synthetic:
        from perfmodel.model.synthetic import synthetic_throughput_records

        records = synthetic_throughput_records(networks=("squeezenet1_1", "mobilenet_v2", "googlenet", "resnet50",
                                                         "mobilenet_v1"), threads=(1, 2))
    else:
        records = read_dataset(args.dataset)
    if args.replace_simulated:
        repl = [read_dataset(p) for p in args.replace_simulated]
        print(f"simulated counts replaced: {int(records.loc[is_simulated(records), 'cell_id'].nunique())} valgrind "
              f"cells of the data set -> {sum(r.loc[is_simulated(r), 'cell_id'].nunique() for r in repl)} from "
              f"{', '.join(map(str, args.replace_simulated))}")
        records = splice_simulated(records, repl, replace=True)
    for path in args.replace_framework:
        import pandas as pd

        repl = read_dataset(path)
        r_vg = is_simulated(repl)
        said = []
        for simulated, kind in ((True, "valgrind"), (False, "timing")):
            mask_r = r_vg if simulated else ~r_vg
            fws = sorted(set(repl.loc[mask_r, "framework"].astype(str)))
            if not fws:
                continue
            own = is_simulated(records) == simulated  # of the current rows
            gone = own & records["framework"].astype(str).isin(fws)
            said.append(f"{kind} cells of {', '.join(fws)}: {int(records.loc[gone, 'cell_id'].nunique())} -> "
                        f"{int(repl.loc[mask_r, 'cell_id'].nunique())}")
            records = pd.concat([records[~gone], repl[mask_r]], ignore_index=True)
        print(f"replaced from {path}: {'; '.join(said) or 'nothing (no cells)'}")
    if args.simulated_from:
        before = len(records)
        records = splice_simulated(records, [read_dataset(p) for p in args.simulated_from])
        print(f"valgrind cells added from {', '.join(map(str, args.simulated_from))}: "
              f"{records.iloc[before:]['cell_id'].nunique()}")
    wide = wide_per_cell(records)
    if args.exclude or args.exclude_network:
        w = wide.frame
        wide = wide.rows(~w["framework"].astype(str).isin(args.exclude)
                         & ~w["network"].astype(str).isin(args.exclude_network), reset_index=True)
        print(f"excluded: {', '.join(args.exclude + args.exclude_network)}")
    timing = wide.rows(~is_simulated(wide.frame) & wide.frame[TARGET].notna(), reset_index=True)
    try:
        joined = join_simulated(wide)
    except FeatureError as exc:  # no valgrind cell finished yet
        return None, attach_macs(timing), sorted(timing.frame["cell_id"].astype(str)), [], str(exc)
    ok = joined.frame["instructions_per_image"].notna() & joined.frame[TARGET].notna()
    missing = sorted(joined.frame.loc[~ok, "cell_id"].astype(str))
    df = joined.rows(ok, reset_index=True)
    df = with_weight_bytes(attach_macs(df))
    if not args.synthetic:
        if Path(args.dataset).is_dir():
            from perfmodel.model.codepath import code_path_differences

            for diff in code_path_differences([args.dataset, *args.simulated_from]):
                print(f"warning (cells as recorded, before any --replace-*): {diff.sentence()}")
        from perfmodel.data import dataset_calibrations, stream_bandwidth
        from perfmodel.model.features import attach_stream_time

        bw = stream_bandwidth(dataset_calibrations(args.dataset))
        if bw:
            print("streaming bandwidth (median of the data set's calibrations): "
                  + ", ".join(f"{t} thread(s) {g:.1f} GB/s" for t, g in bw.items()))
            df = attach_stream_time(df, bw)
        else:
            print("no calibration in the data set: the FC-stream rows are not evaluated")
        from perfmodel.data import dataset_l2_bytes
        from perfmodel.model.features import attach_l2_overflow

        l2, said = dataset_l2_bytes(args.dataset, explicit=None if args.l2_kib is None else 1024.0 * args.l2_kib)
        print(f"L2 cache size: {said}")
        if l2 is not None:
            df = attach_l2_overflow(df, l2)
    return (df, attach_macs(timing), missing, list(joined.meta.get("join_simulated_events", [])), None)


def trained_geometry_note(args, trained: Path = ROOT / "trained" / "throughput_reference.json") -> str | None:
    """A note when the simulated counts scored here were simulated with other caches than those of the
    shipped ``trained/throughput_reference.json`` (:func:`perfmodel.model.prepare.check_counts_geometry`): its
    row here is then its form, not its figure; None when they match or either is not recorded."""
    from perfmodel.errors import PerfmodelError
    from perfmodel.model import load_model
    from perfmodel.model.prepare import check_counts_geometry, counts_geometry

    try:
        model = load_model(trained)
        have = counts_geometry(args.replace_simulated or [args.dataset, *args.simulated_from])
    except (OSError, PerfmodelError):
        return None
    try:
        check_counts_geometry(model, have, "the counts scored here", option="--replace-simulated")
    except PerfmodelError as exc:
        return (f"note: the '(trained/)' row below is {trained.name}'s form on other counts, not its figure: {exc} "
                "(e.g. datasets/simulated-l2-2mib)")
    return None


def with_weight_bytes(table):
    """``weight_bytes`` = 4 x parameters of each network (float32 weights read per image): a graph fact,
    used only by the labelled hybrid row."""
    from perfmodel.zoo import facts

    out = table.frame.copy()
    out["weight_bytes"] = out["network"].astype(str).map(
        {n: 4.0 * facts(n)["params"] for n in out["network"].astype(str).unique()})
    return table.with_frame(out)


def average_repeats(df):
    """One row per (framework, network, threads): numeric columns averaged over repeats / runs, throughput
    recomputed as 1000 / mean latency (ratio of means, as the data set's cell tables do)."""
    import pandas as pd

    keys = ["framework", "network", "threads"]
    num = [c for c in df.select_dtypes("number").columns if c not in keys]
    g = df.groupby(keys, sort=True, observed=True)
    out = g[num].mean().join(g.size().rename("n_repeats")).reset_index()
    other = [c for c in df.columns if c not in out.columns]
    out = out.join(g[other].first().reset_index(drop=True)) if other else out
    if "latency_ms" in out.columns:
        out["throughput_fps"] = 1000.0 / out["latency_ms"]
    return pd.DataFrame(out)


def baselines_only(timing, why, args):
    """The MACs / mean baselines on every timing cell, when the simulated-count model cannot be evaluated."""
    from perfmodel.model.cv import FeatureModel, MacsBaseline, MeanBaseline, cross_validate, make_splits
    from perfmodel.model.estimators import make_estimator
    from perfmodel.model.features import throughput_terms

    nets = sorted(timing["network"].unique())
    print(f"simulated-count models: NOT EVALUATED ({why})")
    print(f"baselines on all {len(timing)} timing cells ({len(nets)} networks: {', '.join(nets)}), leave-one-network-out:")
    models = {"baseline: MACs-only per (fw, threads)": MacsBaseline(group=["framework", "threads"]),
              "baseline: log(MACs) + fw + fw x thr levels": FeatureModel(
                  make_estimator("loglinear"), throughput_terms(timing, work="macs", threads_model="levels")),
              "baseline: mean": MeanBaseline()}
    splits = make_splits(timing, group="network")
    rows = []
    for name, m in models.items():
        r = cross_validate(m, timing, TARGET, splits, name=name, group="network")
        print(f"{name:52s} MAPE {r.metrics['mape']:6.2f}  RMSPE {r.metrics['rmspe']:6.2f}  <=10 % {r.metrics['within_10']:5.1f}"
              "   per network: " + ", ".join(f"{f['held_out']} {f['mape']:.1f}" for f in r.folds))
        rows.append({"model": name, **{k: r.metrics[k] for k in ("mape", "rmspe", "within_10", "n")}, "folds": r.folds})
    if args.json:
        args.json.write_text(json.dumps({"dataset": args.dataset, "simulated_models": f"not evaluated: {why}",
                                         "baselines_all_timing_cells": rows}, indent=1))
    return 1


def validate_on(models, results, df, networks):
    """Every model that passed cross-validation, fitted on the networks not in ``networks`` and scored on
    those: ``[{"model", "mape", "within_10", "n", "per_network": {net: {"mape", "within_10", "n"}}}]``."""
    import copy

    from perfmodel.errors import PerfmodelError
    from perfmodel.model.cv import regression_metrics

    unknown = sorted(set(networks) - set(df["network"].astype(str)))
    if unknown:
        raise SystemExit(f"--validate-on: no timing cells with counts for {', '.join(unknown)}")
    held = df["network"].astype(str).isin(networks).to_numpy()
    train, test = df[~held].reset_index(drop=True), df[held].reset_index(drop=True)
    y = test[TARGET].to_numpy(dtype="float64")
    out = []
    for name, m in models.items():
        if isinstance(results.get(name), str) or name.startswith("  exploration"):
            continue
        try:
            fitted = copy.deepcopy(m).fit(train, train[TARGET].to_numpy(dtype="float64"))
            pred = np.asarray(fitted.predict(test), dtype="float64")
        except (PerfmodelError, ValueError, np.linalg.LinAlgError) as exc:
            out.append({"model": name, "error": str(exc)})
            continue

        def pick(mask):
            r = regression_metrics(y[mask], pred[mask])
            return {k: r[k] for k in ("mape", "within_10", "n")}

        nets = test["network"].astype(str).to_numpy()
        out.append({"model": name, **pick(np.ones(len(y), bool)),
                    "per_network": {net: pick(nets == net) for net in networks}})
    return out


def extra_candidates(df, events):
    out = [f"log({e}_per_image)" for e in events if e != "instructions" and f"{e}_per_image" in df.columns
           and (df[f"{e}_per_image"] > 0).all() and df[f"{e}_per_image"].nunique() > 1]
    out += [c for c in MISS_RATE_COLUMNS if c in df.columns and np.isfinite(df[c].to_numpy(dtype="float64")).all()
            and df[c].nunique() > 1]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("--synthetic", action="store_true", help="use generated data (a demo, not a measurement)")
    ap.add_argument("--json", type=Path, help="write the tables as JSON")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--simulated-from", action="append", default=[], type=Path, metavar="DATASET",
                    help="another data set whose valgrind cells are added (its timing cells are ignored), e.g. a "
                         "valgrind pass run in parallel into a second folder")
    ap.add_argument("--replace-simulated", action="append", default=[], type=Path, metavar="DATASET",
                    help="use the valgrind cells of DATASET instead of the data set's own (e.g. the same workloads "
                         "simulated with another cache geometry)")
    ap.add_argument("--replace-framework", action="append", default=[], type=Path, metavar="DATASET",
                    help="for every framework DATASET has timing (valgrind) cells of, use those instead of the "
                         "data set's timing (valgrind) cells of that framework, e.g. TensorFlow timed or "
                         "simulated on another code path (datasets/tf-code-paths)")
    ap.add_argument("--exclude", action="append", default=[], metavar="FRAMEWORK",
                    help="leave a framework out of every table (e.g. one whose simulated counts are known bad)")
    ap.add_argument("--exclude-network", action="append", default=[], metavar="NETWORK",
                    help="leave a network out of every table (e.g. alexnet: what the figures are without it)")
    ap.add_argument("--l2-kib", type=float, default=None,
                    help="L2 cache size (KiB) of the machine the data set was timed on, for the rows with the "
                         "conv-weights-over-L2 term (default: what the data set recorded, else this machine's "
                         "when the data set recorded this CPU model)")
    ap.add_argument("--validate-on", action="append", default=[], metavar="NETWORK",
                    help="also fit every model on the other networks only and score it on these (repeatable): "
                         "networks the model's terms were not chosen on")
    ap.add_argument("--average-repeats", action="store_true",
                    help="score against the mean of the repeats of each framework x network x threads (the "
                         "configuration's throughput) instead of every repeat on its own")
    args = ap.parse_args(argv)
    if not args.synthetic and not args.dataset:
        ap.error("give DATASET or --synthetic")
    from perfmodel.errors import PerfmodelError
    from perfmodel.model.cv import FeatureModel, MacsBaseline, MeanBaseline, cross_validate, make_splits
    from perfmodel.model.estimators import make_estimator
    from perfmodel.model.features import throughput_terms

    t0 = time.perf_counter()
    try:
        df, timing, missing, events, why = load(args)
    except PerfmodelError as exc:
        print(f"cannot build the table: {exc}")
        return 2
    if df is None:
        return baselines_only(timing.frame, why, args)
    geometry_note = None if args.synthetic else trained_geometry_note(args)
    if geometry_note:
        print(geometry_note)
    if args.average_repeats:
        before = len(df)
        df = df.with_frame(average_repeats(df.frame))
        print(f"averaged repeats: {before} timing cells -> {len(df)} framework x network x threads rows "
              f"(repeats per row: {sorted(set(df.frame['n_repeats'].astype(int)))})")
    table, df = df, df.frame  # the provenance is what fit_model records; the models below take the frame
    nets = sorted(df["network"].unique())
    print(f"throughput, leave-one-network-out: {len(df)} timing cells with simulated counts, {len(nets)} networks "
          f"({', '.join(nets)}), {df['framework'].nunique()} frameworks, threads {sorted(map(int, df['threads'].unique()))}")
    if missing:
        print(f"left out {len(missing)} timing cell(s) without a finished valgrind cell: "
              f"{', '.join(sorted({'__'.join(c.split('__')[:2]) for c in missing}))}")
    if len(nets) < 3:
        return baselines_only(timing.frame, f"only {len(nets)} network(s) have finished valgrind cells: "
                              f"{', '.join(nets)}; leave-one-network-out needs at least 3", args)
    fixed = throughput_terms(df)
    levels = throughput_terms(df, threads_model="levels")
    extras = extra_candidates(df, events)
    macs_levels = throughput_terms(df, work="macs", threads_model="levels")
    models = {
        "loglinear fixed (instr + fw + log(thr) x fw)": FeatureModel(make_estimator("loglinear"), fixed),
        "loglinear levels (instr + fw + fw x thr levels)": FeatureModel(make_estimator("loglinear"), levels),
        "linear fixed": FeatureModel(make_estimator("linear"), fixed),
        "ridge fixed": FeatureModel(make_estimator("ridge"), fixed),
        "linear levels": FeatureModel(make_estimator("linear"), levels),
        "ridge levels": FeatureModel(make_estimator("ridge"), levels),
    }
    for e in extras:
        models[f"  exploration: levels + {e}"] = FeatureModel(make_estimator("loglinear"), levels + [e])
    models["loglinear levels + stepwise counts (nested)"] = NestedStepwise("loglinear", levels, extras)
    models["overhead-loglinear fixed (instr + fw + log(thr) x fw)"] = FeatureModel(make_estimator("overhead-loglinear"), fixed)
    models["overhead-loglinear + stepwise counts (nested)"] = NestedStepwise("overhead-loglinear", fixed, extras)
    from perfmodel.model.features import additive_throughput_terms, per_thread_terms

    additive = additive_throughput_terms(df)
    if "fc_stream_ms" in df.columns:
        models["stream: additive + FC weights at calibrated BW"] = FeatureModel(
            make_estimator("overhead-linear"), additive + ["fc_stream_ms"])
        models["stream: instr x (fw, thr) + FC weights at calibrated BW"] = FeatureModel(
            make_estimator("overhead-linear"), additive_throughput_terms(df, memory=()) + ["fc_stream_ms"])
        models["  stream: additive + FC stream time, cost fitted per thr"] = FeatureModel(
            make_estimator("overhead-linear"), additive + per_thread_terms(df, "fc_stream_ms"))
        if "l1d_refills_per_image" in df.columns:
            models["stream + L1-d refills x thr (trained/)"] = FeatureModel(
                make_estimator("overhead-linear"),
                additive + ["fc_stream_ms"] + per_thread_terms(df, "l1d_refills_per_image"))
        if "conv_over_l2_mb" in df.columns:
            models["stream + conv weights over L2, cost per thr"] = FeatureModel(
                make_estimator("overhead-linear"),
                additive + ["fc_stream_ms"] + per_thread_terms(df, "conv_over_l2_mb"))
            models["  stream + conv weights over L2, one cost"] = FeatureModel(
                make_estimator("overhead-linear"), additive + ["fc_stream_ms", "conv_over_l2_mb"])
        raw = [f"{e}_per_image" for e in events if f"{e}_per_image" in df.columns
               and f"{e}_per_image" not in additive and e != "instructions"
               and (df[f"{e}_per_image"] >= 0).all() and df[f"{e}_per_image"].nunique() > 1]
        models["stream + stepwise raw counts (nested)"] = NestedStepwise(
            "overhead-linear", additive + ["fc_stream_ms"], raw)
        models["baseline: overhead-linear on MACs x (fw, thr) + FC stream"] = FeatureModel(
            make_estimator("overhead-linear"), additive_throughput_terms(df, work="macs", memory=()) + ["fc_stream_ms"])
    models["overhead-linear additive: instr + L2-d refills"] = FeatureModel(
        make_estimator("overhead-linear"), additive)
    models["overhead-linear additive: instr x (fw, thr) only"] = FeatureModel(
        make_estimator("overhead-linear"), additive_throughput_terms(df, memory=()))
    if "weight_bytes" in df.columns:
        models["  hybrid: additive + weight bytes (graph fact)"] = FeatureModel(
            make_estimator("overhead-linear"), additive_throughput_terms(df, memory=("weight_bytes",)))
    if "task_clock_ms_per_s" in df.columns and (df["task_clock_ms_per_s"] > 0).all():
        models["  measured-run: overhead fixed + log(CPU util.)"] = FeatureModel(
            make_estimator("overhead-loglinear"), fixed + ["log(task_clock_ms_per_s)"])
    sets = {"fixed": fixed, "levels": levels, **{f"levels+{e}": levels + [e] for e in extras}}
    models["choice among fixed/levels/levels+1 count (nested)"] = NestedChoice("loglinear", sets)
    models["baseline: MACs-only per (fw, threads)"] = MacsBaseline(group=["framework", "threads"])
    models["baseline: log(MACs) + fw + fw x thr levels"] = FeatureModel(make_estimator("loglinear"), macs_levels)
    models["baseline: overhead-loglinear on log(MACs)"] = FeatureModel(make_estimator("overhead-loglinear"),
                                                                      throughput_terms(df, work="macs"))
    models["baseline: overhead-linear on MACs x (fw, thr)"] = FeatureModel(
        make_estimator("overhead-linear"), additive_throughput_terms(df, work="macs", memory=()))
    models["baseline: mean"] = MeanBaseline()
    splits = make_splits(df, group="network")
    results = {}
    for name, m in models.items():
        try:
            results[name] = cross_validate(m, df, TARGET, splits, name=name, group="network", n_jobs=args.jobs)
        except (PerfmodelError, ValueError, np.linalg.LinAlgError) as exc:
            results[name] = str(exc)
    # optimistic: stepwise selection on every network, scored on the same splits
    from perfmodel.model import fit_model

    try:
        sw = fit_model(table, TARGET, extras, kind="loglinear", groups="network", always=levels, baselines=False,
                       statistics=False, n_jobs=args.jobs)
        opt = {"mape": sw.cv.get("mape"), "rmspe": sw.cv.get("rmspe"), "within_10": sw.cv.get("within_10"),
               "features": sw.features}
    except PerfmodelError as exc:
        opt = {"error": str(exc)}

    validation = validate_on(models, results, df, args.validate_on) if args.validate_on else []
    rows = []
    print(f"\n{'model':52s} {'MAPE %':>7s} {'RMSPE %':>8s} {'<=10 %':>7s} {'max %':>7s}")
    for name, r in results.items():
        if isinstance(r, str):
            print(f"{name:52s} not evaluated: {r}")
            rows.append({"model": name, "status": "not evaluated", "reason": r})
            continue
        ape = 100 * np.abs(r.predictions - r.y) / r.y
        print(f"{name:52s} {r.metrics['mape']:7.2f} {r.metrics['rmspe']:8.2f} {r.metrics['within_10']:7.1f} "
              f"{ape.max():7.1f}")
        rows.append({"model": name, "status": "ok", **{k: r.metrics[k] for k in ("mape", "rmspe", "within_10", "n")},
                     "max_ape": float(ape.max()), "folds": r.folds})
    if "error" in opt:
        print(f"{'levels + stepwise counts (optimistic)':52s} not evaluated: {opt['error']}")
    else:
        print(f"{'levels + stepwise counts (OPTIMISTIC: chosen on all)':52s} {opt['mape']:7.2f} {opt['rmspe']:8.2f} "
              f"{opt['within_10']:7.1f}   added: {', '.join(f for f in opt['features'] if f not in levels) or '-'}")
    # per-network folds of the main rows
    show = [n for n in results if not isinstance(results[n], str) and not n.startswith("  ")
            and not n.startswith(("linear", "ridge"))]
    print("\nper held-out network: MAPE % (share within +-10 %)")
    short = {n: n.replace("baseline: ", "b:").replace("loglinear ", "").split(" (")[0][:18] for n in show}
    short.update({n: n.split(" ")[0] + " (nested)" for n in show if n.endswith("(nested)")})
    short.update({n: "additive " + ("+L2-d refills" if "refills" in n else "instr only")
                  for n in show if n.startswith("overhead-linear additive")})
    short.update({n: "stream " + ("instr only" if "only" in n or "instr x" in n else "+refills")
                  for n in show if n.startswith("stream:")})
    print(f"{'network':15s} " + " ".join(f"{short[n][:18]:>18s}" for n in show))
    for net in nets:
        cells = []
        for n in show:
            fold = next(f for f in results[n].folds if f["held_out"] == net)
            cells.append(f"{fold['mape']:7.1f} ({fold['within_10']:3.0f}%)")
        print(f"{net:15s} " + " ".join(f"{c:>18s}" for c in cells))
    trained = "stream + L1-d refills x thr (trained/)"
    per_fw_thr, per_fw_thr_l2, per_fw_thr_stream = [], [], []
    for name, out in ((trained, per_fw_thr), ("stream: additive + FC weights at calibrated BW", per_fw_thr_stream),
                      ("stream + conv weights over L2, cost per thr", per_fw_thr_l2)):
        if name not in results or isinstance(results[name], str):
            continue
        r = results[name]
        ape = 100 * np.abs(r.predictions - r.y) / r.y
        cells = df[["framework", "threads"]].astype(str).assign(ape=ape)
        print(f"\n{name}, per framework x threads: MAPE % (share within +-10 %)")
        for (fw, thr), g in cells.groupby(["framework", "threads"], sort=True):
            out.append({"framework": fw, "threads": int(thr), "mape": float(g["ape"].mean()),
                        "within_10": float(100 * (g["ape"] <= 10).mean()), "n": int(len(g))})
            print(f"  {fw:12s} {thr} thread(s): {g['ape'].mean():6.2f} ({100 * (g['ape'] <= 10).mean():5.1f} %)")
    if validation:
        print(f"\nfitted on the other networks, scored on {', '.join(args.validate_on)}: MAPE % (share within +-10 %)")
        print(f"{'model':52s} {'all':>14s} " + " ".join(f"{n:>14s}" for n in args.validate_on))
        for v in validation:
            if "error" in v:
                print(f"{v['model']:52s} not evaluated: {v['error']}")
                continue
            print(f"{v['model']:52s} {v['mape']:7.2f} ({v['within_10']:3.0f}%) " + " ".join(
                f"{v['per_network'][n]['mape']:7.2f} ({v['per_network'][n]['within_10']:3.0f}%)" for n in args.validate_on))
    print(f"\nfixed terms: {', '.join(fixed)}\nlevels terms: {', '.join(levels)}\nextra candidates: {', '.join(extras)}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.synthetic:
        print("(synthetic data: these figures only show the pipeline works; they are not measurements)")
    if args.json:
        args.json.write_text(json.dumps({"dataset": args.dataset, "cells": len(df), "networks": nets,
                                         "average_repeats": bool(args.average_repeats),
                                         "trained_geometry_note": geometry_note, "left_out": missing, "rows": rows, "optimistic_stepwise": opt,
                                         "trained_per_framework_threads": per_fw_thr,
                                         "l2_per_framework_threads": per_fw_thr_l2,
                                         "stream_per_framework_threads": per_fw_thr_stream,
                                         "validate_on": args.validate_on, "validation": validation,
                                         "fixed": fixed, "levels": levels, "extras": extras}, indent=1,
                                        default=lambda x: None if isinstance(x, float) else str(x)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
