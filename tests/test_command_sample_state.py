"""Issue 21's last three parts: the long-run ratio modelled from the sample's own state where the traces
carry a temperature / frequency that varies (a throttling board, written here as synthetic traces; the
sample's sensors a fake sysfs tree), the sample estimate beside a model's prediction from the same run, and
``predict -- CMD --save`` storing the sample as a training cell with per-image counts (a fake ``perf`` on
PATH printing perf stat's CSV interval format) or why there are none."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.data import read_dataset, records_from_readings, validate, wide_per_cell, write_dataset
from perfmodel.model.longrun import SampleState, choose_ratio, trace_ratios
from perfmodel.readings import Reading as R

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TRACE = str(REPO / "datasets" / "traces" / "squeezenet1_1")

LOOP = [PY, "-c", textwrap.dedent("""
    import time
    i = 0
    while True:
        time.sleep(0.02)
        print('image', i)
        i += 1
""")]

# -- a throttling board -----------------------------------------------------------------------------------

AMBIENT_MAX, TAU_S, THROTTLE_C = 85.0, 15.0, 70.0


def board_series(start_c: float, seconds: int = 40, seed: int = 0):
    """``[(temperature, freq_mhz, fps)]`` per 1-s interval of a board that heats towards 85 degC and lowers its
    clock above 70 degC (1500 MHz, down to 1000 at 80 degC); throughput follows the clock, with 1 % noise."""
    rng = np.random.default_rng(seed)
    out, temp = [], start_c
    for _ in range(seconds):
        freq = 1500.0 - 50.0 * min(10.0, max(0.0, temp - THROTTLE_C))
        out.append((temp, freq, 100.0 * freq / 1500.0 * (1 + rng.normal(0, 0.01))))
        temp += (AMBIENT_MAX - temp) / TAU_S
    return out


def board_trace(cell: str, start_c: float, seed: int, flat: bool = False) -> pd.DataFrame:
    parts = []
    for i, (temp, freq, fps) in enumerate(board_series(start_c, seed=seed)):
        readings = [R("images", round(fps), "count", "loop", "real"), R("cpu_percent", 100.0, "%", "rusage", "software"),
                    R("freq_mhz", 2600.0 if flat else freq, "MHz", "cpufreq", "real"),
                    R.missing("temperature_c", "no thermal zone", "degC") if flat else
                    R("temperature_c", temp, "degC", "thermal_zone0", "real")]
        if flat:
            readings[0] = R("images", round(90 * (1 + np.random.default_rng(seed * 100 + i).normal(0, 0.01))),
                            "count", "loop", "real")
        parts.append(records_from_readings(readings, run_id="r1", board="board", threads=1, repeat=0, cell_id=cell,
                                           framework="onnxruntime", network="squeezenet1_1",
                                           workload="onnxruntime/squeezenet1_1", phase="trace", t_start_s=float(i),
                                           t_end_s=float(i + 1)))
    return validate(pd.concat(parts, ignore_index=True))


START_TEMPS = (35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0)


def write_board_traces(root: Path, temps=START_TEMPS, flat: bool = False) -> Path:
    recs = pd.concat([board_trace(f"onnxruntime__squeezenet1_1__t1__r{k}__trace-perf", t, seed=k, flat=flat)
                      for k, t in enumerate(temps)], ignore_index=True)
    write_dataset(root, recs, {"board": "board"})
    return root


def true_ratio(start_c: float, window_s: float = 2.0, seed: int = 99) -> float:
    s = board_series(start_c, seed=seed)
    start = np.mean([f for i, (_, _, f) in enumerate(s) if i < window_s])
    return float(np.mean([f for i, (_, _, f) in enumerate(s) if i >= 10]) / start)


def hot_state(start_c: float) -> SampleState:
    return SampleState(start_temp_c=start_c, temp_rise_c_per_s=(AMBIENT_MAX - start_c) / TAU_S,
                       freq_mhz=1500.0 - 50.0 * min(10.0, max(0.0, start_c - THROTTLE_C)), cpu_percent=100.0)


# -- the state model ---------------------------------------------------------------------------------------

def test_trace_ratios_carry_the_start_state(tmp_path):
    t = trace_ratios(read_dataset(write_board_traces(tmp_path / "b")))
    row = t.sort_values("start_temp_c").iloc[0]
    assert row["start_temp_c"] == pytest.approx(35.0)
    assert row["temp_rise_c_per_s"] == pytest.approx((AMBIENT_MAX - 35) / TAU_S, rel=0.1)  # first two intervals
    assert row["freq_mhz"] == pytest.approx(1500.0) and row["cpu_percent"] == pytest.approx(100.0)
    flat = trace_ratios(read_dataset(write_board_traces(tmp_path / "f", flat=True)))
    assert flat["start_temp_c"].isna().all() and (flat["freq_mhz"] == 2600.0).all()


def test_state_model_predicts_a_hot_start_better_than_the_pooled_ratio(tmp_path):
    table = trace_ratios(read_dataset(write_board_traces(tmp_path / "b")))
    for start in (77.0, 82.0, 38.0):
        choice = choose_ratio(table, hot_state(start))
        assert choice.estimator == "state-model", choice.reason
        assert "leave-one-trace-out" in choice.reason
        truth = true_ratio(start)
        state_err, pooled_err = abs(choice.ratio(hot_state(start)) - truth), abs(choice.pooled.ratio - truth)
        assert state_err < pooled_err / 2, (start, truth, choice.ratio(hot_state(start)), choice.pooled.ratio)
    # a hot start is already throttled: its long run is near its start (ratio ~ 1), the pooled ratio well below
    hot = choose_ratio(table, hot_state(82.0))
    assert hot.ratio(hot_state(82.0)) > 0.95 and hot.pooled.ratio < 0.9
    fps, lo, hi = hot.predict(50.0, hot_state(82.0))
    assert lo < fps < hi and lo < 50.0 * true_ratio(82.0) < hi
    assert hot.state.cv_rmse < hot.state.pooled_cv_rmse
    json.dumps(hot.state.to_dict())


def test_flat_traces_fewer_traces_and_a_sample_without_sensors_fall_back_to_pooled(tmp_path):
    flat = trace_ratios(read_dataset(write_board_traces(tmp_path / "f", flat=True)))
    c = choose_ratio(flat, hot_state(77.0))
    assert c.estimator == "pooled" and "flat" in c.reason and c.state is None
    board = trace_ratios(read_dataset(write_board_traces(tmp_path / "b")))
    c = choose_ratio(board, SampleState(reasons={"start_temp_c": "no thermal zone", "freq_mhz": "no cpufreq"}))
    assert c.estimator == "pooled" and "no thermal zone" in c.reason
    c = choose_ratio(board.iloc[[0, 3, 6, 9]], hot_state(77.0))
    assert c.estimator == "pooled" and "only 4 trace(s)" in c.reason
    # a sample whose frequency lies far outside the traces' (a VM's nominal figure) is not extrapolated to
    c = choose_ratio(board, SampleState(freq_mhz=2600.0))
    assert c.estimator == "pooled" and "outside" in c.reason


# -- a command's sample on a fake board ---------------------------------------------------------------------

def fake_board(root: Path, temp_c: float, freq_khz: int) -> Path:
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{int(temp_c * 1000)}\n")
    pol = root / "sys/devices/system/cpu/cpufreq/policy0"
    pol.mkdir(parents=True)
    (pol / "scaling_cur_freq").write_text(f"{freq_khz}\n")
    (pol / "affected_cpus").write_text("0 1\n")
    return zone / "temp"


def test_command_sample_on_a_hot_board_uses_the_state_model(tmp_path):
    from perfmodel.workflows.command import command_sample_estimate

    traces = write_board_traces(tmp_path / "traces")
    start = 78.0
    temp_file = fake_board(tmp_path / "root", start, 1100000)
    stop = threading.Event()

    def heat():  # the board heats by 0.5 degC / s while the sample runs
        t0 = time.monotonic()
        while not stop.wait(0.05):
            temp_file.write_text(f"{int((start + 0.5 * (time.monotonic() - t0)) * 1000)}\n")

    th = threading.Thread(target=heat, daemon=True)
    th.start()
    try:
        est = command_sample_estimate(LOOP, images=20, traces=[traces], counters="software",
                                      sensor_root=tmp_path / "root")
    finally:
        stop.set()
        th.join()
    st = est["sample_state"]
    assert start <= st["start_temp_c"] < start + 2 and 0 < st["temp_rise_c_per_s"] < 2
    assert st["freq_mhz"] == pytest.approx(1100.0) and "thermal_zone0" in st["sources"]["start_temp_c"]
    assert est["ratio_estimator"] == "state-model", est["ratio_estimator_reason"]
    assert "state_model" in est and "predicted from the sample's state" in est["estimator"]
    pooled = choose_ratio(trace_ratios(read_dataset(traces), window_s=1.0), None).pooled.ratio
    assert abs(est["ratio"] - true_ratio(start, 1.0)) < abs(pooled - true_ratio(start, 1.0))


def test_command_sample_on_this_machine_says_pooled_and_why():
    from perfmodel.workflows.command import command_sample_estimate

    est = command_sample_estimate(LOOP, images=5, traces=[Path(TRACE)], counters="software")
    assert est["ratio_estimator"] == "pooled" and est["ratio_estimator_reason"]
    st = est["sample_state"]
    if not math.isfinite(st["start_temp_c"] if st["start_temp_c"] is not None else math.nan):
        assert st["reasons"]["start_temp_c"]  # no thermal zone here: NaN with the reason, never a number


# -- the CLI: beside a model, and --save -------------------------------------------------------------------

def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([PY, "-m", "perfmodel", *map(str, args)], capture_output=True, text=True, env=e,
                          timeout=timeout)


def cell_metas(ds: Path) -> list[dict]:
    from perfmodel.data import Dataset

    d = Dataset.open(ds)
    return [d.cell_meta(c) for c in sorted(read_dataset(ds)["cell_id"].unique())]


def nan(x) -> bool:
    """NaN, or JSON's null for it."""
    return x is None or math.isnan(x)


