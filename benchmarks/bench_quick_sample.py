"""Quick-sample prediction vs long-run traces: error of the predicted long-run throughput per network.

    python benchmarks/bench_quick_sample.py --model trained/throughput_reference.json \\
        --trace datasets/traces/squeezenet1_1 --trace datasets/traces/googlenet --trace datasets/traces/resnet50 \\
        [--images 10] [--skip-s 10] [--simulated-from datasets/reference] [--simulate] [--json OUT]

For every trace data set (``perfmodel trace`` output, ``phase="trace"`` records; framework, network and
threads are read from its records) this takes a fresh quick sample of the same framework x network x
threads (``--images`` counted images after a warm-up, as ``perfmodel predict --framework ...`` does),
predicts the long-run throughput with the model (simulated counts from the reference data set when the
model needs them and the library versions match) and compares it with the trace's measured long-run
throughput: images / seconds over the trace after its first ``--skip-s`` seconds. The quick sample's
own throughput (the naive estimate) is compared too, and the sample's throughput x the long-run / first-2-s
ratio of long-run traces of the *other* networks (``perfmodel.model.longrun``; never the held-out network's
own trace). Issue target: <= 5 % error per paper network.

With ``--fresh-trace SECONDS`` the long run is measured right after each quick sample instead of taken from
recorded traces: for every ``--cell FRAMEWORK:NETWORK:THREADS`` (default: ONNX Runtime, 1 thread, the three
paper networks) and every ``--rounds``, the quick sample, then a trace of SECONDS of the same cell
(``--trace-out DIR`` keeps them as a data set). This measures what a user gets - a sample now, the long run
that follows - without the drift of a shared VM between a trace recorded hours ago and the sample (this
VM's speed moves 5-25 % within hours). Even back to back the long run wanders from the sample here: over
12 pairs (datasets/traces-fresh) the log of long-run / quick-sample throughput had a standard deviation
of 5.2 %, and the sample's own throughput missed the long run by 4.7 % on average (10.6 % at most).

``--seconds S`` makes every quick sample count images for S seconds instead of ``--images`` images
(``perfmodel predict --seconds``). ``--compare-seconds S`` (with ``--fresh-trace``) takes both before each
trace, a ``--images`` sample and an S-second one, in alternating order by round, and scores both against
the same long run (the S-second sample's fields are prefixed ``timed_``): a paired comparison.

Each quick sample runs inference for a few seconds: do not run this while other timing measurements run.
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


def long_run(trace_path: Path, skip_s: float) -> list[dict]:
    """One dict per trace cell of the data set: keys, long-run fps after ``skip_s`` and the trace length."""
    from perfmodel.data import read_dataset

    return long_run_records(read_dataset(trace_path), skip_s)


def long_run_records(records, skip_s: float) -> list[dict]:
    """:func:`long_run` of trace records (a data set's, or a trace just measured): the long-run fps after
    ``skip_s`` and the fps before it (:func:`perfmodel.model.longrun.trace_ratios` with its start window at
    ``skip_s``), or ``long_run_fps`` None with the reason."""
    from perfmodel.model.longrun import trace_ratios

    records = records[records["phase"] == "trace"]
    if records.empty:
        return []
    table = {r["cell_id"]: r for r in trace_ratios(records, window_s=skip_s, skip_s=skip_s).to_dict("records")}
    keys = records[["framework", "network", "threads", "cell_id"]].drop_duplicates().sort_values(
        ["framework", "network", "threads", "cell_id"])
    out = []
    for fw, net, thr, cid in keys.itertuples(index=False):
        row = {"framework": str(fw), "network": str(net), "threads": int(thr), "cell_id": str(cid)}
        r = table.get(str(cid))
        if r is None:
            out.append({**row, "long_run_fps": None,
                        "reason": f"no images counted both before and after the first {skip_s:g} s of the trace"})
            continue
        out.append({**row, "long_run_fps": r["long_run_fps"], "trace_s": r["trace_s"],
                    "first_10s_fps": r["start_fps"]})
    return out


def fresh_cells(specs: list[str]) -> list[tuple[str, str, int]]:
    """``FRAMEWORK:NETWORK:THREADS`` strings -> tuples (default: ONNX Runtime x the paper networks, 1 thread)."""
    if not specs:
        return [("onnxruntime", n, 1) for n in ("squeezenet1_1", "googlenet", "resnet50")]
    out = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"--cell takes FRAMEWORK:NETWORK:THREADS (e.g. onnxruntime:googlenet:1), got {spec!r}")
        out.append((parts[0], parts[1], int(parts[2])))
    return out


def estimate(model, args, framework: str, network: str, threads: int, seconds: float | None = None) -> dict:
    """A quick sample now: the model's prediction, the sample's own throughput and sample x long-run ratio
    (``seconds``: a sample of that many seconds instead of ``--images`` images)."""
    from perfmodel.workflows.defaults import default_traces
    from perfmodel.workflows.quick import long_run_from_sample, quick_sample_table, sample_image_count, sample_rel_se

    df, note, _, _ = quick_sample_table(model, framework, network, threads=threads, images=args.images,
                                           counters=args.counters, simulated_from=args.simulated_from,
                                           simulate=args.simulate, seconds=seconds)
    pred = model.predict_frame(df).iloc[0]  # df: a Table (the sample's provenance travels with it)
    quick = float(df.frame["throughput_fps"].iloc[0])
    ratio_traces = args.ratio_traces or list(dict.fromkeys(default_traces() + list(args.trace)))
    fs = long_run_from_sample(quick, framework, threads, ratio_traces, exclude_network=[network],
                              quick_rel_se=sample_rel_se(df))
    return {"pred": pred, "quick_fps": quick, "from_sample": fs, "note": note,
            "counted_images": sample_image_count(df)}


#: the fields of :func:`score` that describe one sample's estimates (``timed_`` copies with --compare-seconds)
SAMPLE_FIELDS = ("from_sample_fps", "from_sample_lo", "from_sample_hi", "from_sample_error_pct", "ratio",
                 "from_sample_reason", "predicted_fps", "lo", "hi", "quick_fps", "model_error_pct",
                 "naive_error_pct", "in_interval", "sample_wall_s", "counted_images")


def fresh_long_run(framework: str, network: str, threads: int, args, rnd: int) -> dict:
    """Trace the cell for ``--fresh-trace`` seconds now: the :func:`long_run` dict of that trace (fields as
    in the ``--trace`` mode), or ``{"long_run_fps": None, "reason"}``."""
    from perfmodel.collect.trace import run_trace
    from perfmodel.errors import PerfmodelError

    try:
        res = run_trace(framework, network, threads, duration_s=args.fresh_trace, out=args.trace_out,
                        counters=trace_counters(args), repeat=rnd,
                        progress=False)
    except PerfmodelError as exc:
        return {"long_run_fps": None, "reason": f"trace failed: {exc}"}
    if res.skipped:  # never score an old trace as the long run after this sample
        return {"long_run_fps": None, "reason": f"{res.cell_id} is already in {args.trace_out}: give a new --trace-out"}
    cells = long_run_records(res.records, args.skip_s)
    if not cells:
        return {"long_run_fps": None, "reason": "the trace recorded no interval"}
    return cells[0]


def score(row: dict, est: dict, lr: float, sample_s: float) -> dict:
    """``row`` with the three estimates of ``est`` scored against the long-run throughput ``lr``."""
    pred, quick, fs = est["pred"], est["quick_fps"], est["from_sample"]
    row = dict(row)
    if "pred" in fs:
        row.update({"from_sample_fps": fs["pred"], "from_sample_lo": fs["lo"], "from_sample_hi": fs["hi"],
                    "from_sample_error_pct": 100 * (fs["pred"] - lr) / lr, "ratio": fs["ratio"],
                    "ratio_traces": fs["traces_from"]})
    else:
        row["from_sample_reason"] = fs["reason"]
    row.update({"status": "ok", "long_run_fps": lr, "predicted_fps": float(pred["pred"]), "lo": float(pred["lo"]),
                "hi": float(pred["hi"]), "quick_fps": quick,
                "model_error_pct": 100 * (float(pred["pred"]) - lr) / lr,
                "naive_error_pct": 100 * (quick - lr) / lr,
                "in_interval": bool(pred["lo"] <= lr <= pred["hi"]), "counts_from": est["note"],
                "sample_wall_s": sample_s, "counted_images": est["counted_images"]})
    return row


class Rows(list):
    """The benchmark's rows, written to ``--json`` after every row (a crash in a long run keeps them)."""

    def __init__(self, args):
        super().__init__()
        self.args = args

    def append(self, row) -> None:
        super().append(row)
        self.dump()

    def dump(self) -> None:
        a = self.args
        if a.json:
            a.json.write_text(json.dumps({"model": str(a.model), "images": a.images, "seconds": a.seconds,
                                          "compare_seconds": a.compare_seconds, "skip_s": a.skip_s,
                                          "fresh_trace_s": a.fresh_trace,
                                          "rounds": a.rounds if a.fresh_trace is not None else None,
                                          "rows": list(self)}, indent=1, default=str))


def trace_counters(args) -> str:
    """The counter source of the --fresh-trace traces (a trace cannot run under valgrind)."""
    return args.counters if args.counters != "valgrind" else "auto"


def done_trace_cells(folder: Path | None, cells, rounds: int, counters: str) -> list[str]:
    """The trace cells of ``cells`` x ``rounds`` already done in ``folder`` (``--trace-out``)."""
    if folder is None or not (folder / "dataset.json").is_file():
        return []
    from perfmodel.collect.trace import trace_cell_id
    from perfmodel.data.store import Dataset

    done = set(Dataset.open(folder).done_cells())
    return [c for fw, net, thr in cells for r in range(rounds)
            for c in [trace_cell_id(fw, net, thr, counters, r)] if c in done]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="throughput model file (perfmodel fit)")
    ap.add_argument("--trace", action="append", default=[], type=Path, help="a trace data set (repeatable)")
    ap.add_argument("--images", type=int, default=10, help="counted images of each quick sample (<= 10)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="each quick sample counts images for this many seconds (<= 10) instead of --images")
    ap.add_argument("--compare-seconds", type=float, default=None, metavar="SECONDS",
                    help="with --fresh-trace: take a second quick sample of SECONDS beside the --images one before "
                         "each trace (order alternating by round), scored against the same long run (fields "
                         "timed_*)")
    ap.add_argument("--skip-s", type=float, default=10.0, help="seconds at the start of a trace left out")
    ap.add_argument("--simulated-from", type=Path, default=None, help="data set with the simulated counts "
                    "(default: the checkout's valgrind cells simulated with the model's caches, as perfmodel predict picks them)")
    ap.add_argument("--simulate", action="store_true", help="run the valgrind pass when no reference applies")
    ap.add_argument("--counters", default="auto")
    ap.add_argument("--ratio-traces", action="append", default=None, type=Path, metavar="DATASET",
                    help="traces whose long-run / first-2-s ratio turns the quick sample's own throughput into a "
                         "long-run estimate (default: datasets/traces of this checkout + the --trace ones); the "
                         "held-out network's own traces are never used for its estimate")
    ap.add_argument("--fresh-trace", type=float, default=None, metavar="SECONDS",
                    help="measure the long run right after each quick sample: a trace of SECONDS of the same cell "
                         "(instead of --trace data sets recorded earlier)")
    ap.add_argument("--cell", action="append", default=[], metavar="FRAMEWORK:NETWORK:THREADS",
                    help="a cell for --fresh-trace (repeatable; default onnxruntime x the three paper networks, 1 thread)")
    ap.add_argument("--rounds", type=int, default=1, help="sample + trace rounds per cell with --fresh-trace")
    ap.add_argument("--trace-out", type=Path, default=None, help="keep the --fresh-trace traces in this data set")
    ap.add_argument("--json", type=Path, help="write the table as JSON")
    args = ap.parse_args(argv)
    from perfmodel.errors import PerfmodelError
    from perfmodel.model import load_model

    if args.fresh_trace is None and (args.cell or args.rounds != 1 or args.trace_out is not None):
        print("--cell, --rounds and --trace-out go with --fresh-trace SECONDS")
        return 2
    if args.compare_seconds is not None and (args.fresh_trace is None or args.seconds is not None):
        print("--compare-seconds goes with --fresh-trace and --images (not --seconds)")
        return 2
    for opt in ("seconds", "compare_seconds"):
        v = getattr(args, opt)
        if v is not None and not 0 < v <= 10:
            print(f"--{opt.replace('_', '-')} must be more than 0 and at most 10 s")
            return 2
    if args.fresh_trace is not None:
        if args.trace:
            print("--fresh-trace measures its own long runs: give --cell, not --trace")
            return 2
        if not args.fresh_trace > args.skip_s:
            print(f"--fresh-trace must be longer than --skip-s ({args.skip_s:g} s)")
            return 2
        if args.rounds < 1:
            print("--rounds must be >= 1")
            return 2
    elif not args.trace:
        print("no --trace data set given: nothing to compare (record one with `perfmodel trace ... -o DIR`, "
              "or use --fresh-trace SECONDS)")
        return 2
    try:
        model = load_model(args.model)
    except PerfmodelError as exc:
        print(f"cannot load the model: {exc}")
        return 2
    rows = Rows(args)
    if args.fresh_trace is not None:
        try:
            fresh = fresh_cells(args.cell)
        except ValueError as exc:
            print(exc)
            return 2
        taken = done_trace_cells(args.trace_out, fresh, args.rounds, trace_counters(args))
        if taken:
            print(f"{args.trace_out} already holds trace cell(s) {', '.join(taken)}: give a new --trace-out "
                  "(a trace made before the sample must not be scored as its long run)")
            return 2
    else:
        fresh = []
    for rnd in range(args.rounds if fresh else 0):
        for fw, net, thr in fresh:
            row = {"trace": "fresh", "round": rnd + 1, "framework": fw, "network": net, "threads": thr}
            kinds = [None] if args.compare_seconds is None else (
                [None, args.compare_seconds] if rnd % 2 == 0 else [args.compare_seconds, None])
            ests = {}
            try:
                for kind in kinds:
                    t0 = time.perf_counter()
                    est = estimate(model, args, fw, net, thr, seconds=kind if kind is not None else args.seconds)
                    ests[kind] = (est, time.perf_counter() - t0)
            except PerfmodelError as exc:
                rows.append({**row, "status": "not evaluated", "reason": str(exc)})
                print(f"{fw} x {net} t{thr}: not evaluated: {exc}")
                continue
            lr = fresh_long_run(fw, net, thr, args, rnd)
            row.update(lr)
            if lr["long_run_fps"] is None:
                rows.append({**row, "status": "not evaluated"})
                continue
            est, sample_s = ests[None]
            out = score(row, est, lr["long_run_fps"], sample_s)
            if args.compare_seconds is not None:
                timed_est, timed_s = ests[args.compare_seconds]
                timed = score({}, timed_est, lr["long_run_fps"], timed_s)
                out.update({f"timed_{k}": timed[k] for k in SAMPLE_FIELDS if k in timed})
                out["sample_order"] = "images first" if kinds[0] is None else "timed first"
            rows.append(out)
            extra = (f", {args.compare_seconds:g}-s sample {out['timed_quick_fps']:.2f}"
                     if args.compare_seconds is not None else "")
            print(f"round {rnd + 1}: {fw} x {net} t{thr}: quick {est['quick_fps']:.2f}{extra}, long run "
                  f"{lr['long_run_fps']:.2f} images/s", flush=True)
    for path in ([] if fresh else args.trace):
        if not (path / "dataset.json").is_file():
            print(f"{path}: no trace data set there (not recorded yet?) - skipped")
            rows.append({"trace": str(path), "status": "missing", "reason": "no dataset.json"})
            continue
        cells = long_run(path, args.skip_s)
        if not cells:
            print(f"{path}: the data set has no finished trace cell (phase='trace' records) - skipped")
            rows.append({"trace": str(path), "status": "missing", "reason": "no trace records"})
            continue
        for c in cells:
            row = {"trace": str(path), **c}
            if c["long_run_fps"] is None:
                rows.append({**row, "status": "not evaluated"})
                continue
            t0 = time.perf_counter()
            try:
                est = estimate(model, args, c["framework"], c["network"], c["threads"])
            except PerfmodelError as exc:
                rows.append({**row, "status": "not evaluated", "reason": str(exc)})
                print(f"{c['framework']} x {c['network']} t{c['threads']}: not evaluated: {exc}")
                continue
            rows.append(score(row, est, c["long_run_fps"], time.perf_counter() - t0))
    ok = [r for r in rows if r.get("status") == "ok"]
    what = f"{args.seconds:g} s" if args.seconds is not None else f"{args.images} images"
    print(f"\nquick sample ({what}) vs long-run trace (after the first {args.skip_s:g} s); "
          f"model {args.model}")
    print(f"{'framework x network (threads)':36s} {'long-run':>9s} {'predicted [interval]':>26s} {'err %':>7s} "
          f"{'quick':>8s} {'naive err %':>11s} {'from sample [interval]':>26s} {'err %':>7s}")
    for r in rows:
        label = f"{r.get('framework', '?')} x {r.get('network', r['trace'])} ({r.get('threads', '?')})" + (
            f" r{r['round']}" if "round" in r else "")
        if r.get("status") != "ok":
            print(f"{label:36s} not evaluated: {r.get('reason', r.get('status'))}")
            continue
        iv = f"{r['predicted_fps']:.2f} [{r['lo']:.1f}, {r['hi']:.1f}]"
        fs = (f"{r['from_sample_fps']:.2f} [{r['from_sample_lo']:.1f}, {r['from_sample_hi']:.1f}]"
              if "from_sample_fps" in r else "-")
        fe = f"{r['from_sample_error_pct']:+7.1f}" if "from_sample_fps" in r else "      -"
        print(f"{label:36s} {r['long_run_fps']:9.2f} {iv:>26s} {r['model_error_pct']:+7.1f} {r['quick_fps']:8.2f} "
              f"{r['naive_error_pct']:+11.1f} {fs:>26s} {fe}")
    if ok:
        m = np.mean([abs(r["model_error_pct"]) for r in ok])
        n = np.mean([abs(r["naive_error_pct"]) for r in ok])
        within = sum(abs(r["model_error_pct"]) <= 5 for r in ok)
        n_within = sum(abs(r["naive_error_pct"]) <= 5 for r in ok)
        print(f"mean |error|: model {m:.1f} %, naive {n:.1f} %; within 5 %: model {within}/{len(ok)}, "
              f"naive {n_within}/{len(ok)}")
        fs = [r for r in ok if "from_sample_fps" in r]
        if fs:
            f_m = np.mean([abs(r["from_sample_error_pct"]) for r in fs])
            f_w = sum(abs(r["from_sample_error_pct"]) <= 5 for r in fs)
            print(f"from the sample (x the long-run / start ratio of the other networks' traces): mean |error| "
                  f"{f_m:.1f} %, within 5 %: {f_w}/{len(fs)}; ratio from {fs[0]['ratio_traces']}")
        for r in ok:
            if "from_sample_reason" in r:
                print(f"from the sample, {r['network']}: not evaluated: {r['from_sample_reason']}")
        timed = [r for r in ok if "timed_quick_fps" in r]
        if timed:
            def summary(key):
                errs = [abs(r[key]) for r in timed if key in r]
                return f"{np.mean(errs):.1f} % ({sum(e <= 5 for e in errs)}/{len(errs)} within 5 %)"
            print(f"paired {args.compare_seconds:g}-s samples vs the {args.images}-image ones (same long runs): "
                  f"from the sample {summary('timed_from_sample_error_pct')} vs {summary('from_sample_error_pct')}; "
                  f"own fps {summary('timed_naive_error_pct')} vs {summary('naive_error_pct')}; model "
                  f"{summary('timed_model_error_pct')} vs {summary('model_error_pct')}")
        print(f"counts from: {ok[0]['counts_from']}")
    rows.dump()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
