"""The layers import only downwards (docs/architecture.md): genbench/ (the science) imports nothing
from stages/, cost/ or MLflow; cost/ (the money) nothing from genbench/ or stages/; a stage module
imports no other stage module, only the frame (stages/frame), genbench/ and cost/. Every import
statement counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"genbench": ("stages", "cost", "mlflow"), "cost": ("genbench", "stages")}


def imports(path: Path) -> set[str]:
    """Every module name an import statement of `path` names (relative imports are inside its package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return names


def test_the_scan_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import os\ndef f():\n    from cost.ledger import read_ledger\n")
    assert {"os", "cost.ledger", "cost.ledger.read_ledger"} <= imports(path)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package):
    bad = sorted(f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / package).rglob("*.py") for name in imports(path)
                 if name.split(".")[0] in FORBIDDEN[package])
    assert not bad, bad



def test_a_stage_imports_no_other_stage():
    stage_modules = {path.stem for path in (ROOT / "stages").glob("*.py")} - {"__init__"}
    bad = sorted(f"stages/{path.name}: {name}" for path in (ROOT / "stages").glob("*.py") for name in imports(path)
                 if name.startswith("stages.") and name.split(".")[1] in stage_modules)
    assert not bad, bad