FINITE = [PY, "-c", "import time\nfor i in range(10):\n    time.sleep(0.03)\n    print(i)"]


def _one_term_model(path, feature, lo, hi, provenance):
    """A linear throughput model on one per-image count (fps = 5 + count x 10 / hi), saved to ``path``."""
    from perfmodel.model import fit_model, save_model

    rng = np.random.default_rng(0)
    df = pd.DataFrame({feature: rng.uniform(lo, hi, 20)})
    df["throughput_fps"] = 5.0 + df[feature] * 10 / hi + rng.normal(0, 0.01, 20)
    save_model(fit_model(df, "throughput_fps", [feature], kind="linear", select="fixed", provenance=provenance),
               path)
    return path


@pytest.fixture
def faults_model(tmp_path):
    """A model of throughput on minor faults per image: terms any measured command supplies."""
    return _one_term_model(tmp_path / "m.json", "minor_faults_per_image", 1e2, 1e4, "software")


def test_model_prediction_and_the_sample_estimate_from_one_run(tmp_path, faults_model):
    runs = tmp_path / "runs"
    cmd = [PY, "-c", f"open({str(runs)!r}, 'a').write('x')\n" + FINITE[2]]
    r = cli("predict", "--json", "-m", faults_model, "--counters", "software", "--images", "10",
            "--traces", TRACE, "--", *cmd)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"][0]["pred"] > 0  # the model's prediction, as before
    cs = out["command_sample"]
    for k in ("long_run_fps", "lo", "hi", "sample_fps", "images", "estimator", "reason"):
        assert k in cs
    assert cs["images"] == 10 and cs["estimator"].startswith("whole run of")
    assert runs.read_text() == "x"  # one run
    # its time per image includes start-up (s1 / N): no long-run estimate from it, the reason said
    assert nan(cs["long_run_fps"]) and nan(cs["sample_fps"]) and "--load-command" in cs["reason"]
    load = shlex.join([PY, "-c", "pass"])
    r = cli("predict", "--json", "-m", faults_model, "--counters", "software", "--images", "10",
            "--load-command", load, "--traces", TRACE, "--", *FINITE_ALLOC)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    cs = out["command_sample"]
    assert cs["ratio_estimator"] and cs["long_run_fps"] > 0
    assert cs["sample_fps"] == pytest.approx(out["rows"][0]["measured"])  # the same (s1 - s2) / N measurement
    assert cs["long_run_fps"] == pytest.approx(cs["sample_fps"] * cs["ratio"])
    r = cli("predict", "-m", faults_model, "--counters", "software", "--images", "10", "--load-command", load,
            "--traces", TRACE, "--", *FINITE_ALLOC)
    assert r.returncode == 0, r.stderr
    assert "predicted throughput_fps" in r.stdout and "long-run estimate:" in r.stdout
    assert "ratio: pooled" in r.stdout


