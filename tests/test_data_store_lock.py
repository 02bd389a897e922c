"""The writer's lock of a data set folder (perfmodel.data.lock): held by another process -> refused naming it;
left by a process killed -9 -> taken over with a note; merge and calibrate --attach take it too."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from perfmodel.data import Dataset, merge, write_dataset
from perfmodel.data.lock import LOCK_FILE, DatasetLock, lock_holder
from perfmodel.errors import PerfmodelError

REPO = Path(__file__).resolve().parents[1]

HOLD = textwrap.dedent("""
    import sys, time
    from perfmodel.data import Dataset
    ds = Dataset.create(sys.argv[1], {"board": "test"}, exist_ok=True)
    print("locked", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def tiny_records():
    from perfmodel.data import records_from_readings
    from perfmodel.readings import Reading

    return records_from_readings([Reading("latency_ms", 10.0, "ms", "perf_counter", "real")], run_id="r",
                                 cell_id="c1", board="test", framework="litert", network="squeezenet1_1",
                                 threads=1, workload="litert/squeezenet1_1", phase="image", repeat=0,
                                 image_index=0, t_start_s=0.0, t_end_s=0.01)


@pytest.fixture
def holder(tmp_path):
    """A real process holding the data set at tmp_path/ds (killed -9 at the end)."""
    out = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield out, proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_naming_the_holder(holder):
    out, proc = holder
    with pytest.raises(PerfmodelError) as exc:
        Dataset.create(out, {"board": "test"}, exist_ok=True)
    msg = str(exc.value)
    assert f"pid {proc.pid} on host {socket.gethostname()}, since " in msg and "being written" in msg
    assert lock_holder(out)["pid"] == proc.pid


def test_the_lock_of_a_process_killed_9_is_taken_over_with_a_note(holder, caplog):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_holder(out) is None  # the kernel dropped the OS lock with the process
    with caplog.at_level(logging.WARNING, logger="perfmodel.data"):
        ds = Dataset.create(out, {"board": "test"}, exist_ok=True)
    try:
        assert f"taking over the stale lock of pid {proc.pid} on host {socket.gethostname()}" in caplog.text
        assert "which no longer runs" in caplog.text
        assert lock_holder(out)["pid"] == os.getpid()
    finally:
        ds.release()
    assert lock_holder(out) is None


def test_handles_of_one_process_share_its_lock_and_the_last_release_frees_it(tmp_path):
    out = tmp_path / "ds"
    ds = Dataset.create(out, {"board": "test"})
    again = Dataset.create(out, {"board": "test"}, exist_ok=True)  # one writer = one process
    ds.release()
    assert lock_holder(out)["pid"] == os.getpid()
    again.release()
    assert lock_holder(out) is None


def test_merge_into_a_locked_folder_is_refused(tmp_path, tiny_records):
    src = tmp_path / "src"
    write_dataset(src, tiny_records, {"board": "test"})
    out = tmp_path / "merged"
    lock = DatasetLock.acquire(out, what="perfmodel collect (test)")
    try:
        with pytest.raises(PerfmodelError, match=r"being written by another perfmodel process: pid \d+"):
            merge([src], out)
    finally:
        lock.release()
    merged = merge([src], out)  # the free lock file of a writer that wrote nothing is no obstacle
    assert (out / "dataset.json").is_file() and lock_holder(out) is None
    assert merged.done_cells() == Dataset.open(src).done_cells()
    assert not (out / LOCK_FILE).exists() or (out / LOCK_FILE).read_text() == ""


def test_attach_calibration_waits_for_no_one(holder):
    from perfmodel.data import attach_calibration

    out, _ = holder
    cal = {"version": 1, "stream_gbps": {"1": 10.0}, "gemm_gflops": {"1": 50.0}, "errors": {}}
    with pytest.raises(PerfmodelError, match="being written by another perfmodel process"):
        attach_calibration(out, cal, "test")
