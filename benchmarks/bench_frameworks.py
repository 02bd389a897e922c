"""Framework x network table of ms per image (read + pre-process + inference) on this machine.

Each cell runs in a fresh process (:func:`perfmodel.runners.time_isolated`), on the deterministic synthetic
500x375 JPEGs, after a warm-up. Prints one table per thread count: rows = frameworks, columns = networks,
cells = mean ms/image (median in brackets).

    .venv/bin/python benchmarks/bench_frameworks.py --networks squeezenet1_1 googlenet resnet50 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    from perfmodel.runners import FRAMEWORKS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=["squeezenet1_1"], help="zoo networks")
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--count", type=int, default=10, help="timed images per cell (at least)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per cell (at least)")
    ap.add_argument("--images", type=int, default=16, help="number of synthetic images")
    ap.add_argument("--json", type=Path, help="also write the cells as JSON to this path")
    args = ap.parse_args(argv)

    from perfmodel.errors import PerfmodelError
    from perfmodel.images import default_images
    from perfmodel.runners import time_isolated

    images = default_images(args.images)
    cells = []
    t_start = time.time()
    for t in args.threads:
        for net in args.networks:
            for fw in args.frameworks:
                print(f"  {fw:12s} {net:16s} t={t} ...", end="", file=sys.stderr, flush=True)
                try:
                    r = time_isolated(fw, net, t, images, warmup=args.warmup, count=args.count,
                                      min_time_s=args.min_time)
                    row = r.to_dict()
                    print(f" {row['mean_ms']:.1f} ms", file=sys.stderr)
                except PerfmodelError as exc:
                    row = {"framework": fw, "network": net, "threads": t, "error": str(exc)}
                    print(f" error: {exc}", file=sys.stderr)
                cells.append(row)

    for t in args.threads:
        print(f"\nms per image, mean (median), threads={t}; {len(images)} synthetic 500x375 JPEGs")
        head = f"{'framework':12s}" + "".join(f"{n:>20s}" for n in args.networks)
        print(head)
        print("-" * len(head))
        for fw in args.frameworks:
            line = f"{fw:12s}"
            for net in args.networks:
                c = next(c for c in cells if (c["framework"], c["network"], c["threads"]) == (fw, net, t))
                cell = "error" if "error" in c else f"{c['mean_ms']:.1f} ({c['median_ms']:.1f})"
                line += f"{cell:>20s}"
            print(line)
    print(f"\n({time.time() - t_start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"cells": cells}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
