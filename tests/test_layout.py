"""Project layout rules: one-way imports, one importer of the C module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def _top(name: str) -> str:
    return name.split(".")[0]


def test_r13core_never_imports_the_web_layer() -> None:
    for path in (ROOT / "r13core").rglob("*.py"):
        tops = {_top(n) for n in _imports(path)}
        assert not tops & {"app", "falcon", "gunicorn", "tests", "bench"}, path


def test_app_is_not_imported_by_anything_but_itself() -> None:
    for folder in ("r13core", "csrc"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "app" not in {_top(n) for n in _imports(path)}, path


def test_only_ffi_module_imports_the_compiled_core() -> None:
    importers = [
        path.relative_to(ROOT).as_posix()
        for folder in ("r13core", "app", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if any(n.startswith("r13core._native") for n in _imports(path))
    ]
    assert importers == ["r13core/_ffi.py"]


def test_only_r13core_modules_use_the_ffi_module() -> None:
    for path in (ROOT / "app").rglob("*.py"):
        assert not any(n.startswith("r13core._ffi") for n in _imports(path)), path


def test_app_reaches_storage_only_through_the_domain_modules() -> None:
    # The web layer holds a storage (r13core.database opens it) and hands it to
    # r13core's domain objects; records come re-exported by those modules. So a
    # second backend, or a change of schema, never touches app/.
    offenders = [
        f"{path.relative_to(ROOT).as_posix()}: {name}"
        for path in sorted((ROOT / "app").rglob("*.py"))
        for name in sorted(_imports(path))
        if name in ("r13core.storage", "sqlite3")
        or name.startswith(("r13core.storage.", "sqlite3."))
    ]
    assert offenders == []