# FINITE whose images touch fresh memory (page faults per image beyond a load-only run's: the faults model's term)
FINITE_ALLOC = [PY, "-c", "import time\nfor i in range(10):\n    time.sleep(0.03)\n    b = bytearray(8 << 20)\n"
                "    print(i)"]
# 1 s of start-up (a model load), then 20 images of 20 ms: 50 images/s once running
SLOW_START = [PY, "-c", "import time\ntime.sleep(1.0)\nfor i in range(20):\n    time.sleep(0.02)\n"
              "    b = bytearray(8 << 20)\n    print(i)"]
LOAD_ONLY = shlex.join([PY, "-c", "import time\ntime.sleep(1.0)"])


def test_model_path_never_takes_a_start_up_inclusive_time_for_throughput(tmp_path, faults_model):
    ds = tmp_path / "cells"
    r = cli("predict", "--json", "-m", faults_model, "--counters", "software", "--images", "20", "--save", ds,
            "--traces", TRACE, "--", *SLOW_START)
    assert r.returncode == 0, r.stderr
    cs = json.loads(r.stdout)["command_sample"]
    # wall time / N would be ~1.4 s / 20 = ~14 images/s (a long-run estimate ~4x low): refused, saying why
    assert nan(cs["long_run_fps"]) and "start-up" in cs["reason"] and "--load-command" in cs["reason"]
    recs = read_dataset(ds)
    lat = recs[recs["metric"] == "latency_ms"].iloc[0]
    assert math.isnan(lat["value"]) and "start-up" in lat["reason"]  # never saved as throughput_fps
    assert wide_per_cell(recs).frame["throughput_fps"].isna().all()
    (cell,) = cell_metas(ds)
    assert nan(cell["sample_fps"])
    # with the load-only command: (s1 - s2) / N, start-up excluded: ~50 images/s, not ~14
    r = cli("predict", "--json", "-m", faults_model, "--counters", "software", "--images", "20",
            "--load-command", LOAD_ONLY, "--traces", TRACE, "--", *SLOW_START)
    assert r.returncode == 0, r.stderr
    cs = json.loads(r.stdout)["command_sample"]
    assert 30 < cs["sample_fps"] < 80 and cs["long_run_fps"] > 0, cs


