"""Ctrl-C in any command: one line saying what was kept, exit code 130, never a silent exit or a traceback.

Typer turns a KeyboardInterrupt into a bare ``Exit(130)`` of its own (typer/core.py), so the handler in
``perfmodel.cli.app.main`` never saw it: every command except ``collect`` stopped without a word.
"""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from perfmodel.cli import app as app_module


def _toy() -> typer.Typer:
    toy = typer.Typer()

    @toy.command("fit")
    def fit(n: int = typer.Option(1, "--n")) -> None:
        raise KeyboardInterrupt

    @toy.command("pipeline")
    def pipeline() -> None:
        raise typer.Exit(130)  # what cli/pipeline.py does after an interrupted campaign

    @toy.command("ok")
    def ok(n: int = typer.Option(1, "--n")) -> None:
        typer.echo(f"n={n}")

    sub = typer.Typer()

    @sub.command("build")
    def build() -> None:
        raise KeyboardInterrupt

    toy.add_typer(sub, name="zoo")
    return toy


def test_ctrl_c_prints_one_line_saying_what_was_kept():
    toy = app_module.install_interrupt_messages(_toy())
    r = CliRunner().invoke(toy, ["fit", "--n", "2"])
    assert r.exit_code == 130
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted (Ctrl-C): perfmodel fit")
    assert lines[0].endswith("no model file was written")
    r = CliRunner().invoke(toy, ["pipeline"])
    assert r.exit_code == 130 and "interrupted (Ctrl-C): perfmodel pipeline" in r.output
    assert "finished cells are saved" in r.output
    r = CliRunner().invoke(toy, ["zoo", "build"])
    assert r.exit_code == 130 and "interrupted (Ctrl-C): perfmodel zoo build" in r.output
    r = CliRunner().invoke(toy, ["ok", "--n", "3"])  # options still parsed as before
    assert r.exit_code == 0 and r.output.strip() == "n=3"


def test_every_perfmodel_command_is_covered():
    def walk(t: typer.Typer):
        for info in t.registered_commands:
            yield info
        for g in t.registered_groups:
            yield from walk(g.typer_instance)

    infos = list(walk(app_module.app))
    assert len(infos) >= 10
    assert all(getattr(i.callback, "__perfmodel_interruptible__", False) for i in infos)


def test_ctrl_c_in_a_real_command_says_so(tmp_path):
    """SIGINT (as a terminal's Ctrl-C sends it) to `perfmodel calibrate` in the middle of its measuring:
    one line, exit code 130 (before: exit 130 without a word)."""
    import time

    from conftest import interrupt, start_interruptible

    proc = start_interruptible(["calibrate", "--threads", "1", "--buffer-mib", "2", "--seconds", "120"])
    t0 = time.monotonic()
    _, stderr = interrupt(proc, lambda: time.monotonic() - t0 > 10, timeout=60)  # imports done, measuring
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip() == "interrupted (Ctrl-C): perfmodel calibrate stopped; nothing was attached to a data set"
