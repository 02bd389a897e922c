"""Shared pytest fixtures.

The model cache: tests use the user's perfmodel cache (``perfmodel.paths.cache_dir()``, or
``PERFMODEL_CACHE`` when set) so that the exported SqueezeNet is built once per machine and reused by
every test session, not rebuilt per test. Tests that corrupt or delete cache entries must use their own
temporary cache (see ``tmp_model_cache``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def start_interruptible(argv: list[str], **kw):
    """``perfmodel`` (``python -m perfmodel ARGV``) in its own process group with SIGINT at its default, as a
    terminal starts it, so that :func:`interrupt` can send it a Ctrl-C."""
    import signal
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "perfmodel", *argv], cwd=kw.pop("cwd", REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def interrupt(proc, ready, timeout: float = 120.0) -> tuple[str, str]:
    """Wait until ``ready()`` is true (the process must still run), send SIGINT to its process group as a
    terminal's Ctrl-C does, and return its ``(stdout, stderr)``; the group is killed if anything fails."""
    import signal
    import time

    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def squeezenet_exports() -> dict[str, Path]:
    """SqueezeNet v1.1 (seed 0, 227x227) exported to all three formats, from the shared cache."""
    from perfmodel.zoo import FORMATS, export

    return {fmt: export("squeezenet1_1", fmt) for fmt in FORMATS}


@pytest.fixture(scope="session")
def squeezenet_keras():
    """The calibrated Keras SqueezeNet v1.1 (seed 0), built once per session."""
    from perfmodel.zoo import build_keras

    return build_keras("squeezenet1_1", seed=0)


@pytest.fixture
def tmp_model_cache(tmp_path, monkeypatch) -> Path:
    """An empty, private model cache for tests that break or delete cache entries."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PERFMODEL_CACHE", str(cache))
    return cache
