"""A board farm on Dask distributed: a real scheduler and real board workers (subprocesses
``python -m perfmodel fleet ...`` on loopback) acting as boards. The campaign is tiny (ONNX Runtime x
SqueezeNet v1.1, threads 1, 3 images): the machine is small and shared. Every wait is bounded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perfmodel.cli.app import app
from perfmodel.collect.fleet import (VERSIONS_OVERRIDE_ENV, check_board_name, connect, fleet_boards, make_security,
                                     task_problem, version_differences)
from perfmodel.collect.spec import CampaignSpec
from perfmodel.data import Dataset, read_dataset
from perfmodel.errors import PerfmodelError

REPO = Path(__file__).resolve().parents[1]
CELL = "onnxruntime__squeezenet1_1__t1__r{r}__auto"
CAMPAIGN = ["--frameworks", "onnxruntime", "--networks", "squeezenet1_1", "--threads", "1", "--images", "3",
            "--warmup-images", "1", "--warmup-min-s", "0"]
runner = CliRunner()


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


class Procs:
    """The subprocesses a test module started (each in its own session, so that a worker's cell processes go
    with it when it is cleaned up)."""

    def __init__(self, folder: Path):
        self.folder, self.procs = folder, []

    def start(self, name: str, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.folder / f"{name}-{len(self.procs)}.log"
        p = subprocess.Popen([sys.executable, "-m", "perfmodel", "fleet", *args], stdout=subprocess.DEVNULL,
                             stderr=log.open("w"), env=_env(env), cwd=REPO, start_new_session=True)
        self.procs.append(p)
        return p, log

    def scheduler(self) -> str:
        p, log = self.start("scheduler", "scheduler", "--port", "0")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for line in log.read_text().splitlines():
                if line.startswith("scheduler at "):
                    return line.split()[-1]
            assert p.poll() is None, log.read_text()
            time.sleep(0.2)
        raise AssertionError(f"no scheduler address within 90 s:\n{log.read_text()}")

    def worker(self, address: str, board: str, env: dict | None = None) -> subprocess.Popen:
        p, log = self.start(f"worker-{board}", "worker", address, "--board", board, env=env)
        wait_for(lambda: board_state(address).get(board, {}).get("connected"), 120,
                 lambda: f"board {board} did not connect:\n{log.read_text()}", proc=p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)


def wait_for(pred, timeout_s: float, why, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(why() if callable(why) else why)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def board_state(address: str) -> dict:
    client = connect(address)
    try:
        return fleet_boards(client)
    finally:
        client.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    procs = Procs(tmp_path_factory.mktemp("fleet-logs"))
    try:
        address = procs.scheduler()
        procs.worker(address, "a")
        procs.worker(address, "b")
        yield address, procs
    finally:
        procs.stop_all()


@pytest.fixture(scope="module")
def two_boards(fleet, tmp_path_factory):
    """A campaign of two cells (repeats 2) on boards a and b, into one data set."""
    address, _ = fleet
    out = tmp_path_factory.mktemp("fleet-ds") / "ds"
    r = runner.invoke(app, ["collect", "--scheduler", address, "--boards", "a,b", "--out", str(out), *CAMPAIGN,
                            "--repeats", "2", "--json"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_a_campaign_lands_in_one_data_set_with_both_boards(fleet, two_boards):
    address, _ = fleet
    out, summary = two_boards
    assert summary["done"] == 4 and summary["failed"] == 0
    assert {b: c["done"] for b, c in summary["boards"].items()} == {"a": 2, "b": 2}
    df = read_dataset(out)
    assert sorted(df["board"].unique()) == ["a", "b"]
    ids = {f"{b}@{CELL.format(r=r)}" for b in "ab" for r in (0, 1)}
    assert set(df["cell_id"].unique()) == ids
    assert all((df.loc[df["cell_id"].str.startswith(f"{b}@"), "board"] == b).all() for b in "ab")
    ds = Dataset.open(out)
    assert set(ds.done_cells()) == ids
    boards = ds.metadata["fleet"]["boards"]
    assert set(boards) == {"a", "b"}
    assert all(boards[b]["system"].get("cpu_model") and boards[b]["versions"].get("onnxruntime") for b in "ab")
    sidecar = json.loads((out / "records" / f"a@{CELL.format(r=0)}.json").read_text())
    assert sidecar["board"] == "a" and sidecar["status"] == "done"
    # resume: nothing is measured again
    r = runner.invoke(app, ["collect", "--scheduler", address, "--all-boards", "--out", str(out), *CAMPAIGN,
                            "--repeats", "2", "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout)
    assert again["done"] == 0 and again["skipped"] == 4


def test_records_travel_as_parquet_not_pickle(two_boards):
    """A board may run another pandas than the client: records come back as Parquet bytes + JSON attrs."""
    import pandas.testing as pdt

    from perfmodel.collect.fleet import pack_records, unpack_records

    out, _ = two_boards
    df = read_dataset(out)
    df = df[df["cell_id"] == f"a@{CELL.format(r=0)}"].reset_index(drop=True)
    packed = pack_records(df, {"note": "kept", "n": 3})
    assert isinstance(packed["records_parquet"], bytes) and isinstance(packed["attrs"], str)
    back, attrs = unpack_records(packed)
    pdt.assert_frame_equal(back, df)
    assert attrs == {"note": "kept", "n": 3}


def test_fleet_status_lists_the_boards_and_what_they_measure(fleet):
    address, _ = fleet
    r = runner.invoke(app, ["fleet", "status", address, "--json"])
    assert r.exit_code == 0, r.output
    boards = json.loads(r.stdout)
    for b in "ab":
        assert boards[b]["connected"] and boards[b]["doing"] == []
        assert any(s["available"] for s in boards[b]["facts"]["counters"])
        assert "sensors" in boards[b]["facts"] and boards[b]["facts"]["system"]["cores_logical"] >= 1
    r = runner.invoke(app, ["fleet", "status", address])
    assert r.exit_code == 0 and "connected" in r.output


def test_cv_lobo_runs_on_the_fleet_data_set(two_boards):
    out, _ = two_boards
    r = runner.invoke(app, ["evaluate", str(out), "-t", "throughput_fps", "--cv", "lobo", "--features",
                            "task_clock_ms_per_image", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["results"]
    linear = next(x for x in rows if x["model"] == "linear")
    assert "board" in linear["scheme"] and linear["n"] == 4
    assert sorted(str(f["held_out"]) for f in linear["folds"]) == ["a", "b"]


def test_select_board_ranks_one_board(two_boards):
    out, _ = two_boards
    r = runner.invoke(app, ["select", str(out), "--board", "b", "--json"])
    assert r.exit_code == 0, r.output
    ranked = json.loads(r.stdout)["ranked"]
    assert ranked and {c["board"] for c in ranked} == {"b"}
    r = runner.invoke(app, ["select", str(out), "--board", "nope"])
    assert isinstance(r.exception, PerfmodelError) and "its boards: a, b" in str(r.exception)


def test_a_board_with_other_framework_versions_is_refused(fleet, tmp_path):
    address, procs = fleet
    odd = procs.worker(address, "odd", env={VERSIONS_OVERRIDE_ENV: json.dumps({"onnxruntime": "0.0.1"})})
    try:
        out = tmp_path / "ds"
        r = runner.invoke(app, ["collect", "--scheduler", address, "--boards", "a,odd", "--out", str(out),
                                *CAMPAIGN])
        assert isinstance(r.exception, PerfmodelError), r.output
        assert "odd: onnxruntime" in str(r.exception) and "0.0.1 on the board" in str(r.exception)
        assert not out.exists()  # refused before anything was measured or created
    finally:
        odd.kill()
        odd.wait(timeout=30)


def test_a_second_worker_of_one_board_is_refused(fleet):
    address, _ = fleet
    r = subprocess.run([sys.executable, "-m", "perfmodel", "fleet", "worker", address, "--board", "a"],
                       capture_output=True, text=True, env=_env(), cwd=REPO, timeout=180)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "another worker is board 'a' already" in r.stderr


def test_a_board_runs_only_perfmodel_cell_tasks(fleet):
    from distributed import Client

    address, _ = fleet
    client = Client(address, timeout=30, set_as_default=False)
    try:
        for key in ("perfmodel-cell-forged", None):
            fut = client.submit(sum, [1, 2], key=key, resources={"board-a": 1}, pure=False)
            with pytest.raises(PermissionError, match="refused"):
                fut.result(timeout=60)
        with pytest.raises(Exception):
            client.run(os.getpid, workers=[board_state(address)["a"]["address"]])
    finally:
        client.close()


def test_kill_9_of_a_board_loses_no_finished_cell_and_the_rerun_completes_it(fleet, tmp_path):
    address, procs = fleet
    victim = procs.worker(address, "k")
    out = tmp_path / "ds"
    argv = [sys.executable, "-m", "perfmodel", "collect", "--scheduler", address, "--boards", "k,a", "--out",
            str(out), *CAMPAIGN, "--repeats", "3", "--board-timeout", "5", "--json"]
    collect = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                               cwd=REPO)
    try:
        def k_done():
            return [p for p in (out / "records").glob("k@*.json")
                    if json.loads(p.read_text()).get("status") == "done"] if (out / "records").is_dir() else []

        first = wait_for(k_done, 300, "board k finished no cell", proc=collect)
        os.kill(victim.pid, signal.SIGKILL)  # mid-campaign: k has two more cells to go
        stdout, stderr = collect.communicate(timeout=400)
    finally:
        if collect.poll() is None:
            collect.kill()
            collect.wait()
    assert collect.returncode == 1, stderr
    summary = json.loads(stdout)
    k, a = summary["boards"]["k"], summary["boards"]["a"]
    assert a == {"done": 3, "failed": 0, "skipped": 0, "interrupted": 0}  # the other board lost nothing
    assert k["done"] >= 1 and k["failed"] == 3 - k["done"]
    assert all("left the scheduler" in c["reason"] for c in summary["cells"] if c["status"] == "failed")
    ds = Dataset.open(out)
    done_before = set(ds.done_cells())
    kept = {p.name: p.read_bytes() for p in (out / "records").glob("*.parquet")}
    assert first[0].stem in done_before and len(done_before) == 3 + k["done"]

    gone = board_state(address)["k"]  # fleet status lists the lost board, not connected, with its facts
    assert gone["connected"] is False and gone["facts"]["board"] == "k"
    procs.worker(address, "k")
    r = runner.invoke(app, ["collect", "--scheduler", address, "--boards", "k,a", "--out", str(out), *CAMPAIGN,
                            "--repeats", "3", "--board-timeout", "60", "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout)
    assert again["done"] == 3 - k["done"] and again["skipped"] == len(done_before)  # only the missing cells
    assert len(Dataset.open(out).done_cells()) == 6
    for name, data in kept.items():  # finished cells are untouched
        assert (out / "records" / name).read_bytes() == data
    assert sorted(read_dataset(out)["board"].unique()) == ["a", "k"]


def test_a_board_that_returns_in_time_gets_its_cell_again(fleet, tmp_path):
    """kill -9 of a board mid-campaign, the board rejoins before --board-timeout: Dask keeps its cells waiting for
    a worker with its resource, and the campaign finishes without a failure."""
    address, procs = fleet
    victim = procs.worker(address, "r")
    out = tmp_path / "ds"
    argv = [sys.executable, "-m", "perfmodel", "collect", "--scheduler", address, "--boards", "r", "--out",
            str(out), *CAMPAIGN, "--repeats", "2", "--board-timeout", "600", "--json"]
    collect = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                               cwd=REPO)
    try:
        wait_for(lambda: (out / "records").is_dir() and any((out / "records").glob("r@*.parquet")), 300,
                 "board r finished no cell", proc=collect)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        wait_for(lambda: not board_state(address)["r"]["connected"], 120, "the scheduler still lists board r")
        procs.worker(address, "r")
        stdout, stderr = collect.communicate(timeout=400)
    finally:
        if collect.poll() is None:
            collect.kill()
            collect.wait()
    assert collect.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["boards"]["r"]["done"] == 2 and summary["failed"] == 0
    assert len(Dataset.open(out).done_cells()) == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl (to make the test certificates) not found")
def test_tls_fleet_refuses_a_client_without_certificates(tmp_path):
    """Scheduler, board and status over mutual TLS (Dask's Security, certificates signed by a test CA); a
    client without certificates cannot talk to the scheduler."""
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=perfmodel-test-ca")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj",
        "/CN=perfmodel-node")
    ssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "node.pem", "-days", "1")
    tls = ["--tls-ca-file", str(tmp_path / "ca.pem"), "--tls-cert", str(tmp_path / "node.pem"), "--tls-key",
           str(tmp_path / "node.key")]
    procs = Procs(tmp_path)
    try:
        p, log = procs.start("scheduler", "scheduler", "--port", "0", *tls)
        address = wait_for(lambda: next((ln.split()[-1] for ln in log.read_text().splitlines()
                                         if ln.startswith("scheduler at ")), None), 90,
                           lambda: log.read_text(), proc=p)
        assert address.startswith("tls://127.0.0.1:")
        w, wlog = procs.start("worker-t", "worker", address, "--board", "t", *tls)
        security = make_security(*tls[1::2])

        def seen():
            client = connect(address, security)
            try:
                return fleet_boards(client).get("t", {}).get("connected")
            finally:
                client.close()

        wait_for(seen, 120, lambda: wlog.read_text(), proc=w)
        r = runner.invoke(app, ["fleet", "status", address, *tls, "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["t"]["connected"], r.output
        with pytest.raises(PerfmodelError, match="cannot reach"):
            connect(address.replace("tls://", "tcp://"), None, timeout_s=5)
    finally:
        procs.stop_all()


# ---- no cluster ---------------------------------------------------------------------------------


def test_board_names_tasks_tls_and_versions_are_checked(tmp_path):
    assert check_board_name("rpi3-a.lab") == "rpi3-a.lab"
    for bad in ("", "-a", "a_b", "a@b", "x" * 64):
        with pytest.raises(PerfmodelError):
            check_board_name(bad)
    assert "only perfmodel cell tasks" in task_problem("sum-123", None)
    assert "does not call" in task_problem("perfmodel-cell-x", object())
    with pytest.raises(PerfmodelError, match="all three"):
        make_security(str(tmp_path / "ca.pem"), None, None)
    assert make_security(None, None, None) is None
    spec = CampaignSpec(frameworks=["onnxruntime", "litert"])
    diffs = version_differences(spec, {"onnxruntime": "1.32.0", "ai-edge-litert": "2.3.0", "perfmodel": "0.1.0"},
                                {"onnxruntime": "1.19.2", "ai-edge-litert": "2.3.0", "perfmodel": "0.1.0"})
    assert diffs == ["onnxruntime 1.32.0 here, 1.19.2 on the board"]


def test_fleet_options_need_a_scheduler(tmp_path):
    r = runner.invoke(app, ["collect", "--out", str(tmp_path / "ds"), "--boards", "a", *CAMPAIGN])
    assert isinstance(r.exception, PerfmodelError) and "--boards need(s) --scheduler" in str(r.exception)
    for extra, says in ((["--command", "true"], "--command does not apply"),
                        (["--no-calibrate"], "does not apply to --scheduler")):
        r = runner.invoke(app, ["collect", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "ds"),
                                *extra])
        assert isinstance(r.exception, PerfmodelError) and says in str(r.exception), r.output
    assert not (tmp_path / "ds").exists()


def test_a_cell_process_ends_with_its_killed_board(tmp_path):
    """A board's worker sets PERFMODEL_DIE_WITH_PARENT: its cell process (here one that would sleep 10 min) is
    killed by the kernel when the worker is killed, so a cell re-run on the board's return overlaps nothing."""
    ready = tmp_path / "ready"
    child = ("import pathlib, time; from perfmodel.collect.worker import die_with_parent; die_with_parent(); "
             f"pathlib.Path({str(ready)!r}).write_text('x'); time.sleep(600)")
    parent = ("import os, subprocess, sys, time; os.environ['PERFMODEL_DIE_WITH_PARENT'] = str(os.getpid()); "
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}]); print(p.pid, flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    try:
        kid = int(proc.stdout.readline())
        wait_for(ready.exists, 60, "the child did not start")
        assert _ppid(kid) == proc.pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(lambda: not group_alive(proc.pid), 120, "the child outlived its killed parent")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_fleet_without_dask_says_how_to_install_it(monkeypatch):
    """On an install without the fleet extra (README command 1), the fleet commands refuse with the install
    command instead of a ModuleNotFoundError traceback."""
    import importlib.util

    from perfmodel.collect import fleet
    from perfmodel.errors import PerfmodelError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    for call in (lambda: fleet.make_security(None, None, None), lambda: fleet.connect("tcp://127.0.0.1:1")):
        with pytest.raises(PerfmodelError, match=r"needs Dask distributed.*\[fleet\]"):
            call()


def test_a_result_lost_with_its_board_leaves_the_cell_pending_not_a_hang():
    """A board killed between finishing a cell and the parent fetching its result takes the result with it; Dask
    puts the task back, waiting for that board. The fetch is bounded, and the cell stays pending (so the board
    timeout covers it) instead of the campaign waiting forever (seen once under load in the kill -9 test)."""
    from perfmodel.collect import fleet as F

    class LostResult:  # a future that finished, whose result no longer exists anywhere
        status = "finished"

        def result(self, timeout=None):
            assert timeout == F.GATHER_TIMEOUT_S
            raise TimeoutError

    spec = CampaignSpec(frameworks=["onnxruntime"], networks=["squeezenet1_1"], threads=[1])
    cell = spec.cells()[0]
    assert F._take(None, LostResult(), "k", "k@x", cell, spec, "run", {}, F.FleetResult("ds", "run")) is None
