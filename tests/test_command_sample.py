"""Long-run throughput of any command from a quick sample of its progress lines (perfmodel.collect.lines,
perfmodel predict -- CMD without --model, perfmodel trace --command), on tiny python -c commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perfmodel.collect.lines import sample_command, trace_command, trace_intervals
from perfmodel.errors import PerfmodelError
from perfmodel.procs import CommandTimeout

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TRACE = str(REPO / "datasets" / "traces" / "squeezenet1_1")


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


# prints one line per "image" (no flush: perfmodel sets PYTHONUNBUFFERED for the command)
LOOP = py("""
    import time
    i = 0
    while True:
        time.sleep(0.02)
        print('image', i)
        i += 1
""")


def pid_code(pid_file: Path, body: str) -> list[str]:
    """A command that writes its own pid and a child's pid to ``pid_file``, then runs ``body``."""
    head = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n")
    return [PY, "-c", head + textwrap.dedent(body).strip() + "\n"]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_all_ended(pid_file: Path) -> None:
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10  # an orphaned child is reaped by init asynchronously
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), pids


# -- the sample ------------------------------------------------------------------------------------

def test_sample_by_images_skips_the_warm_up_and_ends_the_command(tmp_path):
    pf = tmp_path / "pids"
    s = sample_command(pid_code(pf, """
        i = 0
        while True:
            time.sleep(0.02)
            print('image', i)
            i += 1
    """), images=5)
    assert s.images == 5 and s.stopped_by == "images"
    assert s.warmup_lines >= 2 and s.warmup_s >= 0.5  # the first 2 lines and 0.5 s are not counted
    # each image sleeps 20 ms: at most 50 fps, up to the jitter of when the lines reach us (measured
    # 50.0002 on a loaded machine); counting the warm-up or noise lines would give far more
    assert 0 < s.fps <= 50 * 1.1
    assert_all_ended(pf)  # the command and its child: the whole process group


def test_sample_by_seconds_stops_once_an_image_ends_past_the_time():
    s = sample_command(LOOP, seconds=0.5)
    assert s.stopped_by == "seconds" and s.elapsed_s >= 0.5 and s.images >= 2


def test_progress_regex_counts_only_matching_lines():
    noisy = py("""
        import time
        i = 0
        while True:
            for _ in range(20):
                print('log: noise')
            time.sleep(0.02)
            print('IMG', i)
            i += 1
    """)
    s = sample_command(noisy, images=5, regex=r"^IMG ")
    assert s.images == 5 and s.fps <= 50 * 1.1  # without the regex the 20 noise lines per image would count
    with pytest.raises(PerfmodelError, match="not a regular expression"):
        sample_command(noisy, images=5, regex="(")


def test_hung_command_is_ended_and_said(tmp_path):
    pf = tmp_path / "pids"
    with pytest.raises(CommandTimeout, match="no first progress line in time"):
        sample_command(pid_code(pf, "time.sleep(120)"), images=5, timeout=2)
    assert_all_ended(pf)


def test_command_hanging_after_a_few_lines_is_ended(tmp_path):
    pf = tmp_path / "pids"
    with pytest.raises(CommandTimeout, match="no progress line in time.*after 3 stdout line"):
        sample_command(pid_code(pf, "print(1); print(2); print(3); time.sleep(120)"), images=5, timeout=2)
    assert_all_ended(pf)


def test_failing_command_says_its_exit_code_and_stderr(tmp_path):
    pf = tmp_path / "pids"
    with pytest.raises(PerfmodelError, match=r"(?s)failed: exited with code 3 after 1 progress line.*stderr: boom"):
        sample_command(pid_code(pf, "print('image 0'); sys.stderr.write('boom\\n'); sys.exit(3)"),
                       images=5)
    assert_all_ended(pf)


def test_silent_command_is_refused():
    with pytest.raises(PerfmodelError, match="printed no progress line"):
        sample_command(py("import sys; sys.stderr.write('nothing to say')"), images=5)
    with pytest.raises(PerfmodelError, match="too few"):  # a few lines, then a clean exit: no sample
        sample_command(py("print(1); print(2)"), images=5)


