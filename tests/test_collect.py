"""The collection stage: campaigns in fresh workers, crash safety and resume, traces, whole commands."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from perfmodel.collect import CampaignSpec, measure_command, parse_duration, parse_geometry, run_campaign
from perfmodel.collect.spec import spec_differences
from perfmodel.data import Dataset, read_dataset, wide_per_cell, wide_per_sample
from perfmodel.errors import PerfmodelError

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ["tensorflow", "litert", "onnxruntime", "opencv"]


def _spec(**kw) -> CampaignSpec:
    base = dict(networks=["squeezenet1_1"], threads=[1], images=3, warmup_images=1, warmup_min_s=0.0)
    base.update(kw)
    return CampaignSpec(**base)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "perfmodel", *args], capture_output=True, text=True, cwd=REPO,
                          env=e, timeout=600)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, squeezenet_exports):
    out = tmp_path_factory.mktemp("campaign") / "ds"
    result = run_campaign(_spec(frameworks=FRAMEWORKS), out, progress=False)
    return out, result


# ------------------------------------------------------------------------------------------------ spec


def test_spec_cells_timing_and_valgrind_pass():
    s = _spec(frameworks=["litert", "onnxruntime"], threads=[1, 2], repeats=2, simulate=True).validate()
    cells = s.cells()
    timing = [c for c in cells if c.counter_source == "auto"]
    sim = [c for c in cells if c.counter_source == "valgrind"]
    assert len(timing) == 2 * 2 * 2 and len(sim) == 2
    assert all(c.threads == 1 and c.repeat == 0 for c in sim)
    assert len({c.cell_id for c in cells}) == len(cells)
    only = _spec(frameworks=["litert"], counters="valgrind").validate().cells()
    assert [c.counter_source for c in only] == ["valgrind"]


def test_parse_duration_and_geometry():
    assert parse_duration("6m") == 360 and parse_duration("90s") == 90 and parse_duration("2") == 2
    assert parse_duration("1.5h") == 5400
    for bad in ("5x", "", "-3", "0", "m"):
        with pytest.raises(PerfmodelError):
            parse_duration(bad)
    g = parse_geometry("LL=1M,16,64;L1=16K,4,64")
    assert g == {"I1": "16384,4,64", "D1": "16384,4,64", "LL": "1048576,16,64"}
    with pytest.raises(PerfmodelError):
        parse_geometry("LL=1000,3,64")  # sets not a power of two
    with pytest.raises(PerfmodelError):
        parse_geometry("L9=32K,4,64")


def test_spec_differences_only_measurement_fields():
    a = _spec(frameworks=["litert"]).to_dict()
    b = _spec(frameworks=["opencv"], threads=[1, 2]).to_dict()
    assert spec_differences(a, b) == []
    c = _spec(images=7).to_dict()
    assert any(d.startswith("images") for d in spec_differences(a, c))


# ----------------------------------------------------------------------------------------- campaign


def test_campaign_all_frameworks(campaign):
    out, result = campaign
    assert result.ok and len(result.done) == 4, result.to_dict()
    df = read_dataset(out)  # validates
    img = df[df.phase == "image"]
    assert sorted(img.framework.unique()) == sorted(FRAMEWORKS)
    assert img.groupby("cell_id").image_index.nunique().eq(3).all()
    wide = wide_per_cell(df).frame
    assert sorted(wide.framework) == sorted(FRAMEWORKS)
    assert (wide.throughput_fps > 0).all() and (wide.n_images == 3).all()
    # throughput is 1000 / mean latency, latency = read + preprocess + inference
    assert wide.throughput_fps.values == pytest.approx(1000 / wide.latency_ms.values)
    per = df[df.phase == "image"].pivot_table(index=["cell_id", "image_index"], columns="metric", values="value")
    assert per.latency_ms.values == pytest.approx((per.read_ms + per.preprocess_ms + per.inference_ms).values,
                                                  rel=1e-6, abs=1e-6)


def test_campaign_records_missing_events_and_sensors_with_reasons(campaign):
    out, _ = campaign
    df = read_dataset(out)
    for metric in ("instructions", "l1d_accesses", "l2d_accesses", "branches", "temperature_c", "power_w",
                   "freq_mhz", "cpu_percent"):
        rows = df[df.metric == metric]
        assert len(rows), f"{metric} was dropped"
        nan = rows[rows.value.isna()]
        assert (nan.reason != "").all() and (nan.provenance == "none").all()
    cpu = df[(df.metric == "cpu_percent") & (df.phase == "cell")]
    assert len(cpu) == 4 and (cpu.value > 0).all()
    # times are on one monotonic clock and images are in order
    img = df[(df.phase == "image") & (df.metric == "latency_ms")].sort_values(["cell_id", "image_index"])
    for _, g in img.groupby("cell_id"):
        assert (g.t_end_s.values >= g.t_start_s.values).all()
        assert (g.t_start_s.diff().dropna() > 0).all()


def test_campaign_metadata(campaign):
    out, _ = campaign
    ds = Dataset.open(out)
    meta = ds.metadata
    for key in ("board", "cpu_model", "versions", "counter_source", "cache_geometry", "tool_version", "system"):
        assert key in meta, key
    assert meta["counter_source"] == "auto"
    assert ds.campaign["images"] == 3
    # the machine calibration measured before the timing cells, at the spec's thread counts
    cal = meta["calibration"]
    assert set(cal["stream_gbps"]) == {str(t) for t in ds.campaign["threads"]} and not cal["errors"]
    assert all(v > 0 for v in cal["stream_gbps"].values()) and all(v > 0 for v in cal["gemm_gflops"].values())
    from perfmodel.data import dataset_calibrations

    assert dataset_calibrations(out) == [cal]
    cell = ds.cell_meta("onnxruntime__squeezenet1_1__t1__r0__auto")
    assert cell["counted_images"] == 3 and cell["status"] == "done"
    assert cell["counters"]["source"] == "auto" and "runner" in cell
    assert cell["worker"]["pid"] > 0


def test_rerun_skips_done_cells(campaign):
    out, _ = campaign
    again = run_campaign(_spec(frameworks=FRAMEWORKS), out, progress=False)
    assert len(again.skipped) == 4 and not again.done
    # nothing left to time: no calibration measured for that run, and the run, which wrote nothing, is not
    # recorded at all (the first run's calibration stays)
    info = Dataset.open(out).info
    assert len(info["runs"]) == 1 and info["runs"][0]["metadata"]["run_id"] == info["metadata"]["run_id"]
    assert "calibration" in info["metadata"]


def test_incompatible_rerun_refused(campaign, tmp_path):
    out, _ = campaign
    before = sorted(p.name for p in (out / "records").iterdir())
    with pytest.raises(PerfmodelError, match="different campaign spec"):
        run_campaign(_spec(frameworks=["onnxruntime"], images=5), out, progress=False)
    with pytest.raises(PerfmodelError, match="already exists"):
        run_campaign(_spec(frameworks=["onnxruntime"]), out, resume=False, progress=False)
    assert sorted(p.name for p in (out / "records").iterdir()) == before
    # a data set from "another machine" is refused too
    info = json.loads((out / "dataset.json").read_text())
    copy = tmp_path / "other"
    import shutil

    shutil.copytree(out, copy)
    info["metadata"]["board"] = "Raspberry Pi 3 Model B Rev 1.2"
    (copy / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(PerfmodelError, match="board"):
        run_campaign(_spec(frameworks=["onnxruntime"]), copy, progress=False)


def test_killed_worker_keeps_finished_cells_and_resume_completes(tmp_path, monkeypatch, squeezenet_exports):
    out = tmp_path / "ds"
    spec = _spec(frameworks=["litert", "onnxruntime", "opencv"])
    victim = "onnxruntime__squeezenet1_1__t1__r0__auto"
    monkeypatch.setenv("PERFMODEL_TEST_CRASH_CELL", victim)
    first = run_campaign(spec, out, progress=False)
    assert first.failed == [victim]
    assert sorted(first.done) == ["litert__squeezenet1_1__t1__r0__auto", "opencv__squeezenet1_1__t1__r0__auto"]
    ds = Dataset.open(out)
    assert ds.cells()[victim]["status"] == "failed"
    assert "signal 9" in ds.cells()[victim]["reason"]
    assert not ds.is_done(victim)
    done_files = {c: (out / "records" / f"{c}.parquet").stat().st_mtime_ns for c in first.done}
    monkeypatch.delenv("PERFMODEL_TEST_CRASH_CELL")
    second = run_campaign(spec, out, progress=False)
    assert second.done == [victim] and sorted(second.skipped) == sorted(first.done)
    assert {c: (out / "records" / f"{c}.parquet").stat().st_mtime_ns for c in first.done} == done_files
    assert sorted(wide_per_cell(read_dataset(out)).frame.framework) == ["litert", "onnxruntime", "opencv"]


# ------------------------------------------------------------------------------------------ trace, command


def test_trace_short(tmp_path, squeezenet_exports):
    from perfmodel.collect import run_trace

    res = run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=5, period_s=0.5, out=tmp_path / "tr", images=4,
                    progress=False)
    df = res.records
    assert set(df.phase) == {"trace"}
    wide = wide_per_sample(read_dataset(tmp_path / "tr")).frame
    assert 6 <= len(wide) <= 11
    assert (wide.images >= 1).all() and (wide.throughput_fps > 0).all()
    assert wide.throughput_fps.values == pytest.approx((wide.images / wide.dt_s).values)
    assert wide.dt_s.sum() == pytest.approx(5, abs=1.0)
    assert "cpu_percent" in wide and "temperature_c" in wide
    again = run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=5, period_s=0.5, out=tmp_path / "tr",
                      images=4, progress=False)
    assert again.skipped


def _script(tmp_path: Path) -> Path:
    p = tmp_path / "work.py"
    p.write_text("import sys\nn = int(sys.argv[1])\nif len(sys.argv) < 3:\n"
                 "    for i in range(n):\n        sum(range(300000))\n")
    return p


@pytest.mark.parametrize("counters", ["auto", "software"])
def test_measure_command_two_phase(tmp_path, counters):
    script = _script(tmp_path)
    df, meta = measure_command([sys.executable, str(script), "8"], 8, [sys.executable, str(script), "8", "load"],
                               counters=counters, repeats=2)
    assert meta["repeats"] == 2 and meta["note"].startswith("per image = (s1 - s2) / N")
    assert set(df.phase) == {"command"} and (df.image_index == -1).all()
    v = df.set_index("metric")
    assert v.loc["latency_ms", "value"] > 0 and v.loc["task_clock_ms", "value"] > 0
    assert "(s1-s2)/N" in v.loc["task_clock_ms", "source"]
    assert "instructions" in v.index  # not countable here -> NaN with reason, or counted on a real PMU
    row = v.loc["instructions"]
    assert (not math.isnan(row.value)) or row.reason
    wide = wide_per_cell(df).frame
    assert wide.throughput_fps.iloc[0] == pytest.approx(1000 / v.loc["latency_ms", "value"])


def test_measure_command_without_load_notes_it(tmp_path):
    script = _script(tmp_path)
    df, meta = measure_command([sys.executable, str(script), "2"], 2, counters="software")
    assert "includes" in meta["note"]
    assert "s1/N" in df.set_index("metric").loc["latency_ms", "source"]
    with pytest.raises(PerfmodelError):
        measure_command([sys.executable, str(script), "2"], 0)
    with pytest.raises(PerfmodelError, match="exited with code"):
        measure_command([sys.executable, "-c", "raise SystemExit(3)"], 1, counters="software")


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize("args, message", [
    (["collect", "-o", "{tmp}/a", "--networks", "nope"], "unknown network"),
    (["collect", "-o", "{tmp}/b", "--frameworks", "caffe"], "unknown framework"),
    (["collect", "-o", "{tmp}/c", "--image-folder", "{tmp}/missing"], "does not exist"),
    (["collect", "-o", "{tmp}/d", "--threads", "1,x"], "--threads"),
    (["collect", "-o", "{tmp}/e", "--geometry", "LL=7,3,5"], "cache"),
    (["trace", "--duration", "5x"], "bad duration"),
    (["trace", "--network", "nope", "--duration", "1s"], "unknown network"),
])
def test_cli_bad_input(tmp_path, args, message):
    proc = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_command_mode_json(tmp_path):
    script = _script(tmp_path)
    cmd = f"{sys.executable} {script} 4"
    proc = _cli("collect", "-o", str(tmp_path / "ds"), "--command", cmd, "--load-command", cmd + " load",
                "--images", "4", "--counters", "software", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "done" and summary["per_image"]["latency_ms"] > 0
    df = read_dataset(tmp_path / "ds")
    assert set(df.phase) == {"command"}
    again = _cli("collect", "-o", str(tmp_path / "ds"), "--command", cmd, "--load-command", cmd + " load",
                 "--images", "4", "--counters", "software", "--json")
    assert json.loads(again.stdout)["status"] == "skipped"


def test_quick_sample(squeezenet_exports):
    from perfmodel.collect import quick_sample

    df = quick_sample("litert", "squeezenet1_1", threads=1, images=2)
    assert set(df.phase) == {"image", "cell"}
    assert df[df.phase == "image"].image_index.nunique() == 2
    with pytest.raises(PerfmodelError):
        quick_sample("litert", "squeezenet1_1", images=50)


def test_quick_sample_by_seconds(squeezenet_exports):
    """A sample of a few seconds counts images until that long has passed since the counting started."""
    from perfmodel.collect import quick_sample

    cell_meta: dict = {}
    df = quick_sample("litert", "squeezenet1_1", threads=1, seconds=0.4, cell_meta=cell_meta)
    images = df[(df.phase == "image") & (df.metric == "latency_ms")]
    cell = df[df.phase == "cell"]
    n = images.image_index.nunique()
    assert n == len(images) and n >= 2  # SqueezeNet v1.1 takes well under 0.2 s per image
    assert images.t_end_s.max() - cell.t_start_s.min() >= 0.4
    # the last image is the first to end past the time: without it the sample is shorter than asked
    assert images.t_end_s.sort_values().iloc[-2] - cell.t_start_s.min() < 0.4
    (meta,) = cell_meta.values()
    assert meta["images"]["counted"] == meta["counted_images"] == n
    for bad in (0, -1, 10.5, "soon"):
        with pytest.raises(PerfmodelError, match="seconds"):
            quick_sample("litert", "squeezenet1_1", seconds=bad)


@pytest.mark.slow
def test_valgrind_cell(tmp_path, squeezenet_exports):
    from perfmodel.counters.valgrind import valgrind_available

    ok, why = valgrind_available()
    if not ok:
        pytest.skip(why)
    out = tmp_path / "vg"
    res = run_campaign(_spec(frameworks=["onnxruntime"], counters="valgrind", valgrind_images=2), out,
                       progress=False)
    assert res.ok and res.done == ["onnxruntime__squeezenet1_1__t1__r0__valgrind"], res.to_dict()
    df = read_dataset(out)
    ins = df[df.metric == "instructions"]
    assert len(ins) == 2 and (ins.provenance == "simulated").all() and (ins.value > 1e6).all()
    meta = Dataset.open(out).cell_meta(res.done[0])
    assert meta["simulated_images"] == 2 and "LL 512K" in meta["geometry"]
    wide = wide_per_cell(df).frame
    assert wide.l1d_accesses_per_image.iloc[0] > 0 and wide.branches_per_image.iloc[0] > 0


# ------------------------------------------------------------------------------------------- power log


def test_campaign_with_an_external_power_log(tmp_path, squeezenet_exports):
    """A power-analyzer log (here a constant 2.5 W written on a clock 1000 s ahead of ours) gives the
    cell's power, marked external; the offset aligns the two clocks."""
    import time

    now = time.monotonic()
    log = tmp_path / "analyzer.csv"
    rows = [f"{now + 1000 - 5 + 0.01 * i:.3f},2.5" for i in range(0, 120_000, 5)]  # 20 min at 50 ms
    log.write_text("time_s,power_w\n" + "\n".join(rows) + "\n")
    out = tmp_path / "ds"
    run_campaign(_spec(frameworks=["onnxruntime"], images=2, power_log=str(log), power_log_offset_s=1000.0),
                 out, progress=False)
    table = wide_per_cell(read_dataset(out))
    cells = table.frame
    power = cells["power_w_cell"] if "power_w_cell" in cells.columns else cells["power_w"]
    assert power.iloc[0] == pytest.approx(2.5)
    assert "external" in table.provenance.get(power.name)
    # without the offset the log does not cover the run: NaN with a reason, never a guess
    out2 = tmp_path / "ds2"
    run_campaign(_spec(frameworks=["onnxruntime"], images=2, power_log=str(log)), out2, progress=False)
    long = read_dataset(out2)
    p = long[long["metric"] == "power_w"]
    assert p["value"].isna().all() and (p["reason"].str.len() > 0).all()