def test_a_run_timed_under_valgrind_gives_no_throughput(tmp_path, monkeypatch):
    import perfmodel.collect.command as cc
    from perfmodel.errors import PerfmodelError
    from perfmodel.workflows.command import command_estimate, command_sample, measure_command_sample

    def fake_measure(argv, images, load_argv=None, counters="auto", **kw):  # callgrind's run: 40x slower
        rec = validate(records_from_readings(
            {"latency_ms": R("latency_ms", 800.0, "ms", "time.monotonic s1/N", "real"),
             "instructions": R("instructions", 1e8, "count", "valgrind callgrind", "simulated")},
            run_id="r", cell_id="c", board="b", framework="", network="", threads=1, workload="command:x",
            phase="command", repeat=0))
        return rec, {"command": list(argv), "load_command": load_argv, "images": images, "repeats": 1,
                     "counters": "valgrind", "counters_used": "valgrind", "method": "(s1-s2)/N",
                     "wall_s": [[8.0, 0.0]], "geometry": "g", "note": "n"}

    monkeypatch.setattr(cc, "measure_command", fake_measure)
    cs = measure_command_sample(FINITE, images=10, counters="valgrind", framework=None, network=None,
                                threads=None, timeout=60, load_command=shlex.join([PY, "-c", "pass"]))
    est = command_estimate(cs, traces=[Path(TRACE)], save=tmp_path / "cells")
    assert math.isnan(est["long_run_fps"]) and "valgrind" in est["reason"]
    recs = read_dataset(tmp_path / "cells")
    assert wide_per_cell(recs).frame["throughput_fps"].isna().all()
    assert "valgrind" in recs[recs["metric"] == "latency_ms"]["reason"].iloc[0]
    # the two-phase method times the command: never under valgrind's simulator
    with pytest.raises(PerfmodelError, match="valgrind's simulator"):
        command_sample(FINITE, two_phase=True, load_command=shlex.join([PY, "-c", "pass"]), counters="valgrind")


