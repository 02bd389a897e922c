"""Timing loop and statistics (on a fake runner with a fake clock), and the ``perfmodel bench`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.runners.timing import CellResult, TimingStats, time_runner

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


class FakeRunner:
    """Pre-processing and inference take scripted times on a fake clock."""

    framework, network, threads, input_size, layout = "fake", "fakenet", 3, 8, "NHWC"

    def __init__(self, clock: FakeClock, pre_ms, inf_ms) -> None:
        self.clock, self.pre_ms, self.inf_ms = clock, list(pre_ms), list(inf_ms)
        self.calls = 0
        self.seen: list[bytes] = []

    def preprocess(self, data: bytes, name: str = "") -> np.ndarray:
        self.seen.append(data)
        self.clock.now += int(self.pre_ms[self.calls % len(self.pre_ms)] * 1e6)
        return np.zeros((1, 8, 8, 3), np.float32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.clock.now += int(self.inf_ms[self.calls % len(self.inf_ms)] * 1e6)
        self.calls += 1
        return np.zeros(1000, np.float32)

    def details(self) -> dict:
        return {"fake": True}


def _images(tmp_path: Path, n: int = 3) -> list[Path]:
    paths = []
    for i in range(n):
        p = tmp_path / f"im{i}.jpg"
        p.write_bytes(bytes([i]) * 10)
        paths.append(p)
    return paths


def test_stats_match_numpy():
    x = [4.0, 1.0, 3.0, 2.0, 10.0]
    s = TimingStats.from_samples(x)
    assert s.count == 5
    assert (s.min_ms, s.max_ms, s.median_ms, s.mean_ms) == (1.0, 10.0, 3.0, 4.0)
    assert s.p90_ms == pytest.approx(np.percentile(x, 90)) == pytest.approx(7.6)
    assert s.p99_ms == pytest.approx(9.76)
    assert s.std_ms == pytest.approx(np.std(x, ddof=1))
    assert s.images_per_s == pytest.approx(250.0)
    one = TimingStats.from_samples([2.0])
    assert one.std_ms == 0.0 and one.p99_ms == 2.0 and one.images_per_s == 500.0
    with pytest.raises(ValueError):
        TimingStats.from_samples([])


def test_time_runner_times_read_preprocess_and_inference(tmp_path):
    clock = FakeClock()
    pre = [1.0, 2.0, 3.0]
    inf = [10.0, 20.0, 30.0, 40.0]
    runner = FakeRunner(clock, pre, inf)
    images = _images(tmp_path)
    res = time_runner(runner, images, warmup=2, count=10, min_time_s=0.0, clock=clock)
    assert runner.calls == 12  # 2 warm-up + 10 timed
    # timed images are calls 2..11 of the scripted durations
    exp_pre = [pre[i % 3] for i in range(2, 12)]
    exp_inf = [inf[i % 4] for i in range(2, 12)]
    exp_lat = [a + b for a, b in zip(exp_pre, exp_inf)]
    assert res.latency_ms == pytest.approx(exp_lat)
    assert res.preprocess_ms == pytest.approx(exp_pre)
    assert res.inference_ms == pytest.approx(exp_inf)
    assert res.latency == TimingStats.from_samples(exp_lat)
    assert res.latency.mean_ms == pytest.approx(np.mean(exp_lat))
    assert res.latency.images_per_s == pytest.approx(1000 / np.mean(exp_lat))
    assert res.wall_s == pytest.approx(sum(exp_lat) / 1000)
    # timed images start again at the first image (whatever the warm-up), cycle in order, and are read
    # from disk each time
    assert runner.seen[2:6] == [images[0].read_bytes(), images[1].read_bytes(), images[2].read_bytes(),
                                images[0].read_bytes()]
    assert res.images[:4] == ["im0.jpg", "im1.jpg", "im2.jpg", "im0.jpg"]
    assert (res.framework, res.network, res.threads, res.input_size, res.warmup) == ("fake", "fakenet", 3, 8, 2)
    assert res.details == {"fake": True}


def test_min_time_extends_count(tmp_path):
    clock = FakeClock()
    runner = FakeRunner(clock, [1.0], [9.0])  # 10 ms per image
    res = time_runner(runner, _images(tmp_path), warmup=0, count=3, min_time_s=0.1, clock=clock)
    assert res.latency.count == 10  # 100 ms of 10 ms images > 3 images
    res = time_runner(runner, _images(tmp_path), warmup=0, count=30, min_time_s=0.1, clock=clock)
    assert res.latency.count == 30  # count is longer than min-time
    res = time_runner(runner, _images(tmp_path), warmup=0, count=30, min_time_s=10, max_time_s=0.05,
                      clock=clock)
    assert res.latency.count == 5  # max-time caps both


def test_progress_and_on_image_hooks(tmp_path):
    clock = FakeClock()
    seen, prog = [], []
    time_runner(FakeRunner(clock, [1.0], [1.0]), _images(tmp_path, 2), warmup=1, count=4, min_time_s=0,
                clock=clock, progress=lambda d, t: prog.append((d, t)),
                on_image=lambda p, t0, t2: seen.append((Path(p).name, t2 - t0)))
    assert prog == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert seen == [("im0.jpg", 2_000_000), ("im1.jpg", 2_000_000), ("im0.jpg", 2_000_000), ("im1.jpg", 2_000_000)]


@pytest.mark.parametrize("kwargs, msg", [
    ({"warmup": -1}, "warmup"), ({"count": 0}, "count"), ({"min_time_s": -1.0}, "min-time"),
    ({"min_time_s": float("nan")}, "min-time"), ({"max_time_s": 0}, "max-time"),
])
def test_bad_timing_parameters(kwargs, msg, tmp_path):
    clock = FakeClock()
    with pytest.raises(PerfmodelError, match=msg):
        time_runner(FakeRunner(clock, [1], [1]), _images(tmp_path), clock=clock, **kwargs)
    with pytest.raises(PerfmodelError, match="no images"):
        time_runner(FakeRunner(clock, [1], [1]), [], clock=clock)


def test_missing_image_is_a_clear_error(tmp_path):
    from perfmodel.errors import InputFileError

    clock = FakeClock()
    with pytest.raises(InputFileError, match="not found"):
        time_runner(FakeRunner(clock, [1], [1]), [tmp_path / "gone.jpg"], clock=clock)


def test_cell_result_round_trip(tmp_path):
    clock = FakeClock()
    res = time_runner(FakeRunner(clock, [1.0, 2.0], [5.0]), _images(tmp_path), warmup=0, count=4,
                      min_time_s=0, clock=clock)
    state = json.loads(json.dumps(res.to_state()))
    assert CellResult.from_state(state) == res
    flat = res.to_dict()
    assert flat["count"] == 4 and flat["mean_ms"] == res.latency.mean_ms and "samples" not in flat
    assert res.to_dict(samples=True)["samples"]["latency_ms"] == res.latency_ms


def test_run_cell_and_isolated_cell_time_a_real_runner(tmp_path):
    """The same cell in this process and in a worker process gives a complete result."""
    from perfmodel.images import write_synthetic_images
    from perfmodel.runners import run_cell, time_isolated

    imgs = write_synthetic_images(tmp_path / "img", 2)
    local = run_cell("onnxruntime", "squeezenet1_1", 1, imgs, warmup=1, count=3, min_time_s=0)
    remote = time_isolated("onnxruntime", "squeezenet1_1", 1, imgs, warmup=1, count=3, min_time_s=0)
    for res in (local, remote):
        assert res.latency.count == 3 and res.latency.min_ms > 0
        assert res.inference.mean_ms > 0 and res.preprocess.mean_ms > 0
        assert res.latency.mean_ms == pytest.approx(res.preprocess.mean_ms + res.inference.mean_ms)
        assert res.details["effective"]["intra_op_num_threads"] == 1
        assert res.input_size == 227
    with pytest.raises(PerfmodelError, match="unknown framework"):
        time_isolated("nosuch", "squeezenet1_1", 1, imgs, count=1)


def test_an_unexpected_error_in_the_isolated_worker_is_typed_not_a_traceback_dump():
    """The worker protocol (perfmodel.workerproto): an exception that is not a PerfmodelError comes back as
    its type and message with the worker's exit code, not as the last lines of a traceback."""
    from perfmodel.runners.worker import _call, _request
    from perfmodel.workerproto import WorkerFailed

    with pytest.raises(WorkerFailed) as exc:
        _call(_request("nope", "onnxruntime", "squeezenet1_1", 1, None, None), 300)
    assert str(exc.value) == "onnxruntime squeezenet1_1 threads=1: ValueError: unknown worker action 'nope'"
    assert exc.value.exit_code == 1 and exc.value.user is False


