"""One writer per data set, with real processes: a second ``perfmodel collect`` into a folder another one is
writing is refused naming the holder; the workers hold the data set too and die with a parent killed -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfmodel.data.lock import LOCK_FILE, lock_holder

REPO = Path(__file__).resolve().parents[1]
LONG = ["collect", "--frameworks", "onnxruntime", "--networks", "squeezenet1_1", "--threads", "1", "--images", "5000",
        "--warmup-images", "0", "--warmup-min-s", "0", "--counters", "software", "--no-calibrate", "--json"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "perfmodel", *LONG, "--out", str(out)], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` and that run the collect worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"perfmodel.collect.worker" in cmd:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(what, deadline_s: float = 120.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    return what()


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_second_collect_is_refused_naming_the_first_and_the_worker_holds_the_lock(tmp_path, squeezenet_exports):
    out = tmp_path / "ds"
    first = _start(out)
    workers: list[int] = []
    try:
        workers = _wait(lambda: _children(first.pid))
        assert workers, "the first collect never started its worker"
        # the worker holds the data set's lock too (an orphan would keep a resume out)
        lock = str(out / LOCK_FILE)
        fds = [os.readlink(f"/proc/{workers[0]}/fd/{fd}") for fd in os.listdir(f"/proc/{workers[0]}/fd")]
        assert lock in fds
        second = subprocess.run([sys.executable, "-m", "perfmodel", *LONG, "--images", "3", "--out", str(out)],
                                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        msg = second.stderr
        assert "being written by another perfmodel process" in msg and "Traceback" not in msg
        assert f"pid {first.pid} on host {socket.gethostname()}, since " in msg
        assert first.poll() is None  # the first one goes on
    finally:
        _kill([first.pid, *workers])
        first.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_collect_parent_ends_its_worker_and_frees_the_data_set(tmp_path, squeezenet_exports):
    out = tmp_path / "ds"
    parent = _start(out)
    workers: list[int] = []
    try:
        workers = _wait(lambda: _children(parent.pid))
        assert workers, "collect never started its worker"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        gone = _wait(lambda: not any(_alive(w) for w in workers), deadline_s=30.0)
        assert gone, f"worker(s) {workers} still running after their parent was killed"
        assert lock_holder(out) is None  # nobody holds the data set: a resume may start
    finally:
        _kill([parent.pid, *workers])
        parent.wait()
