"""Every list option of every command takes both ``-f a -f b`` and ``-f a,b`` (and a mix): one shared parser
(perfmodel.cli.options.list_option); this walks the whole command tree, so a new list option is checked too."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from perfmodel.cli.app import app


# typer (0.29) vendors its own click: classes are told apart by what they have, not by isinstance


def _is_option(p) -> bool:
    return getattr(p, "param_type_name", "") == "option"


def _commands() -> list[tuple[str, object]]:
    out = []

    def walk(cmd, path: str) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            out.append((path, cmd))

    walk(typer.main.get_command(app), "")
    return out


def _dummy(param) -> str:
    """A value for a required parameter (all of them are names / paths: a placeholder parses)."""
    return "x"


def _required_args(cmd, skip: str) -> list[str]:
    args: list[str] = []
    for p in cmd.params:
        if p.name == skip or not p.required:
            continue
        if _is_option(p):
            args += [p.opts[0], _dummy(p)]
        else:
            args.append(_dummy(p))
    return args


COMMANDS = _commands()
LIST_OPTIONS = [(path, cmd, p) for path, cmd in COMMANDS for p in cmd.params
                if _is_option(p) and p.multiple]


def test_the_list_options_are_found():
    """The walk sees the list options of every command that has them (a broken walk would check nothing)."""
    have = {(path, max(p.opts, key=len)) for path, _, p in LIST_OPTIONS}
    for expected in [("bench", "--framework"), ("bench", "--network"), ("bench", "--threads"),
                     ("collect", "--frameworks"), ("collect", "--networks"), ("collect", "--threads"),
                     ("calibrate", "--threads"), ("pipeline", "--frameworks"), ("pipeline", "--threads"),
                     ("select", "--model"), ("select", "--weights"), ("correlate", "--features"),
                     ("report", "--model"), ("report", "--weights"), ("fit", "--features"), ("fit", "--exclude"),
                     ("fit", "--simulated-from"), ("evaluate", "--features"), ("predict", "--traces"),
                     ("zoo build", "--format")]:
        assert expected in have, f"{expected} is not a repeatable option (found: {sorted(have)})"


def test_no_single_valued_option_is_a_comma_list():
    """An option documented as a list but declared single-valued would take only `a,b`, not `-x a -x b`."""
    bad = []
    for path, cmd in COMMANDS:
        for p in cmd.params:
            text = (getattr(p, "help", "") or "").lower()
            if _is_option(p) and not p.multiple and any(
                    w in text for w in ("comma list", "comma-separated", "repeatable", "repeat for", "repeat it",
                                        "; repeat")):
                bad.append(f"{path} {p.opts[0]}")
    assert not bad, f"documented as lists but single-valued: {bad}"


@pytest.mark.parametrize("path,cmd,param", LIST_OPTIONS,
                         ids=[f"{path}:{max(p.opts, key=len)}" for path, _, p in LIST_OPTIONS])
def test_list_option_takes_repeats_and_commas(path, cmd, param):
    flag = min(param.opts, key=len)
    base = _required_args(cmd, param.name)
    results = {}
    for form, argv in {"repeated": [flag, "1", flag, "2", flag, "3"], "comma": [flag, "1,2,3"],
                       "mixed": [flag, "1,2", flag, "3"]}.items():
        ctx = cmd.make_context(path, base + argv)
        results[form] = ctx.params[param.name]
    values = [str(v) for v in results["comma"]]
    assert values == ["1", "2", "3"], (path, flag, results)
    assert results["repeated"] == results["comma"] == results["mixed"], (path, flag, results)
    # left out: the default, split the same way (or None)
    ctx = cmd.make_context(path, list(base))
    left_out = ctx.params[param.name]
    assert left_out is None or (isinstance(left_out, list) and all("," not in str(v) for v in left_out)), left_out


def test_thread_lists_are_integers():
    for path, cmd, p in LIST_OPTIONS:
        # collect converts its --threads after refusing campaign options with --command (whatever their value)
        if p.name == "threads" and path != "collect":
            ctx = cmd.make_context(path, _required_args(cmd, p.name) + [min(p.opts, key=len), "1,2"])
            assert ctx.params["threads"] == [1, 2], path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfmodel", *args], capture_output=True, text=True, timeout=120)


def test_bench_comma_list_is_split_and_checked_per_item():
    """`bench -f onnxruntime,litert` was refused as one unknown framework 'onnxruntime,litert'; now each item is
    checked (a wrong one named alone), and a bad thread count is an `error:` line, exit 2, no traceback."""
    res = _cli("bench", "-f", "onnxruntime,nope", "-n", "squeezenet1_1")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "nope" in res.stderr and "onnxruntime,nope" not in res.stderr, res.stderr
    res = _cli("bench", "-f", "onnxruntime", "-t", "1,two")
    assert res.returncode == 2 and res.stderr.startswith("error:") and "two" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