def test_missing_power_log_is_a_clear_error(tmp_path):
    res = _cli("collect", "-o", str(tmp_path / "x"), "--power-log", str(tmp_path / "nope.csv"))
    assert res.returncode == 2 and "power log" in res.stderr


# ------------------------------------------------------------------------------------- review findings


def test_cli_refuses_a_malformed_power_log_and_a_non_finite_offset(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    for args in (["collect", "-o", str(tmp_path / "pl1"), "--frameworks", "onnxruntime", "--power-log", str(bad)],
                 ["trace", "-d", "1s", "--power-log", str(bad)]):
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and "no power log header" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "pl1").exists()
    for args in (["collect", "-o", str(tmp_path / "pl2"), "--frameworks", "onnxruntime", "--power-log-offset", "nan"],
                 ["trace", "-d", "1s", "--power-log-offset", "inf"]):
        proc = _cli(*args)
        assert proc.returncode == 2 and "power-log offset" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_command_mode_refuses_campaign_options(tmp_path):
    proc = _cli("collect", "-o", str(tmp_path / "c"), "--command", "true", "--power-log", "/nonexist",
                "--frameworks", "foo", "--threads", "x")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    for opt in ("--power-log", "--frameworks", "--threads"):
        assert opt in proc.stderr
    assert not (tmp_path / "c").exists()
    proc = _cli("collect", "-o", str(tmp_path / "c"), "--command", "true", "--geometry", "LL=512K,16,64")
    assert proc.returncode == 2 and "--geometry" in proc.stderr and "valgrind" in proc.stderr


