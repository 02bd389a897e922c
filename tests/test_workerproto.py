"""The worker protocol (perfmodel.workerproto) that the collect, runners and valgrind workers speak."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.workerproto import (PARENT_ENV, SINGLE_THREAD_ENV, WorkerCrashed, WorkerError, WorkerFailed,
                                   WorkerTimeout, checkout_root, run_worker, worker_env)

REPO = Path(__file__).resolve().parents[1]


def _worker(tmp_path: Path, body: str) -> list[str]:
    """argv of a worker whose handler is ``body`` (the request is ``req``), served by the protocol."""
    script = tmp_path / "worker.py"
    script.write_text("import os, sys, time\nfrom perfmodel.errors import PerfmodelError\n"
                      "from perfmodel.workerproto import report_progress, serve\n\n"
                      "def handler(req):\n" + textwrap.indent(textwrap.dedent(body), "    ") +
                      "\n\nsys.exit(serve(handler))\n")
    return [sys.executable, str(script)]


@pytest.fixture
def log(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "run.log"
    monkeypatch.setenv("PERFMODEL_LOG", str(path))
    monkeypatch.delenv("PERFMODEL_VERBOSE", raising=False)
    return path


def test_round_trip_result_progress_and_worker_metadata(tmp_path, log):
    argv = _worker(tmp_path, """
        for i in range(3):
            report_progress(i + 1, 3)
        return {"echo": req["x"], "workdir": req["workdir"], "pid": os.getpid()}
    """)
    seen = []
    reply = run_worker(argv, {"x": [1, "a"]}, workdir=tmp_path, label="cell A",
                       on_progress=lambda d, t: seen.append((d, t)))
    assert reply.result["echo"] == [1, "a"] and reply.result["workdir"] == str(tmp_path)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert reply.exit_code == 0
    assert reply.worker["pid"] == reply.result["pid"] != os.getpid()
    assert reply.worker["python"] == sys.version.split()[0]
    assert 0 < reply.worker["spawn_s"] < 60


def test_noise_on_stdout_and_stderr_goes_to_the_log_not_into_the_reply(tmp_path, log, capfd):
    argv = _worker(tmp_path, """
        print("banner from python", flush=True)
        os.write(1, b"C++ noise without a newline ")
        os.write(1, b'{"ok": false, "error": "a fake reply on stdout"}\\n')
        os.write(2, b"warning from C++\\n")
        return 42
    """)
    reply = run_worker(argv, {}, workdir=tmp_path, label="noisy")
    assert reply.result == 42
    text = log.read_text()
    assert "banner from python" in text and "C++ noise" in text and "warning from C++" in text
    assert "--- " in text and "worker noisy" in text  # the log's header names the worker
    out, err = capfd.readouterr()
    assert "banner" not in out + err and "warning from C++" not in out + err


def test_a_worker_that_crashes_is_a_typed_error_with_its_exit_code_and_last_output(tmp_path, log):
    argv = _worker(tmp_path, """
        sys.stderr.write("about to fail\\n")
        sys.stderr.flush()
        os._exit(3)
    """)
    with pytest.raises(WorkerCrashed) as exc:
        run_worker(argv, {}, workdir=tmp_path, label="cell B")
    assert exc.value.exit_code == 3 and exc.value.label == "cell B"
    assert exc.value.output[-1] == "about to fail"
    assert str(exc.value) == "cell B: worker process exited with code 3 without a result; its last output:\nabout to fail"
    assert isinstance(exc.value, PerfmodelError)


def test_a_worker_killed_by_a_signal(tmp_path, log):
    argv = _worker(tmp_path, """
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    with pytest.raises(WorkerCrashed, match="cell C: worker process was killed by signal 9 without a result") as exc:
        run_worker(argv, {}, workdir=tmp_path, label="cell C")
    assert exc.value.exit_code == -9


def test_errors_raised_in_the_worker_come_back_typed_not_as_a_traceback_dump(tmp_path, log):
    user = _worker(tmp_path, 'raise PerfmodelError("no such network: foo")')
    with pytest.raises(WorkerFailed) as exc:
        run_worker(user, {}, workdir=tmp_path, label="cell D")
    assert exc.value.user is True and exc.value.error == "no such network: foo" and exc.value.exit_code == 1
    assert str(exc.value) == "cell D: no such network: foo"

    bug = _worker(tmp_path, 'return {}["missing"]')
    with pytest.raises(WorkerFailed) as exc:
        run_worker(bug, {}, workdir=tmp_path, label="cell E")
    assert exc.value.user is False and exc.value.error == "KeyError: 'missing'"
    assert str(exc.value) == "cell E: KeyError: 'missing'" and "Traceback" not in str(exc.value)
    assert any("KeyError" in line for line in exc.value.traceback)


def test_a_hung_worker_is_killed_at_its_time_limit(tmp_path, log):
    pid_file = tmp_path / "pid"
    argv = _worker(tmp_path, f"""
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
    """)
    with pytest.raises(WorkerTimeout) as exc:
        run_worker(argv, {}, workdir=tmp_path, label="cell F", timeout_s=3)
    assert str(exc.value) == "cell F: worker did not finish within 3 s and was killed"
    assert exc.value.timeout_s == 3
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_a_worker_that_answers_by_its_exit_code_alone(tmp_path, log):
    ok = [sys.executable, "-c", "pass"]
    assert run_worker(ok, {}, workdir=tmp_path, label="own", reply_required=False).result is None
    with pytest.raises(WorkerCrashed, match="exited with code 0 without a result"):
        run_worker(ok, {}, workdir=tmp_path, label="own")
    quiet = [sys.executable, "-c", "import sys; sys.stderr.write('real reason\\n==12== tool chatter\\n'); sys.exit(5)"]
    with pytest.raises(WorkerCrashed) as exc:
        run_worker(quiet, {}, workdir=tmp_path, label="own", reply_required=False,
                   quiet=lambda line: line.startswith("=="))
    assert exc.value.output == ["real reason"] and exc.value.exit_code == 5


def test_reworded_keeps_the_type_and_fields(tmp_path, log):
    err = WorkerCrashed("x", 4, ["line"])
    new = err.reworded("callgrind worker failed (exit 4): line")
    assert type(new) is WorkerCrashed and isinstance(new, WorkerError)
    assert str(new) == "callgrind worker failed (exit 4): line" and new.exit_code == 4 and new.output == ["line"]
    assert str(err).startswith("x: worker process exited with code 4")


def test_worker_env(monkeypatch):
    root = checkout_root()
    assert Path(root) == REPO
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, "/elsewhere"]))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    env = worker_env({"X": "1"})
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]  # this checkout first, once
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2" and env["X"] == "1"
    one = worker_env(base={"OMP_NUM_THREADS": "8", "TF_CPP_MIN_LOG_LEVEL": "0"}, single_thread=True)
    assert {k: one[k] for k in SINGLE_THREAD_ENV} == SINGLE_THREAD_ENV
    assert one["TF_CPP_MIN_LOG_LEVEL"] == "0" and one["PYTHONPATH"] == root


def test_parent_pid_only_for_a_worker_that_must_die_with_its_parent(tmp_path, log):
    argv = _worker(tmp_path, 'return os.environ.get("PERFMODEL_PARENT_PID")')
    env = worker_env({PARENT_ENV: "1"})  # inherited from somewhere: not passed on
    assert run_worker(argv, {}, workdir=tmp_path, label="w", env=env).result is None
    assert run_worker(argv, {}, workdir=tmp_path, label="w", die_with_parent=True).result == str(os.getpid())
