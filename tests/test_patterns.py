"""Package patterns: linear-time matching, validation at every entry point."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.main import create_app
from r13core.access import Action, Policy, parse_rules
from r13core.database import open_database
from r13core.errors import InvalidValue
from r13core.keys import KeyInfo, KeyStore, Permission
from r13core.names import MAX_NAME_LENGTH
from r13core.patterns import (
    MAX_PATTERNS,
    MAX_WILDCARDS,
    Pattern,
    compile_pattern,
    parse_pattern,
    parse_patterns,
)
from r13core.services import open_services
from r13core.settings import Settings
from r13core.users import Role, UserStore
from tests.glob_oracle import glob_regex

# The review's pattern: each extra "**a" multiplied a backtracking regex's time by ~40.
PATHOLOGICAL = "**a" * 40
ALMOST = "a" * (MAX_NAME_LENGTH - 1) + "b"


_reference = glob_regex  # the oracle on small inputs


def test_redos_pattern_is_linear() -> None:
    """The pathological pattern costs one step per character of the name, matched or not."""
    pattern = Pattern(PATHOLOGICAL)
    for n in (1, 10, 100, MAX_NAME_LENGTH):
        name = ALMOST[-n:]  # 'a' * (n - 1) + 'b': the shape that made the regex backtrack
        assert pattern.match_steps(name) == (False, n)
    # Same bound for a name that matches, and for one that is much longer than any package.
    assert pattern.match_steps("a" * 214) == (True, 214)
    matched, steps = pattern.match_steps("ab" * 5000)
    assert not matched and steps == 10_000
    # Work per step is a few operations on one integer of one bit per pattern token:
    # the whole state never holds more bits than the pattern has tokens (+1).
    assert pattern._accept.bit_length() <= len(PATHOLOGICAL) + 1


def test_nested_wildcards_are_refused_where_patterns_are_set() -> None:
    with pytest.raises(InvalidValue, match="wildcards"):
        parse_pattern(PATHOLOGICAL)
    with pytest.raises(InvalidValue, match="at most one '/'"):
        parse_pattern("a/b/c")
    with pytest.raises(InvalidValue, match="longer than"):
        parse_pattern("a" * 215)
    with pytest.raises(InvalidValue, match="may hold only"):
        parse_pattern("a+b")
    with pytest.raises(InvalidValue, match="'@' only starts"):
        parse_pattern("a@b")
    assert parse_pattern("*" * 1 + "-" + "*" * (MAX_WILDCARDS - 1)) is not None
    with pytest.raises(InvalidValue, match=f"more than {MAX_PATTERNS}"):
        parse_patterns([f"p{i}" for i in range(MAX_PATTERNS + 1)])
    assert parse_patterns(["@a/*", "@a/*", "left-pad"]) == ("@a/*", "left-pad")


def test_every_entry_point_validates_patterns(tmp_path: Path) -> None:
    # Keys (admin API and CLI go through KeyStore.create), access rules, npm token create.
    keys = KeyStore(open_database(tmp_path))
    with pytest.raises(InvalidValue, match="wildcards"):
        keys.create("k", Permission.READ, None, packages=[PATHOLOGICAL])
    with pytest.raises(InvalidValue, match=f"more than {MAX_PATTERNS}"):
        keys.create("k", Permission.READ, None, packages=[f"p{i}" for i in range(40)])
    with pytest.raises(InvalidValue, match=re.escape("access rule 0.package")):
        parse_rules([{"package": PATHOLOGICAL}])

    import falcon.testing

    env = {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": "http://r13.test"}
    app = create_app(open_services(Settings.from_env(env)))
    client = falcon.testing.TestClient(app)
    UserStore(open_database(tmp_path)).add("rea", "a good password", Role.READER)
    login = client.simulate_put(
        "/-/user/org.couchdb.user:rea", json={"name": "rea", "password": "a good password"}
    )
    session = {"Authorization": f"Bearer {login.json['token']}"}
    for body in (
        {"password": "a good password", "packages": [PATHOLOGICAL]},
        {"password": "a good password", "scopes": ["@" + "*a" * 20]},
    ):
        r = client.simulate_post("/-/npm/v1/tokens", json=body, headers=session)
        assert r.status_code == 400 and "wildcards" in r.json["error"], r.json


def test_a_stored_pathological_pattern_is_still_linear() -> None:
    """A pattern stored before validation existed is matched by the same automaton."""
    key = KeyInfo("old", Permission.READ, datetime.now(UTC), None, False, packages=("**a" * 80,))
    assert not Policy().allows(key, Action.READ, private=True, package=ALMOST)
    assert compile_pattern("**a" * 80).match_steps(ALMOST) == (False, len(ALMOST))


_SEGMENT = st.text(alphabet="ab-", max_size=4)
_NAMES = st.one_of(
    _SEGMENT, st.builds(lambda s, n: f"@{s}/{n}", _SEGMENT, _SEGMENT)
)  # fmt: skip
_PATTERNS = st.text(alphabet="ab*/@-", max_size=8)


@settings(max_examples=400)
@given(pattern=_PATTERNS, name=_NAMES)
def test_the_automaton_agrees_with_the_glob_semantics(pattern: str, name: str) -> None:
    assert Pattern(pattern).match(name) == bool(_reference(pattern).fullmatch(name))


def test_glob_semantics_by_example() -> None:
    cases = [
        ("@*/*", "@a/b", True),
        ("@*/*", "left-pad", False),
        ("**", "@a/b", True),
        ("*", "@a/b", False),
        ("*", "left-pad", True),
        ("@mycompany/*", "@mycompany/lib", True),
        ("@mycompany/*", "@mycompanyx/lib", False),
        ("left-pad", "left-pad\n", False),
        ("a*b", "a/b", False),
        ("a**b", "a/b", True),
    ]
    for pattern, name, expected in cases:
        assert Pattern(pattern).match(name) is expected, (pattern, name)


@settings(max_examples=400)
@given(pattern=_PATTERNS, name=_NAMES)
def test_the_shortcuts_agree_with_the_automaton(pattern: str, name: str) -> None:
    compiled = Pattern(pattern)
    assert compiled.match(name) == compiled.match_steps(name)[0]