def test_power_log_help_says_what_each_command_records():
    """collect writes power on the per-cell record only (the window of the counted images); trace per interval."""
    import typer

    from perfmodel.cli.app import app

    group = typer.main.get_command(app)

    def power_log_help(command: str) -> str:
        return next(p.help for p in group.commands[command].params if p.name == "power_log")

    collect_help, trace_help = power_log_help("collect"), power_log_help("trace")
    assert "image/interval" not in collect_help and "per image" not in collect_help
    assert "per-cell record" in collect_help and "per-image records carry no power" in collect_help
    assert "each interval" in trace_help and "cell" not in trace_help


def test_repeated_values_measure_each_cell_once(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from perfmodel.cli.app import app

    class Stop(Exception):
        pass

    seen = {}

    def fake_campaign(spec, out, **kw):
        seen["spec"] = spec
        raise Stop

    monkeypatch.setenv("PERFMODEL_LOG", str(tmp_path / "log"))  # collect sets it for its process
    monkeypatch.setattr("perfmodel.collect.campaign.run_campaign", fake_campaign)
    r = CliRunner().invoke(app, ["collect", "-o", str(tmp_path / "c"), "--frameworks", "onnxruntime,onnxruntime",
                                 "--frameworks", "litert", "--threads", "1,01,2", "--threads", "1"])
    assert isinstance(r.exception, Stop), r.output
    assert seen["spec"].frameworks == ["onnxruntime", "litert"] and seen["spec"].threads == [1, 2]
    assert "repeated --frameworks value(s) ignored: onnxruntime" in r.stderr
    assert "repeated --threads value(s) ignored: 1" in r.stderr
    spec = _spec(frameworks=["onnxruntime", "onnxruntime"], threads=[1, 1]).validate()
    assert spec.frameworks == ["onnxruntime"] and spec.threads == [1]
    assert [c.cell_id for c in spec.cells()] == ["onnxruntime__squeezenet1_1__t1__r0__auto"]
    raw = CampaignSpec(frameworks=["onnxruntime", "onnxruntime"], networks=["squeezenet1_1"], threads=[1, 1])
    assert len(raw.cells()) == 1  # even without validate()


def test_short_cell_gets_the_sensor_readings_that_exist(tmp_path, squeezenet_exports):
    """3 images last ~20 ms, less than the sampler period: frequency is read all the same when the machine
    has a frequency source, and a sensor the machine lacks gives its own reason, not the window's timing."""
    from perfmodel.sensors import read_sensors

    out = tmp_path / "c1"
    run_campaign(_spec(frameworks=["onnxruntime"], images=3), out, progress=False, calibrate=False)
    long = read_dataset(out)
    cell = long[long.phase == "cell"].set_index("metric")
    here = read_sensors()
    for m in ("freq_mhz", "temperature_c"):
        r = cell.loc[m]
        assert (not math.isnan(r.value)) == here[m].available, (m, r.value, r.reason, here[m])
        if math.isnan(r.value):
            assert "no sensor sample" not in r.reason
            if not here[m].available:
                assert r.reason.split(" (")[0] == here[m].reason.split(" (")[0]


def test_trace_resume_with_another_spec_is_refused_and_leaves_the_campaign(tmp_path, squeezenet_exports):
    from perfmodel.collect import run_trace

    out = tmp_path / "t1"
    run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=1, period_s=0.5, out=out, images=2, progress=False)
    before = json.loads((out / "dataset.json").read_text())
    with pytest.raises(PerfmodelError) as exc:
        run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=360, period_s=2, out=out, images=7,
                  progress=False)
    msg = str(exc.value)
    assert "different" in msg and "period_s" in msg and "duration_s" in msg and "images" in msg
    assert "--force" in msg
    same = run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=1, period_s=0.5, out=out, images=2,
                     progress=False)
    assert same.skipped
    after = json.loads((out / "dataset.json").read_text())
    assert after["campaign"] == before["campaign"] and len(after["runs"]) == len(before["runs"])


