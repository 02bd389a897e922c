"""What ``perfmodel doctor`` reports: frameworks importable (each in a fresh interpreter, in parallel),
counter and sensor sources, system facts, installed vs lock vs reference versions."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.readings import json_safe

#: framework -> (module imported in a fresh interpreter, expression giving its version)
FRAMEWORK_IMPORTS: dict[str, tuple[str, str]] = {
    "tensorflow": ("tensorflow", "tensorflow.__version__"),
    "litert": ("ai_edge_litert.interpreter", "__import__('importlib.metadata').metadata.version('ai-edge-litert')"),
    "onnxruntime": ("onnxruntime", "onnxruntime.__version__"),
    "opencv": ("cv2", "cv2.__version__"),
}
#: seconds one framework import may take (they run in parallel)
IMPORT_TIMEOUT_S = 14.0


def _start_imports() -> dict[str, subprocess.Popen | str]:
    procs: dict[str, subprocess.Popen | str] = {}
    for fw, (module, version) in FRAMEWORK_IMPORTS.items():
        code = f"import {module}; import {module.split('.')[0]}; print({version})"
        try:
            procs[fw] = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True,
                                         env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        except OSError as exc:
            procs[fw] = f"cannot start {sys.executable}: {exc}"
    return procs


def _finish_imports(procs: dict[str, subprocess.Popen | str], deadline: float) -> list[dict[str, Any]]:
    import time

    out = []
    for fw, p in procs.items():
        module = FRAMEWORK_IMPORTS[fw][0]
        row: dict[str, Any] = {"framework": fw, "module": module, "importable": False, "version": None}
        if isinstance(p, str):
            row["reason"] = p
            out.append(row)
            continue
        try:
            stdout, stderr = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            row["importable"] = None
            row["reason"] = f"import did not finish within {IMPORT_TIMEOUT_S:.0f} s (busy machine?); unknown"
            out.append(row)
            continue
        if p.returncode == 0:
            row.update(importable=True, version=stdout.strip().splitlines()[-1] if stdout.strip() else None,
                       reason="ok")
        else:
            lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit status {p.returncode}"
            row["reason"] = f"import {module} fails: {last[:200]}"
        out.append(row)
    return out


def version_report() -> dict[str, Any]:
    """Installed vs lock vs reference data set versions, and the lock's differences from what is installed."""
    from perfmodel.versions import checkout_root, lock_differences, lock_path, version_rows

    ref = checkout_root() / "datasets" / "reference"
    ref_meta = None
    if (ref / "dataset.json").is_file():
        try:
            from perfmodel.data import dataset_metadata

            ref_meta, _ = dataset_metadata(ref)
        except Exception:  # noqa: BLE001 - doctor reports, it does not crash
            ref_meta = None
    lock = lock_path()
    counts = None
    if ref_meta is not None:
        from perfmodel.versions import FRAMEWORK_LIBRARY, counts_applicability

        counts = counts_applicability(ref_meta, list(FRAMEWORK_LIBRARY)).describe()
    return {"rows": version_rows(ref_meta), "lock": str(lock) if lock else None,
            "reference": str(ref) if ref_meta is not None else None,
            "lock_differences": lock_differences() if lock else [], "reference_counts": counts}


def gather() -> dict[str, Any]:
    """Everything ``perfmodel doctor`` reports, as a JSON-able dict."""
    import time

    from perfmodel.sysinfo import library_versions, system_info

    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    procs = _start_imports()
    try:
        report: dict[str, Any] = {"system": system_info(), "libraries": library_versions(),
                                  "versions": version_report()}
        try:
            from perfmodel.counters import available_sources

            report["counters"] = available_sources()
        except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
            report["counters"] = [{"name": "counters", "available": False,
                                   "reason": f"{type(exc).__name__}: {exc}", "events": []}]
        try:
            from perfmodel.sensors import discover, read_sensors

            report["sensors"] = discover()
            report["sensor_readings"] = {k: r.to_dict() for k, r in read_sensors().items()}
        except Exception as exc:  # noqa: BLE001
            report["sensors"] = [{"kind": "sensors", "name": "sensors", "source": "none", "available": False,
                                  "reason": f"{type(exc).__name__}: {exc}", "path_or_command": ""}]
            report["sensor_readings"] = {}
    finally:
        frameworks = _finish_imports(procs, deadline)
    report["frameworks"] = frameworks
    return json_safe(report)


@dataclass
class LockCheck:
    """The installed versions against the lock file (``path`` None: no lock file found)."""

    path: Path | None
    differences: list[str] = field(default_factory=list)
    pins: int = 0


def check_lock() -> LockCheck:
    """Compare the installed versions with ``requirements.lock``."""
    from perfmodel.versions import lock_differences, lock_path, read_lock

    path = lock_path()
    diffs = lock_differences()
    return LockCheck(path, diffs, 0 if diffs else len(read_lock(path)))