FAKE_PERF = """#!{py}
# a fake perf: `perf stat -x, -o FILE [-I MS] -e EVENTS -- CMD` writing perf stat's CSV format (perf-stat(1),
# as tests/data/perf/sw_interval.txt): instructions at 1e7 per second of the command's run, the others
# <not supported>
import subprocess, sys, time
a = sys.argv[1:]
assert a[0] == "stat", a
out, events, cmd = a[a.index("-o") + 1], a[a.index("-e") + 1].split(","), a[a.index("--") + 1:]
iv = int(a[a.index("-I") + 1]) / 1000 if "-I" in a else None
p = subprocess.Popen(cmd)
t0 = prev = time.monotonic()
with open(out, "w") as fh:
    fh.write("# started on Mon Jan  1 00:00:00 2024\\n\\n")
    def rows(stamp, dt):
        for e in events:
            v = f"{{int(1e7 * dt)}},," if e == "instructions" else "<not supported>,,"
            fh.write((f"{{stamp:.9f}}," if stamp is not None else "") + v + f"{{e}},100000,100.00,,\\n")
        fh.flush()
    while p.poll() is None:
        time.sleep(iv or 0.01)
        now = time.monotonic()
        if iv:
            rows(now - t0, now - prev)
            prev = now
    if not iv:
        rows(None, time.monotonic() - t0)
sys.exit(p.returncode)
"""


