"""Framework log noise goes to the run's log file, not the terminal; --verbose shows it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# an export whose build writes the way TensorFlow / absl / tf2onnx do: C-level writes to fd 2, Python prints
NOISY_EXPORT = """
import importlib, os, sys
ex = importlib.import_module("perfmodel.zoo.export")

def noisy(*args, **kwargs):
    os.write(2, b"I0000 00:00:1 cpu_feature_guard.cc:227] oneDNN custom operations are on\\n")
    print("WARNING:absl:Please consider providing the trackable_obj argument")
    print("keras warning", file=sys.stderr)
    return "model.onnx"

ex._export_locked = noisy
print("path", ex.export("squeezenet1_1", "onnx"), flush=True)
"""


def _run(code: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), "PERFMODEL_CACHE": str(tmp_path / "cache"),
            "PERFMODEL_LOG": str(tmp_path / "run.log"), **env}
    full.pop("PERFMODEL_VERBOSE", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_export_noise_goes_to_the_log_not_the_terminal(tmp_path: Path):
    proc = _run(NOISY_EXPORT, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "path model.onnx"  # the program's own output still reaches stdout
    assert "oneDNN" not in proc.stderr + proc.stdout and "keras warning" not in proc.stderr
    log = (tmp_path / "run.log").read_text()
    assert "export squeezenet1_1 onnx" in log
    assert "oneDNN custom operations" in log and "trackable_obj" in log and "keras warning" in log


def test_verbose_keeps_framework_output_on_the_terminal(tmp_path: Path):
    proc = _run(NOISY_EXPORT, tmp_path, PERFMODEL_VERBOSE="1")
    assert proc.returncode == 0, proc.stderr
    assert "oneDNN custom operations" in proc.stderr and "keras warning" in proc.stderr


def test_native_output_restored_after_an_error(tmp_path: Path):
    code = ("import os\nfrom perfmodel.runlog import native_output_to_log\ntry:\n"
            "    with native_output_to_log('x'):\n        os.write(2, b'inside\\n')\n        raise ValueError\n"
            "except ValueError:\n    pass\nos.write(2, b'after\\n')\n")
    proc = _run(code, tmp_path)
    assert proc.stderr == "after\n"
    assert "inside" in (tmp_path / "run.log").read_text()


def test_collect_dataset_folder_may_hold_only_its_log(tmp_path: Path):
    """The run's log is written into OUT/logs before the data set exists: creating it there still works."""
    from perfmodel.data.store import LOGS_DIR, Dataset

    (tmp_path / "ds" / LOGS_DIR).mkdir(parents=True)
    (tmp_path / "ds" / LOGS_DIR / "perfmodel.log").write_text("x")
    ds = Dataset.create(tmp_path / "ds", {"board": "b"}, campaign={})
    assert (ds.path / "dataset.json").is_file() if hasattr(ds, "path") else (tmp_path / "ds" / "dataset.json").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    import pytest

    from perfmodel.errors import PerfmodelError

    with pytest.raises(PerfmodelError, match="not empty and is not a perfmodel data set"):
        Dataset.create(tmp_path / "other", {"board": "b"}, campaign={})
