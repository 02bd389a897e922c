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
