"""``perfmodel doctor``: what works on this machine, and why the rest does not."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import typer

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


def _version_report() -> dict[str, Any]:
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
                                  "versions": _version_report()}
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


def _yes(v: Any) -> str:
    return "[green]yes[/]" if v is True else ("[red]no[/]" if v is False else "[yellow]?[/]")


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    s = report["system"]
    t = Table(title="system", show_header=False)
    t.add_column("key", no_wrap=True)
    t.add_column("value", overflow="fold")
    mem = s.get("memory_total_bytes")
    rows = [
        ("board", f"{s.get('board')}  ({s.get('board_source')})"),
        ("cpu", f"{s.get('cpu_model')}, {s.get('cores_logical')} logical / {s.get('cores_physical')} physical cores"),
        ("arch / kernel / os", f"{s.get('arch')} / {s.get('kernel')} / {s.get('os')}"),
        ("governor", s.get("governor") or f"n/a ({s.get('governor_reason')})"),
        ("frequency", f"{s['freq_mhz']:.0f} MHz ({s.get('freq_source')})" if s.get("freq_mhz")
         else f"n/a ({s.get('freq_mhz_reason')})"),
        ("memory", f"{mem / 2**30:.1f} GiB" if mem else "n/a"),
        ("virtualisation", s.get("virtualisation_hint")),
        ("perf_event_paranoid", str(s.get("perf_event_paranoid"))),
        ("python", s.get("python")),
        ("libraries", ", ".join(f"{k} {v or 'not installed'}" for k, v in report["libraries"].items()
                                if k not in ("python",))),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)

    v = report.get("versions") or {}
    t = Table(title="versions: installed / lock (" + (v.get("lock") or "no lock file") + ") / reference data set")
    for col in ("library", "installed", "lock", "reference"):
        t.add_column(col, overflow="fold")
    for r in v.get("rows", []):
        mark = (lambda x: x or "-") if r["installed"] in (r["lock"], None) and r["installed"] in (r["reference"], None) \
            else (lambda x: f"[yellow]{x or '-'}[/]")
        t.add_row(r["library"], mark(r["installed"]), r["lock"] or "-", r["reference"] or "-")
    console.print(t)
    if v.get("lock_differences"):
        console.print("[yellow]installed versions differ from the lock:[/] " + "; ".join(v["lock_differences"]),
                      highlight=False)
    if v.get("reference_counts"):
        console.print(f"reference data set's simulated counts here: {v['reference_counts']}", highlight=False)

    t = Table(title="frameworks (import checked in a fresh interpreter)")
    for col in ("framework", "importable", "version", "reason"):
        t.add_column(col, overflow="fold")
    for r in report["frameworks"]:
        t.add_row(r["framework"], _yes(r["importable"]), r["version"] or "", r["reason"])
    console.print(t)

    t = Table(title="counter sources")
    for col in ("source", "available", "reason", "events"):
        t.add_column(col, overflow="fold")
    for r in report["counters"]:
        t.add_row(r["name"], _yes(r["available"]), r["reason"], ", ".join(r.get("events") or []))
    console.print(t)

    t = Table(title="sensor sources")
    for col in ("kind", "source", "available", "reason", "where"):
        t.add_column(col, overflow="fold")
    for r in report["sensors"]:
        t.add_row(r["kind"], r["name"] if r["source"] == "none" else r["source"], _yes(r["available"]),
                  r["reason"], r["path_or_command"])
    console.print(t)

    t = Table(title="sensor readings now")
    for col in ("metric", "value", "source / reason"):
        t.add_column(col, overflow="fold")
    for name, r in report.get("sensor_readings", {}).items():
        v = r["value"]
        t.add_row(name, "n/a" if v is None else f"{v:g} {r['unit']}",
                  r["source"] if v is not None else (r["reason"] or ""))
    console.print(t)


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
    check_lock: bool = typer.Option(False, "--check-lock", help="Only compare the installed versions with "
                                    "requirements.lock (the versions the shipped data sets and models were made "
                                    "with); exit 1 naming each difference. .ci/run runs it."),
) -> None:
    """Check what works on this machine: frameworks, counters, sensors, system facts.

    Frameworks (TensorFlow, LiteRT, ONNX Runtime, OpenCV) are imported in fresh interpreters in parallel
    (up to 14 s); counter sources (perf_event_open hardware / software events, perf stat, valgrind, psutil)
    and sensor sources (thermal zones, cpufreq, hwmon power monitors, RAPL, vcgencmd) are probed, and every
    unavailable one says why. Also prints the machine facts stored with every collected run.
    Also shows the installed versions beside the lock's and the reference data set's. Always exits 0 (the
    report itself is the result), except with --check-lock.
    """
    if check_lock:
        from perfmodel.versions import LOCK_NAME, lock_differences, lock_path, read_lock

        path = lock_path()
        diffs = lock_differences()
        if diffs:
            typer.echo(f"error: installed versions differ from {path or LOCK_NAME}:", err=True)
            for d in diffs:
                typer.echo(f"  {d}", err=True)
            typer.echo("install through the lock (pip install -c requirements.lock -e '.[test]') or move the lock "
                       "(lock/README.md says what must be re-measured then)", err=True)
            raise typer.Exit(1)
        typer.echo(f"lock: all {len(read_lock(path))} pins of {path} match the installed versions")
        return
    report = gather()
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


def register(app: typer.Typer) -> None:
    """Add ``perfmodel doctor`` to the app."""
    app.command("doctor")(doctor)
