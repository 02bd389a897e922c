"""Collection into existing data sets: failed re-measures keep good cells, corrupt cells are measured
again, whole-command mode checks its spec and records its failures, the cache geometry matters only
for valgrind cells."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas.testing as pdt
import pytest

from perfmodel.collect import CampaignSpec, parse_geometry, run_campaign
from perfmodel.collect.command import collect_command
from perfmodel.data import Dataset, read_dataset
from perfmodel.errors import PerfmodelError

REPO = Path(__file__).resolve().parents[1]
ORT = "onnxruntime__squeezenet1_1__t1__r0__auto"


def _spec(**kw) -> CampaignSpec:
    base = dict(frameworks=["onnxruntime"], networks=["squeezenet1_1"], threads=[1], images=3, warmup_images=1,
                warmup_min_s=0.0)
    base.update(kw)
    return CampaignSpec(**base)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfmodel", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


def _flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def ort_campaign(tmp_path, squeezenet_exports):
    out = tmp_path / "c1"
    first = run_campaign(_spec(), out, progress=False, calibrate=False)
    assert first.done == [ORT]
    return out


# ---- campaign ------------------------------------------------------------------------------------------


def test_failed_remeasure_keeps_the_good_cell(ort_campaign):
    out = ort_campaign
    good = read_dataset(out)
    parquet = (out / "records" / f"{ORT}.parquet").read_bytes()
    again = run_campaign(_spec(cell_timeout_s=0.1), out, resume=False, force=True, progress=False, calibrate=False)
    assert again.failed == [ORT]
    reason = again.outcomes[0].reason
    assert reason.startswith("re-measure failed, the cell's earlier records are kept:") and "0.1 s" in reason
    assert (out / "records" / f"{ORT}.parquet").read_bytes() == parquet
    pdt.assert_frame_equal(read_dataset(out), good)
    sidecar = Dataset.open(out).cell_meta(ORT)
    assert sidecar["status"] == "done"
    assert sidecar["failed_remeasures"][0]["run_id"] == again.run_id
    # a plain resume keeps the good cell
    resumed = run_campaign(_spec(), out, progress=False, calibrate=False)
    assert resumed.skipped == [ORT]


def test_corrupt_cell_is_measured_again_on_resume(ort_campaign, caplog):
    out = ort_campaign
    _flip_byte(out / "records" / f"{ORT}.parquet")
    with caplog.at_level(logging.WARNING, logger="perfmodel.collect"):
        again = run_campaign(_spec(), out, progress=False, calibrate=False)
    assert again.done == [ORT] and not again.skipped
    assert again.outcomes[0].reason == "measured again: records file does not match its sidecar (sha256)"
    assert "does not match" in caplog.text and ORT in caplog.text
    ds = Dataset.open(out)
    assert ds.verify() == [] and ds.cell_meta(ORT)["replaced"].startswith("measured again")


def test_geometry_does_not_matter_without_valgrind(ort_campaign):
    out = ort_campaign
    ds = Dataset.open(out)
    assert ds.metadata["cache_geometry"] is None  # a timing campaign records no simulated cache
    other = _spec(frameworks=["onnxruntime", "opencv"], geometry=parse_geometry("LL=1M,16,64"))
    result = run_campaign(other, out, progress=False, calibrate=False)
    assert result.skipped == [ORT] and result.done == ["opencv__squeezenet1_1__t1__r0__auto"]


def test_trace_into_a_campaign_folder_is_not_refused_for_geometry(ort_campaign):
    from perfmodel.collect import run_trace

    res = run_trace("onnxruntime", "squeezenet1_1", 1, duration_s=1, period_s=0.5, out=ort_campaign, images=3,
                    warmup_images=1, warmup_min_s=0.0, progress=False)
    assert not res.skipped
    assert {c for c in Dataset.open(ort_campaign).done_cells()} >= {ORT, res.cell_id}


def test_campaign_rerun_that_measures_nothing_leaves_dataset_json(ort_campaign):
    before = (ort_campaign / "dataset.json").read_bytes()
    again = run_campaign(_spec(), ort_campaign, progress=False)
    assert again.skipped == [ORT]
    assert (ort_campaign / "dataset.json").read_bytes() == before


# ---- whole-command mode --------------------------------------------------------------------------------


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_command_spec_change_is_refused_and_nothing_rewritten(tmp_path):
    out = tmp_path / "cm"
    first = collect_command(out, _sh("sleep 0.02"), 2, _sh("sleep 0.01"), counters="software")
    assert first["status"] == "done"
    before = (out / "dataset.json").read_bytes()
    with pytest.raises(PerfmodelError) as info:
        collect_command(out, _sh("sleep 0.02"), 5, _sh("sleep 0.005"), counters="software")
    msg = str(info.value)
    assert "different command spec" in msg and "images: 2 != 5" in msg and "load_command" in msg
    # the same command with only another load-only command: the done cell's own settings differ
    with pytest.raises(PerfmodelError, match="load_command"):
        collect_command(out, _sh("sleep 0.02"), 2, _sh("sleep 0.005"), counters="software")
    same = collect_command(out, _sh("sleep 0.02"), 2, _sh("sleep 0.01"), counters="software")
    assert same["status"] == "skipped"
    assert (out / "dataset.json").read_bytes() == before
    info = json.loads(before)
    assert info["campaign"]["images"] == 2 and len(info["runs"]) == 1
    # merge: the done cell is kept (and said so); force: measured again with the new spec
    kept = collect_command(out, _sh("sleep 0.02"), 5, _sh("sleep 0.005"), counters="software", merge=True)
    assert kept["status"] == "skipped" and "load_command" in kept["reason"]
    assert (out / "dataset.json").read_bytes() == before
    forced = collect_command(out, _sh("sleep 0.02"), 5, _sh("sleep 0.005"), counters="software", force=True)
    assert forced["status"] == "done"
    info = json.loads((out / "dataset.json").read_text())
    assert info["campaign"]["images"] == 5 and info["runs"][-1]["allowed_by"] == "force"


def test_command_another_command_joins_the_data_set(tmp_path):
    out = tmp_path / "cm"
    collect_command(out, _sh("sleep 0.02"), 2, _sh("sleep 0.01"), counters="software")
    other = collect_command(out, _sh("sleep 0.03"), 2, _sh("sleep 0.02"), counters="software")
    assert other["status"] == "done" and len(Dataset.open(out).done_cells()) == 2


@pytest.mark.parametrize("command, message", [
    ("python 'foo", "cannot parse the command"),
    ("perfmodel-no-such-program --x", "command not found"),
])
def test_command_bad_command_leaves_nothing(tmp_path, command, message):
    with pytest.raises(PerfmodelError, match=message):
        collect_command(tmp_path / "cm", command, 2, counters="software")
    with pytest.raises(PerfmodelError, match=message):
        collect_command(tmp_path / "cm", "true", 2, command, counters="software")
    assert not (tmp_path / "cm").exists()


def test_cli_command_parse_error_is_clean(tmp_path):
    proc = _cli("collect", "-o", str(tmp_path / "cm0"), "--command", "python 'foo", "--images", "2")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: cannot parse the command") and "Traceback" not in proc.stderr
    assert not (tmp_path / "cm0").exists()


def test_command_failure_is_recorded_and_keeps_an_earlier_good_cell(tmp_path):
    out = tmp_path / "cm"
    flag = tmp_path / "fail"
    cmd = _sh(f"test ! -e {flag}")
    with pytest.raises(PerfmodelError, match=r"exited with code 1.*marked failed"):
        collect_command(out, _sh("exit 1"), 2, counters="software")
    ds = Dataset.open(out)
    [(cid, meta)] = ds.cells().items()
    assert meta["status"] == "failed" and "exited with code 1" in meta["reason"]
    # a good cell, then a failing re-measure of it: the good records stay
    good = collect_command(out, cmd, 2, counters="software")
    records = Dataset.open(out).read_cell(good["cell_id"])
    flag.write_text("")
    with pytest.raises(PerfmodelError, match="earlier records are kept"):
        collect_command(out, cmd, 2, counters="software", force=True)
    ds = Dataset.open(out)
    assert ds.is_done(good["cell_id"])
    pdt.assert_frame_equal(ds.read_cell(good["cell_id"]), records)
    assert "exited with code 1" in ds.cell_meta(good["cell_id"])["failed_remeasures"][0]["reason"]


def test_command_corrupt_cell_is_measured_again(tmp_path, caplog):
    out = tmp_path / "cm"
    first = collect_command(out, _sh("sleep 0.02"), 2, counters="software")
    _flip_byte(out / "records" / f"{first['cell_id']}.parquet")
    with caplog.at_level(logging.WARNING, logger="perfmodel.collect"):
        again = collect_command(out, _sh("sleep 0.02"), 2, counters="software")
    assert again["status"] == "done" and again["reason"].startswith("measured again")
    assert "does not match" in caplog.text
    assert Dataset.open(out).verify() == []


def test_cli_command_merge_keeps_the_done_cell_and_says_why(tmp_path):
    """--merge applies to --command too: a done cell measured with another spec is kept, and the output
    gives the reason (the differences)."""
    from typer.testing import CliRunner

    from perfmodel.cli.app import app

    out = tmp_path / "cm"
    base = ["collect", "-o", str(out), "--command", "sleep 0.02", "--counters", "software"]
    r = CliRunner().invoke(app, base + ["--images", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, base + ["--images", "3"])
    assert r.exit_code != 0 and "images: 2 != 3" in str(r.exception)
    r = CliRunner().invoke(app, base + ["--images", "3", "--merge"])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "images" in r.output


def test_rerunning_a_done_trace_or_command_skips_it_after_another_was_added(tmp_path):
    """A done cell is compared with the spec it was measured with, not with the latest one of its mode: the
    exact command that made it is skipped (dataset.json untouched) after another trace / command with
    another spec joined the data set; the same cell with another spec is refused without --force."""
    from perfmodel.collect import run_trace

    out = tmp_path / "tr"
    kw = dict(framework="onnxruntime", threads=1, period_s=0.5, images=2, warmup_images=1, warmup_min_s=0.0,
              progress=False)
    run_trace(network="squeezenet1_1", duration_s=1.0, out=out, **kw)
    run_trace(network="squeezenet1_0", duration_s=1.5, out=out, force=True, **kw)
    before = (out / "dataset.json").read_bytes()
    again = run_trace(network="squeezenet1_1", duration_s=1.0, out=out, **kw)
    assert again.skipped and (out / "dataset.json").read_bytes() == before
    with pytest.raises(PerfmodelError, match="already traced .* with a different spec"):
        run_trace(network="squeezenet1_1", duration_s=1.5, out=out, **kw)

    cm = tmp_path / "cm"
    collect_command(cm, _sh("sleep 0.02"), 2, counters="software")
    collect_command(cm, _sh("sleep 0.03"), 3, counters="software", merge=True)
    before = (cm / "dataset.json").read_bytes()
    same = collect_command(cm, _sh("sleep 0.02"), 2, counters="software")
    assert same["status"] == "skipped" and (cm / "dataset.json").read_bytes() == before
