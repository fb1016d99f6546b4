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


def test_the_terminal_s_core_knows_no_screen_keyboard_or_socket() -> None:
    """r13core/terminal/ is pure: the front ends (app/cli/term_cmd.py, app/live/terminal.py)
    own prompt_toolkit, the tty and the WebSocket; the interpreter, the session and the
    editor take and give text and dicts."""
    front_end = {"prompt_toolkit", "websockets", "wsproto", "gevent", "termios", "tty", "socket"}
    for path in (ROOT / "r13core" / "terminal").rglob("*.py"):
        tops = {_top(n) for n in _imports(path)}
        assert not tops & front_end, path


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


def _environment_reads(path: Path) -> list[str]:
    """Lines of ``path`` that read the process environment (``os.environ``, ``getenv``...)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = {a.name for a in node.names} & {"environ", "environb", "getenv"}
            found += [f"line {node.lineno}: from os import {n}" for n in sorted(names)]
    return found


def test_nothing_outside_the_settings_module_reads_the_environment() -> None:
    # One settings reader (r13core/settings.py): every part gets its values from
    # the Settings object, so a variable is parsed, validated and named in one place.
    offenders = {
        path.relative_to(ROOT).as_posix(): found
        for folder in ("r13core", "app")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in (ROOT / "r13core" / "settings.py", EARLY_READER)
        and (found := _environment_reads(path))
    }
    assert offenders == {}


# The one exception: `r13 serve` and gunicorn's config decide whether to monkey-patch
# for gevent before any of r13's modules may load (r13core/settings.py imports much of
# r13core), so app/cli/serve_process.py reads R13_WORKER_CLASS itself, as
# r13core/settings.py does (test_the_early_worker_class_read_agrees_with_the_settings),
# and hands gunicorn the settings' environment.
EARLY_READER = ROOT / "app" / "cli" / "serve_process.py"


def test_the_early_worker_class_read_agrees_with_the_settings() -> None:
    from app.cli.serve_process import gevent_worker
    from r13core.settings import Settings

    for value in ("", " ", "gevent", " GEVENT ", "gthread", "Gthread"):
        env = {"R13_WORKER_CLASS": value}
        assert gevent_worker(env) == (Settings.from_env(env).server.worker_class == "gevent")
    assert gevent_worker({}) is True


def test_the_environment_scan_sees_every_form_of_reading_it() -> None:
    sample = ROOT / "tests" / "_layout_sample.py"
    sample.write_text(
        "import os\nfrom os import environ, getenv\n"
        "a = os.environ['X']\nb = os.getenv('Y')\nc = environ.get('Z')\n"
    )
    try:
        found = _environment_reads(sample)
    finally:
        sample.unlink()
    assert found == [
        "line 2: from os import environ",
        "line 2: from os import getenv",
        "line 3: .environ",
        "line 4: .getenv",
    ]


def test_only_the_wiring_builds_the_app_s_collaborators() -> None:
    # One wiring (r13core/services.py): the web layer and the CLI never open
    # storage, the record or the shared tables themselves, so no second storage
    # on the same file and no second copy of how the parts fit together.
    builders = {"open_database", "open_storage", "ConfigStore", "RateLimiter", "Registry.open"}
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else ""
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    name = f"{func.value.id}.{func.attr}"
                if name in builders:
                    offenders.append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {name}")
    assert offenders == []


def test_nothing_imports_the_tests_or_the_benches() -> None:
    for folder in ("r13core", "app", "csrc"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not {_top(n) for n in _imports(path)} & {"tests", "bench"}, path