def test_bad_sample_bounds_are_refused():
    with pytest.raises(PerfmodelError, match="at least 2 images"):
        sample_command(LOOP, images=1)
    with pytest.raises(PerfmodelError, match="seconds"):
        sample_command(LOOP, seconds=-1)
    with pytest.raises(PerfmodelError, match="cannot start"):
        sample_command(["/nonexistent/program"], images=3)


# -- traces of a command ---------------------------------------------------------------------------

def test_trace_intervals_of_a_command():
    iv, how = trace_intervals(LOOP, 1.0, 0.25)
    assert how == "duration" and len(iv) >= 4
    assert iv[0][0] == 0.0 and all(b > a and n >= 1 for a, b, n in iv)
    assert all(iv[k][1] == iv[k + 1][0] for k in range(len(iv) - 1))  # contiguous


def test_trace_of_a_failing_command_is_an_error():
    with pytest.raises(PerfmodelError, match="exited with code 4"):
        trace_intervals(py("print(1); import sys; sys.exit(4)"), 2.0, 0.5)


def test_trace_command_records_feed_the_long_run_ratio(tmp_path):
    from perfmodel.data import read_dataset
    from perfmodel.model.longrun import trace_ratios

    df, meta = trace_command(LOOP, 1.5, 0.25, out=tmp_path / "ds")
    assert meta["intervals"] >= 5 and meta["path"]
    t = trace_ratios(read_dataset(tmp_path / "ds"), window_s=0.5, skip_s=1.0)
    assert len(t) == 1 and t["framework"].iloc[0] == "command" and t["ratio"].iloc[0] > 0


# -- the CLI ---------------------------------------------------------------------------------------

def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([PY, "-m", "perfmodel", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_predict_command_without_model_json():
    r = cli("predict", "--json", "--images", "5", "--", *LOOP)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for k in ("long_run_fps", "lo", "hi", "sample_fps", "images", "estimator"):
        assert k in out
    assert out["images"] == 5 and out["lo"] <= out["long_run_fps"] <= out["hi"]
    assert "no --framework named" in out["estimator"] and "stdout progress lines" in out["estimator"]
    assert out["n_traces"] > 3  # pooled over the shipped datasets/traces* (more than datasets/traces' 3)


def test_predict_command_with_model_it_cannot_serve_prints_the_sample_and_one_line():
    r = cli("predict", "--model", str(REPO / "trained" / "throughput_reference.json"), "--traces", TRACE,
            "--images", "5", "--", *LOOP)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(l.strip().startswith("long-run estimate:") for l in lines)
    refused = [l for l in lines if "model: not applied:" in l]
    assert len(refused) == 1 and "--framework" in refused[0]
    assert "error" not in r.stderr


@pytest.mark.parametrize("code, message", [
    ("import time; time.sleep(60)", "hung"),
    ("print(1); import sys; sys.exit(5)", "exited with code 5"),
    ("pass", "printed no progress line"),
])
def test_predict_bad_commands_exit_non_zero_with_a_message(code, message):
    r = cli("predict", "--timeout", "2", "--images", "3", "--traces", TRACE, "--", PY, "-c", code)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_predict_without_model_needs_a_command():
    r = cli("predict", "--csv", "x.csv")
    assert r.returncode == 2 and "--model is needed" in r.stderr
    r = cli("predict", "--two-phase", "--traces", TRACE, "--", PY, "-c", "pass")
    assert r.returncode == 2 and "--load-command" in r.stderr


def test_predict_two_phase():
    full = "import time; time.sleep(0.3); [time.sleep(0.02) for _ in range(10)]"
    r = cli("predict", "--json", "--two-phase", "--images", "10", "--load-command",
            f"{PY} -c 'import time; time.sleep(0.3)'", "--traces", TRACE, "--", PY, "-c", full)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["estimator"].startswith("two-phase") and out["sample_fps"] > 0 and out["images"] == 10


def test_trace_command_cli_then_predict_from_its_trace(tmp_path):
    ds = tmp_path / "user-trace"
    import shlex

    # 11 s: the long-run part of a trace starts at 10 s (perfmodel.model.longrun.SKIP_S)
    r = cli("trace", "--command", shlex.join(LOOP), "--duration", "11", "-o", str(ds), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["intervals"]) >= 11
    r = cli("predict", "--json", "--images", "5", "--traces", str(ds), "--", *LOOP)
    assert r.returncode == 0, r.stderr
    assert str(ds) in json.loads(r.stdout)["traces_from"]
