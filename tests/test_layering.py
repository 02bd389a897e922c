"""The data flow is one way: a stage never imports a later one."""

from __future__ import annotations

import ast
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
    "cli": 9,
}
FOUNDATION = {"errors", "paths", "readings", "metrics", "images", "sysinfo", "versions", "runlog", "procs",
              "workerproto", "armpmu", "__init__"}
# `python -m perfmodel` is the CLI entry point, so it ranks as cli.
ALIASES = {"__main__": "cli"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "perfmodel" and len(parts) > 1:
                found.add(parts[1])
    return found


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
    code = ("import sys, perfmodel.cli.app; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def _module_graph() -> dict[str, set[str]]:
    """perfmodel module -> the perfmodel modules it imports (at the top or inside functions; relative imports
    resolved; ``from pkg import sub`` counts as an import of the module ``sub`` where it is one)."""
    mods: dict[str, bool] = {}
    for path in _modules():
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = is_pkg
    graph: dict[str, set[str]] = {}
    for path in _modules():
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        package = name if is_pkg else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    full = ".".join(base + ([node.module] if node.module else []))
                else:
                    full = node.module or ""
                for a in node.names:
                    if f"{full}.{a.name}" in mods:
                        found.add(f"{full}.{a.name}")
                    elif full in mods:
                        found.add(full)
        graph[name] = found - {name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    circles.append(sorted(comp))
    return circles


def test_no_import_circle():
    """No two modules import each other, directly or through others (imports inside functions count: a lazy
    import only hides a circle)."""
    assert _circles(_module_graph()) == []


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _circles(graph) == [["a", "b", "c"]]
    assert "perfmodel.data.store" in _module_graph()["perfmodel.data.calibration"]
