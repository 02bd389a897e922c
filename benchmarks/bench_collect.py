"""Cost of the collection stage: campaign wall time and the per-cell overhead of a fresh worker.

    .venv/bin/python benchmarks/bench_collect.py [--frameworks litert,onnxruntime] [--images 3] [--json PATH]

Per cell: total wall time seen by the parent, worker spawn latency (Popen -> first line of the worker
module), model load, warm-up, the counted loop, and the rest (imports, counters/sensors set-up, writing
and validating the records) = overhead.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frameworks", default="tensorflow,litert,onnxruntime,opencv")
    ap.add_argument("--network", default="squeezenet1_1")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from perfmodel.collect import CampaignSpec, run_campaign
    from perfmodel.data import Dataset

    spec = CampaignSpec(frameworks=args.frameworks.split(","), networks=[args.network], images=args.images,
                        warmup_images=1, warmup_min_s=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        res = run_campaign(spec, Path(tmp) / "ds", progress=False)
        wall = time.monotonic() - t0
        ds = Dataset.open(Path(tmp) / "ds")
        rows = []
        for o in res.outcomes:
            m = ds.cell_meta(o.cell_id) if o.status == "done" else {}
            measured = m.get("load_s", 0) + m.get("warmup_s", 0) + m.get("wall_s", 0)
            rows.append({"cell": o.cell_id, "status": o.status, "cell_wall_s": o.wall_s,
                         "spawn_s": o.spawn_s, "load_s": m.get("load_s"), "warmup_s": m.get("warmup_s"),
                         "counted_s": m.get("wall_s"), "overhead_s": o.wall_s - measured})
    print(f"campaign: {len(res.outcomes)} cells, {args.images} images each, wall {wall:.2f} s")
    print(f"{'cell':48s} {'wall':>6s} {'spawn':>6s} {'load':>6s} {'warm':>6s} {'count':>6s} {'over':>6s}")
    for r in rows:
        f = lambda v: f"{v:6.2f}" if isinstance(v, (int, float)) else f"{'-':>6s}"  # noqa: E731
        print(f"{r['cell']:48s} {f(r['cell_wall_s'])} {f(r['spawn_s'])} {f(r['load_s'])} {f(r['warmup_s'])} "
              f"{f(r['counted_s'])} {f(r['overhead_s'])}")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, "cells": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
