"""Tests give the same answer on a slow machine: no hypothesis timing checks anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import HealthCheck, settings

TESTS = Path(__file__).resolve().parent


def test_the_loaded_hypothesis_profile_has_no_deadline_and_no_speed_health_check() -> None:
    profile = settings.default
    assert profile is not None
    assert profile.deadline is None
    assert HealthCheck.too_slow in profile.suppress_health_check


def _settings_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == "settings":
                    calls.append((f"{path.relative_to(TESTS)}:{node.lineno}", node))
    return calls


def test_no_test_sets_its_own_deadline_or_drops_the_speed_health_check() -> None:
    calls = _settings_calls()
    assert calls, "the scan found no hypothesis settings at all"
    for where, call in calls:
        for kw in call.keywords:
            # deadline=None is the profile's own value: no test needs to repeat it.
            assert kw.arg != "deadline", f"{where}: the profile in tests/conftest.py sets it"
            if kw.arg == "suppress_health_check":
                # A list given here replaces the profile's list instead of adding to it.
                listed = ast.unparse(kw.value)
                assert "too_slow" in listed, f"{where}: keep HealthCheck.too_slow in the list"
