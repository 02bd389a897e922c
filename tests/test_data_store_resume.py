"""Data-set storage under resume and failure: kept records after a failed re-measure, runs recorded only
when they write, checksums on resume, dataset.json field types, valgrind-only cache geometry, merge that
checks everything before writing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas.testing as pdt
import pytest

from perfmodel.data import Dataset, compat_differences, compat_fields, merge, read_dataset
from perfmodel.errors import InputFileError, PerfmodelError

from test_data_store import META, cell_records

REPO = Path(__file__).resolve().parents[1]
GEOMETRY = {"D1": "32768,4,64", "I1": "32768,4,64", "LL": "524288,16,64"}


def _flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# ---- a failed re-measure keeps the good records --------------------------------------------------------


def test_failed_remeasure_keeps_good_records_and_records_the_failure(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META)
    good = cell_records("a")
    ds.write_cell("a", good, {"framework": "litert", "run_id": "run1"})
    parquet = ds.records_dir / "a.parquet"
    before = parquet.read_bytes()

    kept = ds.mark_failed("a", "worker did not finish within 0.1 s", {"framework": "litert", "run_id": "run2"})
    assert kept is True
    assert parquet.read_bytes() == before
    meta = ds.cell_meta("a")
    assert meta["status"] == "done" and meta["run_id"] == "run1"
    [failure] = meta["failed_remeasures"]
    assert failure["reason"] == "worker did not finish within 0.1 s" and failure["run_id"] == "run2"
    assert "framework" not in failure and failure["failed_at"]
    # readers and a resume still see the good cell
    assert ds.done_cells(verify=True) == ["a"] and ds.is_done("a")
    pdt.assert_frame_equal(read_dataset(tmp_path / "ds"), good)
    assert ds.summary()["failed_remeasures"] == 1
    # a second failure is appended; a later success replaces the cell and its failure history
    ds.mark_failed("a", "second failure", {"run_id": "run3"})
    assert [f["reason"] for f in ds.cell_meta("a")["failed_remeasures"]] == [
        "worker did not finish within 0.1 s", "second failure"]
    ds.write_cell("a", cell_records("a", n_images=2), {"run_id": "run4"})
    assert "failed_remeasures" not in ds.cell_meta("a") and len(ds.read_cell("a")) == 6


def test_mark_failed_without_good_records_marks_the_cell_failed(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META)
    assert ds.mark_failed("new", "crashed") is False
    assert ds.cell_meta("new")["status"] == "failed" and not ds.is_done("new")
    # a corrupt records file is not kept as good: the cell is failed and the sidecar says what was discarded
    ds.write_cell("bad", cell_records("bad"))
    _flip_byte(ds.records_dir / "bad.parquet")
    assert ds.mark_failed("bad", "crashed again") is False
    meta = ds.cell_meta("bad")
    assert meta["status"] == "failed" and "sha256" in meta["discarded"]
    assert not (ds.records_dir / "bad.parquet").exists()
    assert ds.done_cells() == []


# ---- runs are recorded only when they write ------------------------------------------------------------


def test_resume_that_writes_nothing_leaves_dataset_json_untouched(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META, campaign={"images": 3})
    ds.write_cell("a", cell_records("a"))
    before = (tmp_path / "ds" / "dataset.json").read_bytes()

    resumed = Dataset.create(tmp_path / "ds", META, campaign={"images": 5}, exist_ok=True)
    assert resumed.pending_run["campaign"] == {"images": 5}
    assert (tmp_path / "ds" / "dataset.json").read_bytes() == before
    assert resumed.campaign == {"images": 3}

    resumed.mark_failed("b", "crashed")  # a failure is a write: the run is recorded first
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert [r["campaign"] for r in info["runs"]] == [{"images": 3}, {"images": 5}]
    assert info["campaign"] == {"images": 5} and resumed.pending_run is None


def test_record_run_metadata_commits_the_pending_run(tmp_path):
    Dataset.create(tmp_path / "ds", dict(META, run_id="r1"), campaign={"images": 3})
    resumed = Dataset.create(tmp_path / "ds", dict(META, run_id="r2"), campaign={"images": 3}, exist_ok=True)
    resumed.record_run_metadata("r2", "calibration", {"gflops": 1.0})
    info = Dataset.open(tmp_path / "ds").info
    assert info["runs"][-1]["metadata"]["calibration"] == {"gflops": 1.0}
    assert "calibration" not in info["metadata"]


def test_latest_campaign_by_mode(tmp_path):
    from perfmodel.data.store import campaign_mode

    ds = Dataset.create(tmp_path / "ds", META, campaign={"images": 3})
    ds.write_cell("a", cell_records("a"))
    trace = Dataset.create(tmp_path / "ds", META, campaign={"mode": "trace", "images": 50}, exist_ok=True)
    trace.write_cell("t", cell_records("t"))
    ds = Dataset.open(tmp_path / "ds")
    assert ds.campaign == {"mode": "trace", "images": 50}
    assert ds.latest_campaign("campaign") == {"images": 3}
    assert ds.latest_campaign("trace") == {"mode": "trace", "images": 50}
    assert ds.latest_campaign("command") is None
    assert campaign_mode({"images": 3}) == "campaign" and campaign_mode(None) is None


# ---- checksums on resume -------------------------------------------------------------------------------


def test_corrupt_records_file_is_not_done_on_resume(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META)
    ds.write_cell("a", cell_records("a"))
    ds.write_cell("b", cell_records("b"))
    _flip_byte(ds.records_dir / "a.parquet")
    assert ds.done_cells() == ["a", "b"]  # readers: as written (read() validates what it reads)
    assert ds.done_cells(verify=True) == ["b"]
    assert ds.unverified_cells() == {"a": "records file does not match its sidecar (sha256)"}
    assert not ds.is_done("a") and ds.is_done("b")
    assert ds.verify() == ["a: records file does not match its sidecar (sha256)"]


# ---- dataset.json field types --------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, message", [
    ("metadata", [1, 2], "field 'metadata' must be a JSON object or null, got a list"),
    ("campaign", "images=3", "field 'campaign' must be a JSON object or null, got a string"),
    ("runs", "run1", "field 'runs' must be a list or null, got a string"),
    ("runs", ["run1"], "field 'runs[0]' must be a JSON object, got a string"),
    ("runs", [{"metadata": [1]}], "field 'runs[0].metadata' must be a JSON object or null, got a list"),
    ("calibrations", {"a": 1}, "field 'calibrations' must be a list or null, got an object"),
])
def test_open_rejects_wrong_field_types(tmp_path, field, value, message):
    ds = Dataset.create(tmp_path / "ds", META, campaign={"images": 3})
    ds.write_cell("a", cell_records("a"))
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    info[field] = value
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(InputFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Dataset.open(tmp_path / "ds")
    with pytest.raises(InputFileError):
        Dataset.create(tmp_path / "ds", META, exist_ok=True)
    with pytest.raises(InputFileError):
        read_dataset(tmp_path / "ds")


def test_cli_on_wrong_field_types_prints_one_line_error(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META, campaign={"images": 3})
    ds.write_cell("a", cell_records("a"))
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    info["metadata"] = ["not", "an", "object"]
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(info))
    proc = subprocess.run([sys.executable, "-m", "perfmodel", "collect", "-o", str(tmp_path / "ds"), "--command",
                           "true", "--counters", "software", "--images", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "field 'metadata'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# ---- cache geometry only for valgrind ------------------------------------------------------------------


def test_cache_geometry_is_a_compat_field_only_for_valgrind_runs():
    timing = {"board": "b", "counter_source": "auto", "cache_geometry": GEOMETRY}
    assert compat_fields(timing)["cache_geometry"] is None
    assert compat_fields(dict(timing, simulate=True))["cache_geometry"] == GEOMETRY
    assert compat_fields({"board": "b"}, {"counters": "auto", "simulate": True, "geometry": GEOMETRY})[
        "cache_geometry"] == GEOMETRY
    valgrind = compat_fields(dict(timing, counter_source="valgrind"))
    other = compat_fields(dict(timing, counter_source="valgrind", cache_geometry=dict(GEOMETRY, LL="1M")))
    assert compat_differences(valgrind, other) == [
        'cache_geometry: {"D1": "32768,4,64", "I1": "32768,4,64", "LL": "524288,16,64"} != '
        '{"D1": "32768,4,64", "I1": "32768,4,64", "LL": "1M"}']
    # one side without valgrind cells: its geometry means nothing, nothing to compare
    assert compat_differences(compat_fields(timing), compat_fields(dict(timing, simulate=True,
                                                                       cache_geometry={"LL": "1M"}))) == []


def test_resume_of_a_timing_data_set_ignores_geometry(tmp_path):
    # as the shipped data sets: a timing campaign that recorded the default geometry anyway
    legacy = {"board": "b", "cpu_model": "c", "counter_source": "auto", "cache_geometry": GEOMETRY}
    ds = Dataset.create(tmp_path / "ds", legacy, campaign={"counters": "auto", "geometry": GEOMETRY})
    ds.write_cell("a", cell_records("a"))
    # a trace (no geometry) and a timing run with another --geometry are both compatible
    Dataset.create(tmp_path / "ds", dict(legacy, cache_geometry=None), campaign={"mode": "trace"}, exist_ok=True)
    Dataset.create(tmp_path / "ds", dict(legacy, cache_geometry=dict(GEOMETRY, LL="1M")),
                   campaign={"counters": "auto", "geometry": dict(GEOMETRY, LL="1M")}, exist_ok=True)
    # valgrind cells are added with some geometry; from then on another valgrind geometry is refused
    sim = dict(legacy, simulate=True)
    run = Dataset.create(tmp_path / "ds", sim, campaign={"counters": "auto", "simulate": True, "geometry": GEOMETRY},
                         exist_ok=True)
    run.write_cell("v", cell_records("v"))
    assert Dataset.open(tmp_path / "ds").compat()["cache_geometry"] == GEOMETRY
    with pytest.raises(PerfmodelError, match="cache_geometry"):
        Dataset.create(tmp_path / "ds", dict(sim, cache_geometry=dict(GEOMETRY, LL="1M")),
                       campaign={"counters": "auto", "simulate": True}, exist_ok=True)
    forced = Dataset.create(tmp_path / "ds", dict(sim, cache_geometry=dict(GEOMETRY, LL="1M")),
                            campaign={"counters": "auto", "simulate": True}, exist_ok=True, allow_incompatible=True)
    assert forced.pending_run["forced"] and "cache_geometry" in forced.pending_run["differences"][0]


def test_shipped_data_sets_open_and_keep_their_compat_fields():
    folders = sorted(p.parent for p in (REPO / "datasets").glob("**/dataset.json"))
    if not folders:
        pytest.skip("no shipped data sets in this checkout")
    for folder in folders:
        ds = Dataset.open(folder)
        # a data set has a cache geometry to compare exactly when it holds simulated cells (directly or merged)
        simulated = any(c.get("counter_source") == "valgrind" for c in ds.cells().values())
        assert (ds.compat()["cache_geometry"] is not None) == simulated, folder


# ---- merge checks before writing -----------------------------------------------------------------------


def test_merge_duplicate_error_writes_nothing_and_a_retry_works(tmp_path):
    a = Dataset.create(tmp_path / "a", META)
    a.write_cell("x", cell_records("x"))
    with pytest.raises(PerfmodelError, match="in more than one input"):
        merge([tmp_path / "a", tmp_path / "a"], tmp_path / "m1")
    assert not (tmp_path / "m1").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary folder left either
    m = merge([tmp_path / "a", tmp_path / "a"], tmp_path / "m1", on_duplicate="rename")
    assert m.path == tmp_path / "m1" and m.done_cells() == ["x", "x@1"]
    assert Dataset.open(tmp_path / "m1").done_cells() == ["x", "x@1"]
    with pytest.raises(PerfmodelError, match="already exists"):
        merge([tmp_path / "a"], tmp_path / "m1")


def test_merge_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    a = Dataset.create(tmp_path / "a", META)
    a.write_cell("x", cell_records("x"))
    a.write_cell("y", cell_records("y"))
    calls = []

    def failing_write(self, cell_id, records, cell_meta=None, **kw):
        calls.append(cell_id)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, cell_id, records, cell_meta, **kw)

    original = Dataset.write_cell
    monkeypatch.setattr(Dataset, "write_cell", failing_write)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="disk full"):
        merge([a], tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "empty"]
    monkeypatch.undo()
    assert merge([a], tmp_path / "empty").done_cells() == ["x", "y"]  # into the empty folder


def test_merge_incompatible_message_names_the_python_option(tmp_path):
    a = Dataset.create(tmp_path / "a", META)
    a.write_cell("x", cell_records("x"))
    b = Dataset.create(tmp_path / "b", dict(META, board="other"))
    b.write_cell("y", cell_records("y", board="other"))
    with pytest.raises(PerfmodelError) as info:
        merge([a, b], tmp_path / "m")
    assert "allow_incompatible=True" in str(info.value) and "--allow-incompatible" not in str(info.value)
    assert not (tmp_path / "m").exists()


def test_merge_does_not_leave_temp_folders_on_success(tmp_path):
    a = Dataset.create(tmp_path / "a", META)
    a.write_cell("x", cell_records("x"))
    merge([a], tmp_path / "sub" / "m")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m"]
    assert not any(name.startswith(".") for name in os.listdir(tmp_path / "sub"))
