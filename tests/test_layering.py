"""The data flow is one way: a stage never imports a later one; the CLI only parses, calls a workflow and prints."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "perfmodel"

# stage -> rank; a module may import stages of equal or lower rank only.
RANK = {
    "zoo": 1,
    "runners": 2,
    "counters": 3,
    "sensors": 3,
    # data (schema + storage) is the format collect writes into, so collect may import it;
    # data itself never imports collect, and model never imports collect (the CLI glues them).
    "data": 4,
    "collect": 5,
    "model": 6,
    "select": 7,
    "report": 7,
    # the glue of every stage (fit / predict from each source, the quick sample's estimate, the pipeline):
    # above them all, below the CLI, which parses options, calls a workflow and prints its result
    "workflows": 8,
    "cli": 9,
}
FOUNDATION = {"errors", "paths", "readings", "metrics", "images", "sysinfo", "versions", "runlog", "procs",
              "workerproto", "armpmu", "__init__"}
# `python -m perfmodel` is the CLI entry point, so it ranks as cli.
ALIASES = {"__main__": "cli"}


def _import_nodes(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every absolute import of ``path`` (``import M``: ``(M, [])``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _imports(path: Path) -> set[str]:
    """The perfmodel stages ``path`` imports (``perfmodel.X...`` -> ``X``)."""
    found = set()
    for name, _ in _import_nodes(path):
        parts = name.split(".")
        if parts[0] == "perfmodel" and len(parts) > 1:
            found.add(parts[1])
    return found


def _cli_imports(path: Path, allowed=frozenset()) -> list[str]:
    """What ``path`` imports from ``perfmodel.cli`` (dotted names), but the names in ``allowed``."""
    bad = []
    for module, names in _import_nodes(path):
        if module == "perfmodel":
            bad += ["perfmodel.cli" for n in names if n == "cli"]
        elif module == "perfmodel.cli" or module.startswith("perfmodel.cli."):
            bad += [f"{module}.{n}" for n in names or [""] if f"{module}.{n}" not in allowed]
    return bad


def _modules():
    return sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_import_of_a_later_stage(path: Path):
    rel = path.relative_to(PKG)
    stage = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    stage = ALIASES.get(stage, stage)
    if stage in FOUNDATION:
        # foundation modules import no stage at all
        assert not (_imports(path) & set(RANK)), f"{rel} is foundation but imports a stage"
        return
    assert stage in RANK, f"{rel}: unknown stage {stage!r}; add it to RANK"
    for imported in _imports(path):
        if imported in FOUNDATION:
            continue
        assert imported in RANK, f"{rel} imports unknown perfmodel.{imported}"
        assert RANK[imported] <= RANK[stage], f"{rel} ({stage}) imports later stage perfmodel.{imported}"


def test_the_cli_starts_without_the_heavy_libraries():
    """`perfmodel --help` and every command's start-up stay fast: importing the app loads no numerical or ML
    library (they are imported inside the functions that use them; docs/ARCHITECTURE.md)."""
    import subprocess
    import sys

    heavy = ("numpy", "pandas", "scipy", "sklearn", "statsmodels", "tensorflow", "onnxruntime", "cv2")
    code = ("import sys, perfmodel.cli.app, perfmodel.cli.entry; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_the_workflows_stage_sits_between_the_stages_and_the_cli():
    """perfmodel/workflows holds the glue of the stages below it (nothing below imports it: the rank test
    above) and the CLI calls it; nothing outside perfmodel/cli imports perfmodel.cli except the
    ``python -m perfmodel`` entry point."""
    assert (PKG / "workflows" / "__init__.py").is_file()
    below = [RANK[s] for s in ("collect", "model", "select", "report")]
    assert max(below) < RANK["workflows"] < RANK["cli"]
    bad = [f"{p.relative_to(PKG)}: {', '.join(_cli_imports(p))}" for p in _modules()
           if p.relative_to(PKG).parts[0] != "cli" and p != PKG / "__main__.py" and _cli_imports(p)]
    assert not bad, bad


ROOT = PKG.parent
#: what tests and benchmarks may import from the CLI: its entry points (to run commands), nothing else
CLI_ENTRY_POINTS = frozenset({"perfmodel.cli.app.app", "perfmodel.cli.app.main", "perfmodel.cli.entry.main"})


def _test_and_benchmark_files():
    return sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])


@pytest.mark.parametrize("path", _test_and_benchmark_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_tests_and_benchmarks_import_library_or_workflow_functions_not_the_cli(path: Path):
    """A function a test or benchmark needs lives in a stage or in perfmodel.workflows, not in perfmodel.cli:
    from the CLI only ``perfmodel.cli.app``'s ``app`` / ``main`` may be imported (to run commands), and no
    ``perfmodel.cli...`` name is monkeypatched."""
    bad = _cli_imports(path, CLI_ENTRY_POINTS)
    tree = ast.parse(path.read_text(), filename=str(path))
    bad += [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and re.fullmatch(r"perfmodel\.cli(\.[A-Za-z_]\w*)+", n.value)  # a monkeypatch target
            and n.value not in CLI_ENTRY_POINTS]
    assert not bad, f"{path.relative_to(ROOT)} imports from the CLI: {', '.join(bad)}"