def test_save_with_perf_counts_per_image(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    perf = bin_dir / "perf"
    perf.write_text(FAKE_PERF.format(py=PY))
    perf.chmod(0o755)
    ds = tmp_path / "cells"
    r = cli("predict", "--json", "--counters", "perf", "--images", "20", "--framework", "myfw", "--threads", "2",
            "--save", ds, "--traces", TRACE, "--", *LOOP, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["counters"]["counters_used"] == "perf" and out["saved"]["path"] == str(ds)
    wide = wide_per_cell(read_dataset(ds)).frame
    assert len(wide) == 1 and wide["counter_source"].iloc[0] == "perf"
    row = wide.iloc[0]
    assert row["framework"] == "myfw" and int(row["threads"]) == 2
    # 1e7 instructions per second of the sample's window / its images = 1e7 / its throughput
    assert row["instructions_per_image"] == pytest.approx(1e7 / out["sample_fps"], rel=0.15)
    assert row["throughput_fps"] == pytest.approx(out["sample_fps"])
    recs = read_dataset(ds)
    cyc = recs[recs["metric"] == "cycles"].iloc[0]
    assert math.isnan(cyc["value"]) and "not supported" in cyc["reason"]  # never invented
    cell = cell_metas(ds)[0]
    assert cell["command"] == LOOP and len(cell["per_image_s"]) == 20 and cell["long_run_fps"] > 0


def test_save_without_a_pmu_says_why_and_beside_a_model(tmp_path, faults_model):
    ds = tmp_path / "cells"
    r = cli("predict", "--json", "--counters", "software", "--images", "5", "--save", ds, "--traces", TRACE, "--",
            *LOOP)
    assert r.returncode == 0, r.stderr
    recs = read_dataset(ds)
    ins = recs[recs["metric"] == "instructions"].iloc[0]
    assert math.isnan(ins["value"]) and "not counted" in ins["reason"]
    (cell,) = cell_metas(ds)
    assert "not counted" in cell["counts_missing"] and cell["sample_fps"] > 0
    # the model path stores its one run as a second cell of the same data set
    r = cli("predict", "-m", faults_model, "--counters", "software", "--images", "10", "--save", ds,
            "--traces", TRACE, "--", *FINITE)
    assert r.returncode == 0, r.stderr
    assert "saved: cell" in r.stdout
    wide = wide_per_cell(read_dataset(ds)).frame.set_index("workload")
    # the line sample's throughput is stored; the model's whole run (start-up included) stores none
    assert len(wide) == 2 and wide["throughput_fps"].notna().sum() == 1
    # the model's run: its software counts per image; the line sample: its CPU time per image
    assert wide["minor_faults_per_image"].notna().sum() == 1 and wide["task_clock_ms_per_image"].notna().all()
    # --save is refused where nothing is measured, and into a folder that is not a data set
    r = cli("predict", "-m", faults_model, "--csv", tmp_path / "x.csv", "--save", ds)
    assert r.returncode == 2 and "--save applies to a measured command" in r.stderr
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "f.txt").write_text("x")
    r = cli("predict", "--save", junk, "--traces", TRACE, "--", *LOOP)
    assert r.returncode == 2 and "not a perfmodel data set" in r.stderr


def test_trace_of_a_command_records_the_boards_temperature_and_frequency(tmp_path):
    from perfmodel.collect.lines import trace_command

    fake_board(tmp_path / "root", 61.5, 1200000)
    df, meta = trace_command(LOOP, 1.5, 0.25, out=tmp_path / "ds", sensor_root=tmp_path / "root")
    temps = df[df["metric"] == "temperature_c"]
    assert len(temps) == meta["intervals"] and (temps["value"] == 61.5).all()
    t = trace_ratios(read_dataset(tmp_path / "ds"), window_s=0.5, skip_s=1.0)
    assert t["start_temp_c"].iloc[0] == 61.5 and t["freq_mhz"].iloc[0] == pytest.approx(1200.0)
    # this VM: no thermal zone, so NaN with the reason, never a number
    df, _ = trace_command(LOOP, 0.5, 0.25)
    here = df[df["metric"] == "temperature_c"]
    assert here["value"].isna().all() or here["source"].str.contains("thermal|hwmon|vcgencmd").all()


def test_sample_only_fallback_with_counters_valgrind_times_with_software_counters(tmp_path):
    """A model of real (PMU) counts refused with --counters valgrind: the sample estimate and the one-line
    refusal, the sample timed with software counters (said), never an error."""
    from typer.testing import CliRunner

    from perfmodel.cli.app import app

    model = _one_term_model(tmp_path / "real.json", "instructions_per_image", 1e8, 1e9, "real")
    r = CliRunner().invoke(app, ["predict", "-m", str(model), "--counters", "valgrind", "--images", "5",
                                 "--traces", TRACE, "--", *LOOP])
    assert r.exit_code == 0, r.output
    assert "long-run estimate:" in r.output and "model: not applied:" in r.output
    assert "real (PMU) counts" in r.output and "timed with software counters" in r.output
    r = CliRunner().invoke(app, ["predict", "--json", "-m", str(model), "--counters", "valgrind", "--images", "5",
                                 "--traces", TRACE, "--", *LOOP])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["counters"]["counters_used"] == "software" and out["long_run_fps"] > 0
    assert out["model"]["applied"] is False and "software counters" in out["model"]["reason"]


def test_state_model_is_chosen_validated_and_fitted_on_one_row_set(tmp_path):
    """10 board traces, 6 of them carrying a CPU % that varies: the term choice, its nested leave-one-trace-out
    error, the pooled error it is compared with and the fit are all over the same traces, and the reason says
    how many."""
    from perfmodel.model.longrun import _loo_rmse, _nested_loo_rmse

    table = trace_ratios(read_dataset(write_board_traces(tmp_path / "b"))).sort_values("start_temp_c")
    table = table.reset_index(drop=True)
    table["cpu_percent"] = [90.0, 95.0, 99.0, 92.0, 97.0, 94.0] + [np.nan] * 4  # the 6 coldest carry it
    choice = choose_ratio(table, hot_state(38.0))
    assert choice.estimator == "state-model", choice.reason
    st = choice.state
    rows = pd.DataFrame(st.traces)
    assert st.n == len(rows) == 10 and "over the same 10 traces" in choice.reason
    assert "cpu_percent" not in st.candidates  # carried by 6 of 10: the row set of 10 without it
    X, y = rows[st.candidates].to_numpy(dtype="float64"), np.log(rows["ratio"].to_numpy(dtype="float64"))
    subsets = [[st.candidates.index(f) for f in c] for c in st.subsets]
    assert st.cv_rmse == pytest.approx(_nested_loo_rmse(X, y, subsets))
    assert st.pooled_cv_rmse == pytest.approx(_loo_rmse(None, y))
    # all 10 carry it: the larger set over the same 10
    table["cpu_percent"] = [90.0, 95.0, 99.0, 92.0, 97.0, 94.0, 91.0, 96.0, 93.0, 98.0]
    st = choose_ratio(table, hot_state(38.0)).state
    assert st.n == 10 and "cpu_percent" in st.candidates
    # a board feature on 6 traces only: everything over those 6, said
    part = table.copy()
    part.loc[6:, ["start_temp_c", "temp_rise_c_per_s", "freq_mhz"]] = np.nan
    c = choose_ratio(part, hot_state(38.0))
    assert c.state.n == 6 and "over the same 6 of 10 traces" in c.reason, c.reason


def perf_intervals(stamps_counts: list[tuple[float, str, str]]) -> str:
    """perf stat -x, -I output: one row per (stamp, instructions field, cycles field)."""
    out = ["# started on Mon Jan  1 00:00:00 2024", ""]
    for t, ins, cyc in stamps_counts:
        out.append(f"{t:.9f},{ins},,instructions,100000,100.00,,")
        out.append(f"{t:.9f},{cyc},,cycles,100000,100.00,,")
    return "\n".join(out) + "\n"


def test_perf_window_counts_never_undercount():
    from perfmodel.collect.command import _window_counts

    full = perf_intervals([(0.1, "1000", "2000"), (0.2, "1000", "2000"), (0.3, "1000", "2000")])
    out, why = _window_counts(full, 0.05, 0.25)
    assert not why and out["instructions"].value == pytest.approx(2000.0)  # 0.5 + 1 + 0.5 intervals
    # the intervals end before the window does: the window's end was never counted
    out, _ = _window_counts(full, 0.05, 0.45)
    for e in ("instructions", "cycles"):
        assert math.isnan(out[e].value) and "before the sample's end" in out[e].reason
    # an interval in the middle not counted: that event is missing, the other counted
    gap = perf_intervals([(0.1, "1000", "2000"), (0.2, "<not counted>", "2000"), (0.3, "1000", "2000")])
    out, _ = _window_counts(gap, 0.05, 0.25)
    assert math.isnan(out["instructions"].value) and "not counted" in out["instructions"].reason
    assert "1 of the 3 intervals" in out["instructions"].reason
    assert out["cycles"].value == pytest.approx(4000.0) and out["cycles"].provenance == "real"
    # never counted at all: the machine's own status
    out, _ = _window_counts(perf_intervals([(0.1, "<not supported>", "1"), (0.2, "<not supported>", "1")]), 0, 0.2)
    assert math.isnan(out["instructions"].value) and "not supported" in out["instructions"].reason


@pytest.mark.parametrize("own", ["C.UTF-8", None])
def test_perf_line_sample_runs_perf_under_lc_all_c_and_the_command_under_its_own(tmp_path, monkeypatch, own):
    from perfmodel.collect.command import sample_command_counted

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    perf = bin_dir / "perf"
    perf.write_text(FAKE_PERF.format(py=PY).replace(
        "import subprocess, sys, time",
        "import os, subprocess, sys, time\nopen(os.environ['PERF_SAW'], 'w').write(str(os.environ.get('LC_ALL')))"))
    perf.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("PERF_SAW", str(tmp_path / "perf_saw"))
    if own is None:
        monkeypatch.delenv("LC_ALL", raising=False)
    else:
        monkeypatch.setenv("LC_ALL", own)
    saw = tmp_path / "cmd_saw"
    cmd = [PY, "-c", f"import os\nopen({str(saw)!r}, 'w').write(str(os.environ.get('LC_ALL')))\n" + LOOP[2]]
    smp, readings, how = sample_command_counted(cmd, counters="perf", images=5)
    assert how["counters_used"] == "perf" and smp.images == 5
    assert (tmp_path / "perf_saw").read_text() == "C"  # perf's -x, output is parsed in the C locale
    assert saw.read_text() == str(own)  # the command keeps its own locale (unset stays unset)
    assert readings["instructions"].available


def test_traces_from_counts_the_traces_the_ratio_used(tmp_path):
    from perfmodel.workflows.quick import long_run_from_sample

    recs = pd.concat([board_trace(f"onnxruntime__squeezenet1_1__t1__r{k}__trace-perf", t, seed=k)
                      for k, t in enumerate(START_TEMPS)], ignore_index=True)
    # 4 of the 10 traces carry no temperature or frequency: the state model uses the other 6
    gone = recs["cell_id"].str.contains(r"__r[6-9]__") & recs["metric"].isin(["temperature_c", "freq_mhz"])
    recs.loc[gone, "value"], recs.loc[gone, "reason"], recs.loc[gone, "provenance"] = np.nan, "no sensor", "none"
    write_dataset(tmp_path / "t", validate(recs), {"board": "board"})
    lr = long_run_from_sample(50.0, "onnxruntime", 1, [tmp_path / "t"], state=hot_state(38.0))
    assert lr["ratio_estimator"] == "state-model", lr["ratio_estimator_reason"]
    assert lr["n_traces"] == 6 and lr["traces_from"].startswith("6 trace(s) (of 10) of onnxruntime")
    lr = long_run_from_sample(50.0, "onnxruntime", 1, [tmp_path / "t"], state=None)  # pooled: all 10
    assert lr["n_traces"] == 10 and lr["traces_from"].startswith("10 trace(s) of onnxruntime")
