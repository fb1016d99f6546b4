"""Imports point one way (DESIGN.md §1): nothing in r13core imports falcon, gunicorn or app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

R13CORE = Path(__file__).resolve().parents[1] / "r13core"
FORBIDDEN = ("falcon", "gunicorn", "app", "tests")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(R13CORE.rglob("*.py")), ids=lambda p: p.name)
def test_r13core_module_does_not_import_the_web_layer(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN}
    assert bad == set(), f"{path.relative_to(R13CORE.parent)} imports {sorted(bad)}"


def test_only_ffi_touches_the_native_module() -> None:
    # _ffi loads it with importlib, so look for the name in the text, not only in imports.
    users = sorted(p.name for p in R13CORE.rglob("*.py") if "_native" in p.read_text())
    assert users == ["_ffi.py"]
