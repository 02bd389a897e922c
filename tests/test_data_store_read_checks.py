"""Reading a data set: a cell whose sidecar is deleted or corrupt is said (not silently dropped), and a records
file that no longer matches the sha256 in its sidecar is refused naming the cell unless --trust-modified."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from perfmodel.data import Dataset, read_dataset, records_from_readings, write_dataset
from perfmodel.data.store import _parquet_bytes, _read_parquet
from perfmodel.errors import InputFileError
from perfmodel.readings import Reading

REPO = Path(__file__).resolve().parents[1]
CELL = "litert__alexnet__t1__r0__auto"  # a timing cell of datasets/reference


def _records(cell_id: str):
    return records_from_readings([Reading("latency_ms", 10.0, "ms", "perf_counter", "real")], run_id="r",
                                 cell_id=cell_id, board="test", framework="litert", network="squeezenet1_1",
                                 threads=1, workload="litert/squeezenet1_1", phase="image", repeat=0,
                                 image_index=0, t_start_s=0.0, t_end_s=0.01)


@pytest.fixture
def three_cells(tmp_path):
    import pandas as pd

    out = tmp_path / "ds"
    write_dataset(out, pd.concat([_records(c) for c in ("a", "b", "c")], ignore_index=True), {"board": "test"})
    return out


def _edit(parquet: Path) -> None:
    """Change one value of a records file, keeping it a valid Parquet file (an edit behind our back)."""
    df, meta = _read_parquet(parquet)
    i = df.index[df["value"].notna()][0]
    df.loc[i, "value"] = float(df.loc[i, "value"]) * 2 + 1
    data = _parquet_bytes(df, meta)
    assert data != parquet.read_bytes()
    parquet.write_bytes(data)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfmodel", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


def test_cells_with_a_deleted_or_corrupt_sidecar_are_said(three_cells, caplog):
    (three_cells / "records" / "a.json").unlink()
    (three_cells / "records" / "b.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="perfmodel.data"):
        df = read_dataset(three_cells)
    assert sorted(df["cell_id"].unique()) == ["c"]
    bad = Dataset.open(three_cells).unreadable_cells()
    assert set(bad) == {"a", "b"}
    assert "no sidecar" in bad["a"] and "corrupt" in bad["b"]
    assert "2 cell(s) cannot be read and are left out" in caplog.text and "a: its records file" in caplog.text


def test_a_done_cell_whose_records_file_is_gone_is_said(three_cells, caplog):
    (three_cells / "records" / "c.parquet").unlink()
    with caplog.at_level(logging.WARNING, logger="perfmodel.data"):
        df = read_dataset(three_cells)
    assert sorted(df["cell_id"].unique()) == ["a", "b"]
    assert Dataset.open(three_cells).unreadable_cells() == {"c": "its sidecar says done but its records file is missing"}
    assert "c: its sidecar says done" in caplog.text


def test_modified_records_are_refused_naming_the_cell_unless_trusted(three_cells, caplog):
    _edit(three_cells / "records" / "b.parquet")
    with pytest.raises(InputFileError, match=r"1 cell\(s\) were changed after they were written.*b: records file "
                       r"does not match its sidecar \(sha256\).*--trust-modified"):
        read_dataset(three_cells)
    with caplog.at_level(logging.WARNING, logger="perfmodel.data"):
        df = read_dataset(three_cells, trust_modified=True)
    assert sorted(df["cell_id"].unique()) == ["a", "b", "c"]
    assert Dataset.open(three_cells).modified_cells() == {"b": "records file does not match its sidecar (sha256)"}
    assert "reading 1 cell(s) changed after they were written" in caplog.text


def test_cli_readers_say_unreadable_cells_and_refuse_modified_ones(tmp_path):
    ds = tmp_path / "reference"
    shutil.copytree(REPO / "datasets" / "reference", ds)
    (ds / "records" / f"{CELL}.json").unlink()
    res = _cli("select", str(ds), "--json")
    assert res.returncode == 0, res.stderr
    assert "1 cell(s) cannot be read and are left out" in res.stderr and CELL in res.stderr
    victim = "onnxruntime__resnet50__t1__r0__auto"
    _edit(ds / "records" / f"{victim}.parquet")
    for args in (["select", str(ds)], ["fit", str(ds), "--target", "throughput_fps", "-o", str(tmp_path / "m.json")]):
        res = _cli(*args)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert "changed after they were written" in res.stderr and victim in res.stderr
    res = _cli("select", str(ds), "--trust-modified")
    assert res.returncode == 0, res.stderr
    assert "--trust-modified" in res.stderr and victim in res.stderr
