"""Long-run throughput of commands outside perfmodel's runners and zoo, from a quick sample of each.

    python benchmarks/bench_command_sample.py [--rounds 3] [--long-seconds 120] [--sample-seconds 3]
        [--command NAME ...] [--skip-s 10] [--json OUT]

For every command of ``benchmarks/commands`` (a plain ONNX Runtime script of a CNN built with the onnx
helper API, Keras NASNetMobile with random weights, a numpy im2col + matmul loop; one stdout line per
image) and every round: ``perfmodel predict --json -- CMD`` (no model: the command's quick sample after its
warm-up x the pooled long-run / start ratio of the shipped ``datasets/traces*``), then right after it a
fresh run of the same command for ``--long-seconds`` (:func:`perfmodel.collect.lines.trace_intervals`,
the same warm-up skipped). The long run's throughput is its images / seconds after ``--skip-s`` seconds.

Per command: mean absolute error of the long-run estimate, of the sample's own fps (the naive estimate)
and the long run's own drift (throughput over its first ``--skip-s`` s vs the rest: the floor of what any
estimate from the start of a run can do), and how many long runs fell in the estimate's interval.
Nothing is tuned to these results. Timing is of whatever else the machine runs at the time: say so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "ort_tiny_cnn": "ONNX Runtime, CNN built with the onnx helper API (4 conv blocks), 1 thread",
    "keras_nasnet": "Keras NASNetMobile (random weights), 1 thread",
    "numpy_conv": "numpy im2col + matmul, 3 conv layers, 1 BLAS thread",
}


def command_argv(name: str) -> list[str]:
    return [sys.executable, str(REPO / "benchmarks" / "commands" / f"{name}.py")]


def predict(argv: list[str], sample_seconds: float, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "perfmodel", "predict", "--json", "--seconds", str(sample_seconds),
                           "--timeout", str(timeout), "--", *argv], capture_output=True, text=True, env=env,
                          timeout=timeout + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"predict failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def long_run(argv: list[str], seconds: float, skip_s: float) -> dict:
    from perfmodel.collect.lines import trace_intervals

    iv, how = trace_intervals(argv, seconds, 1.0, timeout=120.0)
    first = [(a, b, n) for a, b, n in iv if a < skip_s]
    rest = [(a, b, n) for a, b, n in iv if a >= skip_s]
    fps = lambda xs: sum(n for *_, n in xs) / sum(b - a for a, b, _ in xs) if xs else float("nan")  # noqa: E731
    return {"long_run_fps": fps(rest), "first_fps": fps(first), "long_s": iv[-1][1] if iv else 0.0,
            "stopped_by": how}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--long-seconds", type=float, default=120.0)
    ap.add_argument("--sample-seconds", type=float, default=3.0)
    ap.add_argument("--skip-s", type=float, default=10.0)
    ap.add_argument("--command", action="append", choices=sorted(COMMANDS), help="default: all")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", type=Path, help="write rows and summary as JSON here")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.long_seconds <= a.skip_s:
        ap.error("--rounds >= 1 and --long-seconds > --skip-s")
    names = a.command or list(COMMANDS)
    rows = []
    for rnd in range(1, a.rounds + 1):
        for name in names:
            cmd = command_argv(name)
            row = {"command": name, "round": rnd, "started": time.strftime("%H:%M:%S")}
            try:
                est = predict(cmd, a.sample_seconds, a.timeout)
                lr = long_run(cmd, a.long_seconds, a.skip_s)
            except Exception as exc:  # noqa: BLE001 - a failed command is a row with its reason
                row.update(status="failed", reason=str(exc))
                rows.append(row)
                print(f"{name} round {rnd}: failed: {exc}", file=sys.stderr)
                continue
            actual = lr["long_run_fps"]
            pct = lambda x: 100.0 * (x - actual) / actual  # noqa: E731
            row.update(status="ok", long_run_estimate=est["long_run_fps"], lo=est["lo"], hi=est["hi"],
                       sample_fps=est["sample_fps"], sample_images=est["images"], ratio=est.get("ratio"),
                       estimator=est["estimator"], **lr, estimate_error_pct=pct(est["long_run_fps"]),
                       sample_error_pct=pct(est["sample_fps"]),
                       drift_pct=100.0 * (lr["first_fps"] - actual) / actual,
                       in_interval=bool(est["lo"] is not None and est["lo"] <= actual <= est["hi"]))
            rows.append(row)
            if a.json:  # rows so far, in case the run is cut short
                a.json.write_text(json.dumps({"rows": rows, "partial": True}, indent=1, default=str))
            print(f"{name} round {rnd}: estimate {row['long_run_estimate']:.2f} (sample {row['sample_fps']:.2f}) "
                  f"vs long run {actual:.2f} images/s: {row['estimate_error_pct']:+.1f} %", file=sys.stderr)
    summary = []
    for name in names:
        ok = [r for r in rows if r["command"] == name and r["status"] == "ok"]
        mean = lambda k: sum(abs(r[k]) for r in ok) / len(ok) if ok else float("nan")  # noqa: E731
        summary.append({"command": name, "what": COMMANDS[name], "rounds_ok": len(ok),
                        "mae_estimate_pct": mean("estimate_error_pct"), "mae_sample_pct": mean("sample_error_pct"),
                        "mean_abs_drift_pct": mean("drift_pct"), "in_interval": sum(r["in_interval"] for r in ok),
                        "long_run_fps": sum(r["long_run_fps"] for r in ok) / len(ok) if ok else float("nan")})
    allok = [r for r in rows if r["status"] == "ok"]
    overall = sum(abs(r["estimate_error_pct"]) for r in allok) / len(allok) if allok else float("nan")
    print(f"\ncommand sample -> long run ({a.rounds} round(s), sample {a.sample_seconds:g} s, long run "
          f"{a.long_seconds:g} s, long-run fps after {a.skip_s:g} s)")
    print(f"{'command':<14}{'ok':>4}{'long fps':>10}{'|est err| %':>13}{'|sample err| %':>16}{'|drift| %':>11}"
          f"{'in interval':>13}")
    for s in summary:
        print(f"{s['command']:<14}{s['rounds_ok']:>4}{s['long_run_fps']:>10.2f}{s['mae_estimate_pct']:>13.2f}"
              f"{s['mae_sample_pct']:>16.2f}{s['mean_abs_drift_pct']:>11.2f}{s['in_interval']:>9}/{s['rounds_ok']}")
    print(f"mean absolute error of the long-run estimate over all rows: {overall:.2f} %")
    if a.json:
        a.json.write_text(json.dumps({"rounds": a.rounds, "long_seconds": a.long_seconds,
                                      "sample_seconds": a.sample_seconds, "skip_s": a.skip_s, "rows": rows,
                                      "summary": summary, "mae_estimate_pct": overall}, indent=1, default=str))
    return 0 if allok else 1


if __name__ == "__main__":
    raise SystemExit(main())
