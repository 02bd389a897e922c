"""Simulated (callgrind) counts of a kernel data set's units and of whole networks, one thread, one callgrind run
per framework: the input of ``bench_operator_model.py --simulated`` (the hardware-metric view).

    python benchmarks/kernel_counts.py FRAMEWORK DATA [--units N] [--networks a,b,...]

Appends to ``DATA/simulated.jsonl`` one record per unit / network: framework, kind, item, the canonical counts
(instructions, L1-d / L2-d accesses and refills, branches ...) and their source (valgrind version and the
simulated cache geometry, Cortex-A53-like by default). Each item is built and called once before counting
(set-up, not counted). Under valgrind there is no AVX-512: frameworks may run other kernels than natively here.
200 ONNX Runtime units + 10 networks took 32 minutes on this VM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfmodel.counters.valgrind import WorkloadSpec, simulate  # noqa: E402
from perfmodel.data.kernelset import read_kernelset  # noqa: E402
from perfmodel.zoo.units import Unit, export_unit  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("framework")
    ap.add_argument("data")
    ap.add_argument("--units", type=int, default=200, help="the first N units (by id) of the data set")
    ap.add_argument("--networks", default="", help="comma-separated zoo networks")
    ap.add_argument("--timeout", type=float, default=7200.0)
    args = ap.parse_args(argv)
    folder = Path(args.data)
    ks = read_kernelset(folder)
    items = [{"kind": "unit", "item": u, "unit": ks.units[u].unit,
              "files": {f: str(export_unit(Unit.from_dict(ks.units[u].unit), f)) for f in ("tflite", "onnx")}}
             for u in sorted(ks.units)[:args.units]]
    items += [{"kind": "network", "item": n} for n in args.networks.split(",") if n]
    t0 = time.time()
    res = simulate(WorkloadSpec("perfmodel.collect.kernel_worker:items_workload",
                                {"framework": args.framework, "items": items}),
                   n_images=len(items), timeout=args.timeout)
    with open(folder / "simulated.jsonl", "a") as f:
        for it, r in zip(items, res):
            f.write(json.dumps({"framework": args.framework, "threads": 1, "kind": it["kind"], "item": it["item"],
                                "source": next(iter(r.values())).source,
                                "counts": {k: v.value for k, v in r.items()}}) + "\n")
    print(f"{args.framework}: {len(items)} items simulated in {time.time() - t0:.0f} s -> {folder / 'simulated.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
