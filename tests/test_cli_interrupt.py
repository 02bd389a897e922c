"""Ctrl-C in any command: one line saying what was kept, exit code 130, never a silent exit or a traceback.

Typer turns a KeyboardInterrupt into a bare ``Exit(130)`` of its own (typer/core.py), so the handler in
``perfmodel.cli.app.main`` never saw it: every command except ``collect`` stopped without a word.
"""

from __future__ import annotations

import types

import typer
from typer.testing import CliRunner

from perfmodel.cli.app import app


def _interrupt(*a, **k):
    raise KeyboardInterrupt


def test_ctrl_c_prints_one_line_saying_what_was_kept(tmp_path, monkeypatch):
    """Ctrl-C inside the commands' work (the work replaced by a stand-in that is interrupted)."""
    monkeypatch.setenv("PERFMODEL_LOG", str(tmp_path / "log"))  # the pipeline sets it for its process
    monkeypatch.setattr("perfmodel.workflows.fit.load_counted", _interrupt)
    r = CliRunner().invoke(app, ["fit", str(tmp_path / "ds"), "-t", "throughput_fps", "-o", str(tmp_path / "m.json")])
    assert r.exit_code == 130
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted (Ctrl-C): perfmodel fit")
    assert lines[0].endswith("no model file was written")
    # an interrupted campaign ends the pipeline with typer.Exit(130) (cli/pipeline.py)
    monkeypatch.setattr("perfmodel.collect.run_campaign", lambda *a, **k: types.SimpleNamespace(interrupted=True))
    r = CliRunner().invoke(app, ["pipeline", "--out", str(tmp_path / "run"), "--networks", "squeezenet1_1"])
    assert r.exit_code == 130 and "interrupted (Ctrl-C): perfmodel pipeline" in r.output
    assert "finished cells are saved" in r.output
    monkeypatch.setattr("perfmodel.zoo.export", _interrupt)
    r = CliRunner().invoke(app, ["zoo", "build", "squeezenet1_1", "--format", "onnx"])
    assert r.exit_code == 130 and "interrupted (Ctrl-C): perfmodel zoo build" in r.output
    # options still reach the command as before: a bad value is refused by the command, naming it
    r = CliRunner().invoke(app, ["calibrate", "--buffer-mib", "0"])
    assert "--buffer-mib must be >= 1, got 0" in str(r.exception)


def test_every_perfmodel_command_is_covered():
    def walk(t: typer.Typer):
        for info in t.registered_commands:
            yield info
        for g in t.registered_groups:
            yield from walk(g.typer_instance)

    infos = list(walk(app))
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
