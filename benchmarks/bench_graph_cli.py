"""Wall time of a fresh `perfmodel predict --graph` process (issue 19's target: a 200-layer network <= 200 ms).

    python benchmarks/bench_graph_cli.py [--graph FILE] [--model M] [--repeats 10] [--baseline DIR] [--json]

Default graph: DenseNet-121's ONNX file from the zoo's exporter (426 ops, 186 kernels; exported once into the
model cache); default model: trained/throughput_operator.json (8 framework x threads cells). Rows, run
interleaved (one of each per round, so the VM's drift hits them alike):
- `perfmodel` console script, the model file already checked (its checked form in the cache: the usual case);
- the same as `python -m perfmodel`;
- the first run on a model file (a fresh, empty PERFMODEL_CACHE: the file is checked against its schema);
- with --baseline DIR: `python -m perfmodel` of another checkout (e.g. `git worktree add --detach DIR COMMIT`)
  with that checkout's own trained/throughput_operator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _time(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    ms = (time.perf_counter() - t) * 1e3
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    json.loads(r.stdout)  # a whole answer, not an error message
    return ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graph", help="an ONNX / Keras file (default: DenseNet-121's ONNX file from the zoo)")
    ap.add_argument("--model", default=str(ROOT / "trained" / "throughput_operator.json"))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--baseline", type=Path, help="another checkout's root, run with the same interpreter")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.graph is None:
        from perfmodel.zoo import export

        args.graph = str(export("densenet121", "onnx"))
    from perfmodel.zoo.kernels import read_graph

    ops = len(read_graph(args.graph))
    model, graph = str(Path(args.model).resolve()), str(Path(args.graph).resolve())
    tail = ["predict", "--model", model, "--graph", graph, "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    exe = str(Path(sys.executable).with_name("perfmodel"))
    variants = {"perfmodel console script (model checked before)": ([exe, *tail], env, ROOT),
                "python -m perfmodel (model checked before)": ([sys.executable, "-m", "perfmodel", *tail], env, ROOT),
                "python -m perfmodel, first run on the model file (empty cache)": None}
    if args.baseline is not None:  # with its own model file (an older perfmodel may not read a newer file)
        base_model = str(args.baseline.resolve() / "trained" / "throughput_operator.json")
        variants[f"baseline {args.baseline}: python -m perfmodel (its own trained/ model)"] = (
            [sys.executable, "-m", "perfmodel", "predict", "--model", base_model, "--graph", graph, "--json"],
            {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}, args.baseline.resolve())
    _time([sys.executable, "-m", "perfmodel", *tail], env, ROOT)  # the checked form in the cache; files warm
    times: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, v in variants.items():
                if v is None:  # each run its own empty cache
                    fresh = {**env, "PERFMODEL_CACHE": str(Path(tmp) / f"cache-{i}")}
                    v = ([sys.executable, "-m", "perfmodel", *tail], fresh, ROOT)
                times[name].append(_time(*v))
    rows = [{"variant": k, "median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t), "runs": len(t)}
            for k, t in times.items()]
    result = {"graph": graph, "ops": ops, "model": model, "rows": rows,
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"fresh `perfmodel predict --graph` of {Path(graph).name} ({ops} ops), {args.repeats} interleaved rounds, "
          f"{result['when']}")
    width = max(len(r["variant"]) for r in rows)
    print(f"{'variant'.ljust(width)}  median ms  min ms  max ms")
    for r in rows:
        print(f"{r['variant'].ljust(width)}  {r['median_ms']:9.0f}  {r['min_ms']:6.0f}  {r['max_ms']:6.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
