"""Data-set storage: round trips, atomic per-cell writes under SIGKILL, resume, versions, merging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from perfmodel.data import (
    COLUMNS,
    Dataset,
    SchemaError,
    compat_differences,
    compat_fields,
    merge,
    read_dataset,
    read_records,
    records_from_readings,
    records_attrs,
    records_metadata,
    write_dataset,
    write_records,
)
from perfmodel.errors import InputFileError, PerfmodelError
from perfmodel.readings import Reading

REPO = Path(__file__).resolve().parents[1]

META = {
    "board": "kvm-x86",
    "cpu_model": "AMD EPYC",
    "counter_source": "software",
    "cache_geometry": {"D1": "32768,4,64"},
    "versions": {"onnxruntime": "1.32.0", "numpy": "2.1.3"},
    "kernel": "6.1.0",
}


def cell_records(cell_id: str, n_images: int = 4, run_id: str = "run1", board: str = "kvm-x86") -> pd.DataFrame:
    parts = []
    for i in range(n_images):
        parts.append(records_from_readings(
            [
                Reading("latency_ms", 10.0 + i, "ms", "perf_counter", "real"),
                Reading("instructions", 1e6 * (i + 1), "count", "callgrind", "simulated"),
                Reading.missing("power_w", "no power sensor", "W"),
            ],
            run_id=run_id, cell_id=cell_id, board=board, framework="litert", network="squeezenet1_1",
            threads=1, workload="litert/squeezenet1_1", phase="image", repeat=0, image_index=i,
            t_start_s=float(i), t_end_s=i + 0.01,
        ))
    return pd.concat(parts, ignore_index=True)


# ---- round trips ---------------------------------------------------------------------------------


def test_cell_round_trip_preserves_everything(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META, campaign={"networks": ["squeezenet1_1"], "counters": "software"})
    df = cell_records("c1")
    attrs = {"sampler_period_s": 0.1, "notes": ["warm-up 3 images"]}
    ds.write_cell("c1", df, {"framework": "litert", "images": 4, "timings": {"wall_s": 1.5}}, attrs=attrs)

    again = Dataset.open(tmp_path / "ds")
    back = again.read_cell("c1")
    pdt.assert_frame_equal(back, df, check_dtype=True)
    assert again.cell_attrs("c1") == attrs
    assert back["value"].isna().sum() == 4
    assert (back.loc[back["value"].isna(), "reason"] == "no power sensor").all()
    for col, dtype in COLUMNS.items():
        assert str(back[col].dtype) == dtype

    whole = again.read()
    pdt.assert_frame_equal(whole, df, check_dtype=True)
    meta = again.cell_meta("c1")
    assert meta["status"] == "done" and meta["rows"] == len(df) and meta["timings"] == {"wall_s": 1.5}
    assert again.metadata == META
    assert again.campaign["counters"] == "software"
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["schema_version"] == 1 and info["tool_version"] and info["created"] <= info["updated"]
    assert again.verify() == []


def test_flat_file_round_trip(tmp_path):
    df = pd.concat([cell_records("a"), cell_records("b")], ignore_index=True)
    path = write_records(tmp_path / "flat.parquet", df, {"board": "odroid-xu3"}, attrs={"source": "unit test"})
    back = read_records(path)
    pdt.assert_frame_equal(back, df)
    assert records_attrs(path) == {"source": "unit test"}
    assert records_metadata(path) == {"board": "odroid-xu3"}
    pdt.assert_frame_equal(read_dataset(path), df)


def test_write_dataset_splits_cells(tmp_path):
    df = pd.concat([cell_records("a"), cell_records("b")], ignore_index=True)
    write_dataset(tmp_path / "ds", df, META)
    ds = Dataset.open(tmp_path / "ds")
    assert ds.done_cells() == ["a", "b"]
    pdt.assert_frame_equal(read_dataset(tmp_path / "ds"), df)


def test_write_validates_and_refuses_foreign_cell_ids(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META)
    bad = cell_records("c1").assign(threads=0)
    with pytest.raises(SchemaError, match=r"(?s)records of cell .c1.*threads must be >= 1"):
        ds.write_cell("c1", bad)
    with pytest.raises(PerfmodelError, match="name other cells: 'c2'"):
        ds.write_cell("c1", cell_records("c2"))
    with pytest.raises(PerfmodelError, match="invalid cell id"):
        ds.write_cell("../evil", cell_records("../evil"))
    with pytest.raises(PerfmodelError, match="status"):
        ds.write_cell("c1", cell_records("c1"), {"status": "maybe"})
    assert ds.done_cells() == []
    assert not list((tmp_path / "ds" / "records").iterdir())


def test_read_validates_files_edited_behind_our_back(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META)
    ds.write_cell("c1", cell_records("c1"))
    bad = cell_records("c1")
    bad["provenance"] = "guessed"
    bad.to_parquet(tmp_path / "ds" / "records" / "c1.parquet")
    with pytest.raises(InputFileError, match="c1: records file does not match its sidecar"):
        ds.read()  # changed after it was written: refused unless trusted (then validated all the same)
    with pytest.raises(SchemaError, match="provenance must be one of"):
        ds.read(trust_modified=True)
    assert len(ds.read(validate=False, trust_modified=True)) == len(bad)
    assert ds.verify() == ["c1: records file does not match its sidecar (sha256)"]


# ---- create / open / versions ---------------------------------------------------------------------


def test_create_refuses_to_overwrite(tmp_path):
    Dataset.create(tmp_path / "ds", META)
    with pytest.raises(PerfmodelError, match="already exists"):
        Dataset.create(tmp_path / "ds", META)
    other = dict(META, board="raspberrypi-3b", cpu_model="Cortex-A53")
    with pytest.raises(PerfmodelError, match=r"(?s)different settings.*board: \"kvm-x86\" != \"raspberrypi-3b\""):
        Dataset.create(tmp_path / "ds", other, exist_ok=True)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(PerfmodelError, match="not empty and is not a perfmodel data set"):
        Dataset.create(tmp_path / "junk", META)
    assert (tmp_path / "junk" / "notes.txt").read_text() == "mine"


def test_open_errors(tmp_path):
    with pytest.raises(InputFileError, match="not a perfmodel data set"):
        Dataset.open(tmp_path)
    ds = Dataset.create(tmp_path / "ds", META)
    info = json.loads((ds.path / "dataset.json").read_text())
    info["schema_version"] = 2
    (ds.path / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(PerfmodelError, match=r"(?s)schema version 2.*up to 1; upgrade perfmodel"):
        Dataset.open(ds.path)
    (ds.path / "dataset.json").write_text("{not json")
    with pytest.raises(InputFileError, match="corrupt"):
        Dataset.open(ds.path)


def test_future_version_in_records_file(tmp_path):
    import pyarrow.parquet as pq

    path = write_records(tmp_path / "f.parquet", cell_records("a"))
    table = pq.read_table(path)
    kv = dict(table.schema.metadata)
    meta = json.loads(kv[b"perfmodel"])
    meta["schema_version"] = 7
    kv[b"perfmodel"] = json.dumps(meta).encode()
    pq.write_table(table.replace_schema_metadata(kv), path)
    with pytest.raises(PerfmodelError, match="version 7"):
        read_records(path)


# ---- resume semantics -----------------------------------------------------------------------------


def test_resume_skips_done_and_redoes_unfinished(tmp_path):
    ds = Dataset.create(tmp_path / "ds", META, campaign={"networks": ["a"]})
    ds.write_cell("a", cell_records("a"))
    ds.write_cell("b", cell_records("b"), {"status": "partial"})
    ds.mark_failed("c", "worker crashed: SIGSEGV", {"framework": "opencv"})
    # a parquet file without sidecar (crash between the two writes)
    (ds.records_dir / "d.parquet").write_bytes(b"PAR1 half written")
    assert ds.done_cells() == ["a"]
    assert ds.cells()["c"]["reason"] == "worker crashed: SIGSEGV"
    assert ds.summary()["cells"] == {"done": 1, "partial": 1, "failed": 1}

    resumed = Dataset.create(tmp_path / "ds", dict(META, kernel="6.2"), campaign={"networks": ["a", "b"]},
                             exist_ok=True)
    # the run is recorded (and its spec becomes the data set's) only when it writes something
    assert resumed.campaign == {"networks": ["a"]} and len(resumed.info["runs"]) == 1
    todo = [c for c in ["a", "b", "c", "d"] if c not in resumed.done_cells()]
    assert todo == ["b", "c", "d"]
    for c in todo:
        resumed.write_cell(c, cell_records(c))
    assert resumed.campaign == {"networks": ["a", "b"]}
    assert len(Dataset.open(tmp_path / "ds").info["runs"]) == 2
    assert resumed.done_cells() == ["a", "b", "c", "d"]
    assert resumed.read()["cell_id"].value_counts().to_dict() == {c: 12 for c in "abcd"}


def test_rewrite_of_done_cell_removes_sidecar_first(tmp_path, monkeypatch):
    from perfmodel.data import store

    ds = Dataset.create(tmp_path / "ds", META)
    ds.write_cell("a", cell_records("a"))

    def crash(path, data):
        raise KeyboardInterrupt  # Ctrl-C while the new Parquet file is written

    monkeypatch.setattr(store, "atomic_write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        ds.write_cell("a", cell_records("a", n_images=9))
    assert ds.done_cells() == []  # old sidecar gone: the cell will be re-run, never half-trusted


_WRITER = textwrap.dedent("""
    import os, signal, sys
    import pandas as pd
    from perfmodel.data import Dataset, records_from_readings, store
    from perfmodel.readings import Reading

    path, n_cells, mode, kill_at = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

    def records(cid, k):
        rows = [records_from_readings(
            [Reading("latency_ms", 1.0 + k + i, "ms", "clock", "real"),
             Reading("instructions", float(k * 1000 + i), "count", "callgrind", "simulated")],
            run_id="r", cell_id=cid, board="b", framework="litert", network="n", threads=1,
            workload="litert/n", phase="image", repeat=0, image_index=i) for i in range(200)]
        return pd.concat(rows, ignore_index=True)

    if mode != "loop":
        real = store.atomic_write_bytes
        calls = {"n": 0}
        def dying(p, data):
            if p.suffix == ("." + mode) and p.parent.name == "records":
                calls["n"] += 1
                if calls["n"] == kill_at:
                    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
                    with open(tmp, "wb") as fh:
                        fh.write(data[: len(data) // 2]); fh.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            real(p, data)
        store.atomic_write_bytes = dying

    ds = Dataset.create(path, {"board": "b"}, exist_ok=True)
    done = set(ds.done_cells())
    for k in range(n_cells):
        cid = f"cell{k:03d}"
        if cid not in done:
            ds.write_cell(cid, records(cid, k), {"k": k})
    print("finished", flush=True)
""")


def _run_writer(path: Path, n_cells: int, mode: str, kill_at: int = 0, wait: bool = True):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-c", _WRITER, str(path), str(n_cells), mode, str(kill_at)]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_complete(ds: Dataset) -> None:
    for cid in ds.done_cells():
        k = int(cid[4:])
        df = ds.read_cell(cid)
        assert len(df) == 400
        assert sorted(df.loc[df["metric"] == "instructions", "value"]) == [float(k * 1000 + i) for i in range(200)]


@pytest.mark.parametrize("suffix", ["parquet", "json"])
def test_sigkill_mid_write_leaves_only_complete_cells(tmp_path, suffix):
    path = tmp_path / "ds"
    proc = _run_writer(path, 6, suffix, kill_at=4)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ds = Dataset.open(path)
    assert ds.done_cells() == ["cell000", "cell001", "cell002"]
    _check_complete(ds)
    hidden = [p.name for p in ds.records_dir.iterdir() if p.name.startswith(".")]
    assert hidden, "the simulated crash must have left a partial temp file behind"
    if suffix == "json":  # Parquet of cell003 complete, sidecar not: still not done
        assert (ds.records_dir / "cell003.parquet").exists()
    else:
        assert not (ds.records_dir / "cell003.parquet").exists()
    ds.read()  # partial temp files are invisible to readers
    assert ds.remove_stale_temp_files()
    # resume: only the missing cells are written
    proc = _run_writer(path, 6, "loop")
    assert proc.returncode == 0, proc.stderr
    ds = Dataset.open(path)
    assert ds.done_cells() == [f"cell{k:03d}" for k in range(6)]
    _check_complete(ds)
    assert ds.cell_meta("cell000")["written"] <= ds.cell_meta("cell005")["written"]


def test_external_sigkill_at_random_time(tmp_path):
    path = tmp_path / "ds"
    proc = _run_writer(path, 200, "loop", wait=False)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if (path / "records").is_dir() and len(list((path / "records").glob("*.json"))) >= 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ds = Dataset.open(path)
    done = ds.done_cells()
    assert 3 <= len(done) < 200
    assert done == [f"cell{k:03d}" for k in range(len(done))]
    _check_complete(ds)
    assert len(ds.read()) == 400 * len(done)


# ---- compatibility and merge ----------------------------------------------------------------------


def test_compat_fields_from_nested_metadata_and_campaign():
    meta = {"system": {"board": "rpi3", "cpu_model": "Cortex-A53"},
            "versions": {"tensorflow": "2.21.0", "onnxruntime": "1.32.1rc1"}}
    campaign = {"counters": "valgrind", "geometry": {"D1": "32768,4,64"}}
    fields = compat_fields(meta, campaign)
    assert fields == {"board": "rpi3", "cpu_model": "Cortex-A53", "counter_source": "valgrind",
                      "cache_geometry": {"D1": "32768,4,64"},
                      "versions": {"tensorflow": "2.21", "onnxruntime": "1.32"}}
    patch = dict(meta, versions={"tensorflow": "2.21.5", "onnxruntime": "1.32.0"})
    assert compat_differences(fields, compat_fields(patch, campaign)) == []
    minor = dict(meta, versions={"tensorflow": "2.22.0"})
    assert compat_differences(fields, compat_fields(minor, campaign)) == [
        "versions.onnxruntime: 1.32 != (missing)", "versions.tensorflow: 2.21 != 2.22"]


def test_merge_refuses_incompatible_unless_told(tmp_path):
    a = Dataset.create(tmp_path / "a", META)
    a.write_cell("x", cell_records("x"))
    b = Dataset.create(tmp_path / "b", dict(META, board="raspberrypi-3b",
                                            versions={"onnxruntime": "1.18.0", "numpy": "2.1.0"}))
    b.write_cell("y", cell_records("y", board="raspberrypi-3b"))
    with pytest.raises(PerfmodelError) as info:
        merge([a, tmp_path / "b"], tmp_path / "m")
    msg = str(info.value)
    assert "board" in msg and "versions.onnxruntime: 1.32 != 1.18" in msg and "numpy" not in msg
    assert not (tmp_path / "m").exists()
    m = merge([a, b], tmp_path / "m", allow_incompatible=True)
    assert m.done_cells() == ["x", "y"]
    assert m.metadata["incompatible"] and len(m.metadata["merged_from"]) == 2
    assert m.cell_meta("y")["merged_from"] == str(tmp_path / "b")
    assert set(m.read()["board"]) == {"kvm-x86", "raspberrypi-3b"}


def test_merge_compatible_and_duplicates(tmp_path):
    a = Dataset.create(tmp_path / "a", META)
    a.write_cell("x", cell_records("x", run_id="run1"))
    b = Dataset.create(tmp_path / "b", dict(META, kernel="other kernel, same compat fields"))
    b.write_cell("x", cell_records("x", run_id="run2"))
    b.write_cell("z", cell_records("z", run_id="run2"))
    flat = write_records(tmp_path / "f.parquet", cell_records("w", run_id="run3"), META)
    with pytest.raises(PerfmodelError, match="cell 'x' is in more than one input"):
        merge([a, b], tmp_path / "m1")
    m = merge([a, b, flat], tmp_path / "m2", on_duplicate="first")
    assert m.done_cells() == ["w", "x", "z"]
    assert set(m.read_cell("x")["run_id"]) == {"run1"}
    m = merge([a, b], tmp_path / "m3", on_duplicate="rename")
    assert m.done_cells() == ["x", "x@1", "z"]
    assert m.cell_meta("x@1")["original_cell_id"] == "x"
    df = m.read()
    assert set(df.loc[df["run_id"] == "run2", "cell_id"]) == {"x@1", "z"}


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(PerfmodelError, match="cannot store"):
        Dataset.create(tmp_path / "ds", {"board": object()})
    ds = Dataset.create(tmp_path / "ds2", {"board": "b", "freq": np.float64(1.5e3), "nan": float("nan"),
                                           "path": Path("/x")})
    assert Dataset.open(ds.path).metadata == {"board": "b", "freq": 1500.0, "nan": None, "path": "/x"}
