"""The lock and the version checks: requirements.lock is read, differences from what is installed are named,
perfmodel doctor --check-lock fails on them (what .ci/run relies on)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from typer.testing import CliRunner

from perfmodel import versions
from perfmodel.cli.app import app

REPO = Path(__file__).resolve().parents[1]



def test_read_lock_takes_pins_and_skips_comments_markers_and_extras(tmp_path: Path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# made by ...\nNumPy==2.4.6\ntensorflow_cpu==2.21.0 ; platform_machine == 'x86_64'\n"
                    "\nrich[jupyter]==15.0.0  # a comment\nnot-a-pin>=1\n")
    assert versions.read_lock(lock) == {"numpy": "2.4.6", "tensorflow-cpu": "2.21.0", "rich": "15.0.0"}


def test_the_shipped_lock_pins_the_reference_releases():
    pins = versions.read_lock(REPO / "requirements.lock")
    assert pins["opencv-python-headless"] == "5.0.0.93" and pins["onnxruntime"] == "1.32.0"
    assert pins["tensorflow-cpu"] == "2.21.0" and pins["ai-edge-litert"] == "2.3.0" and pins["numpy"] == "2.4.6"


def test_lock_differences_name_each_distribution():
    numpy = metadata.version("numpy")
    diffs = versions.lock_differences({"numpy": numpy, "pandas": "0.0.1", "no-such-dist-xyz": "1.0"})
    assert diffs == [f"no-such-dist-xyz: not installed (lock 1.0)",
                     f"pandas: {metadata.version('pandas')} installed, lock 0.0.1"]
    assert versions.lock_differences({"numpy": numpy}) == []


def test_doctor_check_lock_fails_naming_the_difference(tmp_path: Path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"numpy=={metadata.version('numpy')}\npandas==0.0.1\n")
    monkeypatch.setattr(versions, "lock_path", lambda: lock)
    res = CliRunner().invoke(app, ["doctor", "--check-lock"])
    assert res.exit_code == 1
    assert "pandas: " in res.output and "lock 0.0.1" in res.output and "numpy" not in res.output.split("lock:")[0]
    lock.write_text(f"numpy=={metadata.version('numpy')}\n")
    res = CliRunner().invoke(app, ["doctor", "--check-lock"])
    assert res.exit_code == 0 and "all 1 pins" in res.output


def test_doctor_json_reports_installed_lock_and_reference_versions():
    from perfmodel.workflows.doctor import version_report

    rep = version_report()
    libs = {r["library"]: r for r in rep["rows"]}
    assert {"tensorflow", "ai-edge-litert", "onnxruntime", "opencv", "numpy"} <= set(libs)
    assert libs["opencv"]["lock"] == "5.0.0.93"
    if rep["reference"]:
        assert libs["opencv"]["reference"] == "5.0.0.93"
        assert rep["reference_counts"]