def test_interrupted_trace_keeps_its_finished_intervals(tmp_path, squeezenet_exports):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) in the middle of a trace: the intervals
    finished before it are stored as a partial trace cell, and the command says so in one line."""
    import os

    from conftest import interrupt, start_interruptible

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "ti"
    e = dict(os.environ, TMPDIR=str(tmp))

    proc = start_interruptible(["trace", "-d", "120s", "--period", "0.5", "--images", "2", "-o", str(out)], env=e)

    def three_intervals() -> bool:
        streams = list(tmp.glob("perfmodel-trace-*/intervals.jsonl"))
        return bool(streams) and streams[0].read_text().count('"interval"') >= 3

    stdout, stderr = interrupt(proc, three_intervals)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1 and "partial" in lines[0] and "interval" in lines[0], stderr
    ds = Dataset.open(out)
    partial = {cid: m for cid, m in ds.cells().items() if m.get("status") == "partial"}
    assert len(partial) == 1, ds.cells()
    (cid, meta), = partial.items()
    assert meta["interrupted"] is True and meta["intervals"] >= 3
    df = ds.read_cell(cid)
    assert set(df.phase) == {"trace"} and set(df.cell_id) == {cid}
    wide = wide_per_sample(df).frame
    assert len(wide) == meta["intervals"] and (wide.images >= 1).all()
    assert ds.done_cells() == []  # not taken for a finished trace
    assert list(tmp.glob("perfmodel-trace-*")) == []  # the stream file is cleaned up


def test_trace_worker_killed_mid_run_keeps_its_finished_intervals(tmp_path, squeezenet_exports):
    """A worker killed by the timeout (as a crash would) after some intervals: the trace is marked failed
    and the intervals it finished are kept as a partial cell, and the error says so."""
    from perfmodel.collect import run_trace

    out = tmp_path / "tk"
    with pytest.raises(PerfmodelError, match="kept as partial trace cell") as exc:
        run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=60, period_s=0.5, out=out, images=2,
                  warmup_images=1, warmup_min_s=0.0, progress=False, timeout_s=20)
    # 20 s (not 10): on a loaded 2-core machine the worker's imports alone took 10 s and it finished no interval
    assert "did not finish within 20 s" in str(exc.value)
    ds = Dataset.open(out)
    status = {cid: m["status"] for cid, m in ds.cells().items()}
    trace_id = "onnxruntime__squeezenet1_1__t1__r0__trace-auto"
    assert status.pop(trace_id) == "failed"
    (pid, st), = status.items()
    assert st == "partial" and pid.startswith(trace_id + "__partial-")
    meta = ds.cell_meta(pid)
    assert meta["interrupted"] is False and "did not finish" in meta["reason"] and meta["intervals"] >= 2
    assert len(wide_per_sample(ds.read_cell(pid))) == meta["intervals"]


def test_trace_stream_skips_a_line_cut_short_and_keeps_sources(tmp_path):
    from perfmodel.collect.worker import read_stream, stream_records
    from perfmodel.readings import Reading

    p = tmp_path / "intervals.jsonl"
    good = {"kind": "interval", "t_start_s": 1.0, "t_end_s": 2.0,
            "readings": [Reading("images", 5.0, "count", "perfmodel.collect.worker", "real").to_dict(),
                         Reading.missing("temperature_c", "no thermal zone", "degC").to_dict()]}
    p.write_text(json.dumps({"kind": "setup", "load_s": 0.1}) + "\n" + json.dumps(good) + "\n"
                 + json.dumps(good)[:40])
    setup, intervals = read_stream(p)
    assert setup == {"load_s": 0.1} and len(intervals) == 1
    keys = {"run_id": "r", "cell_id": "c", "board": "b", "framework": "onnxruntime", "network": "squeezenet1_1",
            "threads": 1, "workload": "onnxruntime/squeezenet1_1", "repeat": 0}
    df = stream_records(intervals, **keys).set_index("metric")
    assert df.loc["images", "value"] == 5.0 and df.loc["images", "source"] == "perfmodel.collect.worker"
    assert math.isnan(df.loc["temperature_c", "value"]) and df.loc["temperature_c", "reason"] == "no thermal zone"
    assert read_stream(tmp_path / "absent.jsonl") == ({}, [])