# ---------------------------------------------------------------------------------------------- CLI


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfmodel", "bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def two_images(tmp_path_factory) -> Path:
    from perfmodel.images import write_synthetic_images

    folder = tmp_path_factory.mktemp("bench_images")
    write_synthetic_images(folder, 2)
    return folder


@pytest.mark.parametrize("isolate", ["--isolate", "--no-isolate"])
def test_cli_json(two_images, isolate):
    proc = _cli("-f", "onnxruntime", "-f", "litert", "-t", "1", "--images", str(two_images), "--warmup", "1",
                "--count", "3", "--min-time", "0", isolate, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["images"]["count"] == 2 and doc["isolate"] == (isolate == "--isolate")
    cells = doc["cells"]
    assert [(c["framework"], c["network"], c["threads"]) for c in cells] == [
        ("onnxruntime", "squeezenet1_1", 1), ("litert", "squeezenet1_1", 1)]
    for c in cells:
        assert c["count"] >= 3
        assert 0 < c["min_ms"] <= c["median_ms"] <= c["p90_ms"] <= c["p99_ms"] <= c["max_ms"]
        assert c["images_per_s"] == pytest.approx(1000 / c["mean_ms"])
        assert c["details"]["versions"]


def test_cli_table(two_images):
    proc = _cli("-f", "opencv", "--images", str(two_images), "--warmup", "0", "--count", "2", "--min-time", "0",
                "--no-isolate")
    assert proc.returncode == 0, proc.stderr
    for word in ("opencv", "squeezenet1_1", "median", "p99", "img/s"):
        assert word in proc.stdout


@pytest.mark.parametrize("args, msg", [
    (["-f", "nosuch"], "unknown framework 'nosuch'; valid frameworks: litert, onnxruntime, opencv, tensorflow"),
    (["-n", "vgg19"], "unknown network 'vgg19'"),
    (["-t", "0"], "threads must be"),
    (["--images", "/nonexistent/folder"], "does not exist"),
    (["--model", "x.onnx"], "exactly one --framework"),
    (["--opencv-engine", "fast"], "unknown OpenCV engine 'fast'"),
])
def test_cli_user_errors_exit_2_without_traceback(args, msg):
    proc = _cli(*args)
    assert proc.returncode == 2
    assert msg in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_cli_failed_cell_is_reported(tmp_path, two_images):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    proc = _cli("-f", "onnxruntime", "--model", str(bad), "--images", str(two_images), "--count", "1",
                "--min-time", "0", "--json")
    assert proc.returncode == 2
    assert "cannot load onnxruntime model" in proc.stderr and "Traceback" not in proc.stderr
    assert "error" in json.loads(proc.stdout)["cells"][0]
