"""``perfmodel doctor``: what works on this machine, and why the rest does not."""

from __future__ import annotations

import json
from typing import Any

import typer

from perfmodel.cli.options import json_option
from perfmodel.cli.show import stdout_console
from perfmodel.workflows.doctor import check_lock as lock_check
from perfmodel.workflows.doctor import gather


def _yes(v: Any) -> str:
    return "[green]yes[/]" if v is True else ("[red]no[/]" if v is False else "[yellow]?[/]")


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
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
    json_out: bool = json_option("Print the report as JSON instead of tables."),
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
        from perfmodel.versions import LOCK_NAME

        lock = lock_check()
        if lock.differences:
            typer.echo(f"error: installed versions differ from {lock.path or LOCK_NAME}:", err=True)
            for d in lock.differences:
                typer.echo(f"  {d}", err=True)
            typer.echo("install through the lock (pip install -c requirements.lock -e '.[test]') or move the lock "
                       "(lock/README.md says what must be re-measured then)", err=True)
            raise typer.Exit(1)
        typer.echo(f"lock: all {lock.pins} pins of {lock.path} match the installed versions")
        return
    report = gather()
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


def register(app: typer.Typer) -> None:
    """Add ``perfmodel doctor`` to the app."""
    app.command("doctor")(doctor)
