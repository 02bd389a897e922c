"""A campaign on one board and on two boards of a fleet (Dask distributed), both boards on this machine.

    .venv/bin/python benchmarks/bench_fleet.py [--repeats 3] [--images 3] [--json]

Starts a real scheduler and two real board workers (``python -m perfmodel fleet ...`` on loopback), then runs
the same small campaign (ONNX Runtime x SqueezeNet v1.1, threads 1, ``--repeats`` cells of ``--images``
images):

* ``local``: ``run_campaign`` without a fleet (no calibration), the baseline;
* ``1 board``: ``collect --scheduler`` on board b1: N cells;
* ``2 boards``: on b1 and b2: each board measures the same N cells (2N cells).

Reported: wall times, the speed-up in cells per second of two boards over one (``2 * wall_1 / wall_2``; at most 2
on a 2-core machine, less when the boards' cells compete for the cores or other work runs), and the scheduler's
overhead per cell: ``(wall_1 - wall_local) / N`` (what the fleet adds to the same cells: connect, submit,
records back, writes) and ``(wall_1 - time inside the board's cell tasks) / N``. The load average is printed:
on a shared machine every figure moves with it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen([sys.executable, "-m", "perfmodel", "fleet", *args], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"), env=env, start_new_session=True)


def _wait(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise SystemExit(f"bench_fleet: {what} within {timeout_s:g} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="cells per board (repeats of the one cell)")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    from perfmodel.collect import CampaignSpec, run_campaign
    from perfmodel.collect.fleet import connect, fleet_boards, run_fleet_campaign

    def spec():
        return CampaignSpec(frameworks=["onnxruntime"], networks=["squeezenet1_1"], threads=[1], images=args.images,
                            repeats=args.repeats, warmup_images=1, warmup_min_s=0.0)

    procs: list[subprocess.Popen] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        tmp = Path(tmp)
        try:
            procs.append(_start(["scheduler", "--port", "0"], tmp / "scheduler.log"))
            address = _wait(lambda: next((ln.split()[-1] for ln in (tmp / "scheduler.log").read_text().splitlines()
                                          if ln.startswith("scheduler at ")), None), 90, "no scheduler address")
            for b in ("b1", "b2"):
                procs.append(_start(["worker", address, "--board", b], tmp / f"{b}.log"))

            def connected():
                c = connect(address)
                try:
                    return {b for b, e in fleet_boards(c).items() if e["connected"]} >= {"b1", "b2"}
                finally:
                    c.close()

            _wait(connected, 120, "the two boards did not connect")
            # first use exports the model into the shared cache: not part of any figure
            run_campaign(CampaignSpec(frameworks=["onnxruntime"], networks=["squeezenet1_1"], images=1,
                                      warmup_images=0, warmup_min_s=0.0), tmp / "warm", progress=False,
                         calibrate=False)
            t0 = time.monotonic()
            local = run_campaign(spec(), tmp / "local", progress=False, calibrate=False)
            wall_local = time.monotonic() - t0
            t0 = time.monotonic()
            one = run_fleet_campaign(spec(), tmp / "one", address, boards=["b1"], progress=False)
            wall_1 = time.monotonic() - t0
            t0 = time.monotonic()
            two = run_fleet_campaign(spec(), tmp / "two", address, boards=["b1", "b2"], progress=False)
            wall_2 = time.monotonic() - t0
        finally:
            for p in procs:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
    n = args.repeats
    failed = len(local.failed) + len(one.failed) + len(two.failed)
    out = {
        "campaign": f"onnxruntime x squeezenet1_1, threads 1, {args.images} images, {n} cell(s) per board",
        "cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "failed_cells": failed,
        "local": {"cells": len(local.done), "wall_s": wall_local},
        "one_board": {"cells": len(one.done), "wall_s": wall_1, "task_s": one.task_s, "connect_s": one.connect_s},
        "two_boards": {"cells": len(two.done), "wall_s": wall_2, "task_s": two.task_s, "connect_s": two.connect_s},
        "speedup_cells_per_s": 2 * wall_1 / wall_2,
        "overhead_per_cell_vs_local_s": (wall_1 - wall_local) / n,
        "overhead_per_cell_outside_task_s": (wall_1 - sum(one.task_s.values())) / n,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 1 if failed else 0
    print(f"campaign: {out['campaign']}; {out['cores']} cores; load average before "
          f"{load_before[0]:.2f}, after {out['loadavg_after'][0]:.2f} (shared machine)")
    print(f"{'run':12s} {'cells':>6s} {'wall s':>8s} {'s/cell':>8s} {'in tasks s':>11s}")
    for name, key in (("local", "local"), ("1 board", "one_board"), ("2 boards", "two_boards")):
        r = out[key]
        inside = sum(r.get("task_s", {}).values()) if "task_s" in r else None
        print(f"{name:12s} {r['cells']:6d} {r['wall_s']:8.2f} {r['wall_s'] / max(1, r['cells']):8.2f} "
              f"{'-' if inside is None else f'{inside:.2f}':>11s}")
    print(f"2 boards vs 1 board: {out['speedup_cells_per_s']:.2f}x cells per second (ideal at most 2 on this "
          "machine)")
    print(f"scheduler overhead per cell: {out['overhead_per_cell_vs_local_s']:.2f} s vs the local campaign, "
          f"{out['overhead_per_cell_outside_task_s']:.2f} s outside the board's cell task")
    if failed:
        print(f"warning: {failed} cell(s) failed; the figures count done cells only")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
