"""The server model's settings, the gunicorn config they produce, and the C core's locks."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

from r13core.settings import WORKER_CLASSES, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]


def test_the_gevent_worker_is_the_default_and_gthread_selectable() -> None:
    assert Settings.from_env({}).server.worker_class == "gevent"
    assert Settings.from_env({"R13_WORKER_CLASS": " GThread "}).server.worker_class == "gthread"
    assert set(WORKER_CLASSES) == {"gevent", "gthread"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("R13_WORKER_CLASS", "sync", "R13_WORKER_CLASS='sync' must be one of gevent, gthread"),
        ("R13_WORKER_CONNECTIONS", "0", "R13_WORKER_CONNECTIONS=0 is out of range"),
        ("R13_HEADER_TIMEOUT", "500", "R13_HEADER_TIMEOUT=500 is out of range"),
        ("R13_BODY_TIMEOUT", "soon", "R13_BODY_TIMEOUT='soon' is not a whole number"),
    ],
)
def test_a_bad_server_model_setting_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env({name: value})


def _gunicorn_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> object:
    for name, value in {"R13_DATA": str(tmp_path), **env}.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("app.gunicorn_conf", None)
    try:
        return importlib.import_module("app.gunicorn_conf")
    finally:
        sys.modules.pop("app.gunicorn_conf", None)


def test_gunicorn_runs_the_configured_worker_with_its_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = _gunicorn_conf(
        monkeypatch, tmp_path, R13_WORKER_CONNECTIONS="77", R13_HEADER_TIMEOUT="2500"
    )
    assert conf.worker_class == "gevent"  # type: ignore[attr-defined]
    assert conf.worker_connections == 77  # type: ignore[attr-defined]
    assert conf.keepalive == 3  # type: ignore[attr-defined]  # whole seconds, rounded up
    assert callable(conf.post_request)  # type: ignore[attr-defined]  # the fairness yield
    threaded = _gunicorn_conf(monkeypatch, tmp_path, R13_WORKER_CLASS="gthread")
    assert threaded.worker_class == "gthread"  # type: ignore[attr-defined]
    assert not hasattr(threaded, "post_request")


def test_every_setting_the_settings_module_reads_is_in_the_readme() -> None:
    source = (ROOT / "r13core" / "settings.py").read_text()
    names = set(re.findall(r'"((?:R13|REGISTRY|SECURITY|METRICS|ALERT)_[A-Z0-9_]+)"', source))
    readme = (ROOT / "README.md").read_text()
    assert {"R13_WORKER_CLASS", "R13_BODY_TIMEOUT"} <= names
    missing = {n for n in names if f"`{n}`" not in readme and not _in_a_grouped_row(n, readme)}
    assert missing == set()


def _in_a_grouped_row(name: str, readme: str) -> bool:
    # Rows like "`R13_BLOCK_AUTH_FAILURES` / `_LIMIT_VIOLATIONS`" name a family once.
    return any(f"`_{name.split('_', 2)[-1]}`" in line for line in readme.splitlines())


def _function_bodies(c_source: str) -> list[tuple[str, str]]:
    """(what precedes it, the block) for each top-level brace block of a C file."""
    bodies: list[tuple[str, str]] = []
    depth, start, end = 0, 0, 0
    for i, ch in enumerate(c_source):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                bodies.append((c_source[end:start], c_source[start : i + 1]))
                end = i + 1
    return bodies


def test_every_c_mutex_is_released_within_the_call_that_took_it() -> None:
    # A greenlet cannot switch inside a C call, so a mutex taken and released inside one
    # call can never be held across a yield; a lock/unlock pair split over two calls
    # (or a callback into Python) could. Each robust mutex of csrc/ is taken through one
    # helper (writer_lock, lock_table) or inline, and released in the function that did.
    taken_by: dict[str, int] = {}
    for path in sorted((ROOT / "csrc").glob("*.c")):
        for head, body in _function_bodies(path.read_text()):
            if re.search(r"\b(writer_lock|lock_table)\([^)]*\)\s*$", head):
                continue  # the helper that takes it: its callers release it
            if "pthread_mutex_lock(" in body or re.search(r"\b(writer_lock|lock_table)\(", body):
                taken_by[path.name] = taken_by.get(path.name, 0) + 1
                assert "pthread_mutex_unlock(" in body, f"{path.name}: a lock left held"
    assert set(taken_by) == {"metrics.c", "ratelimit.c", "record.c"}
    cdef = (ROOT / "csrc" / "build_native.py").read_text()
    assert 'extern "Python"' not in cdef  # no callback from C into Python
