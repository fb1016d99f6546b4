"""Every validator refuses a trailing newline.

A regex ending in ``$`` also matches before a final ``\\n``: a non-maintainer
published ``1.0.0\\n`` beside 1.0.0, and a non-admin published
``@secret\\n/plans`` past a rule for ``@secret/*``. Validators now match whole
strings (``fullmatch``); the scan below keeps new code from bringing ``$`` back.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from app.monitoring.middleware import TRACE_ID as _TRACE_ID
from app.resources.security import parse_duration_ms
from r13core.access import parse_rules
from r13core.errors import InvalidValue
from r13core.keys import KeyStore, Permission, looks_like_secret, new_secret, parse_cidrs
from r13core.names import PackageName
from r13core.patterns import parse_pattern
from r13core.registry.publish_checks import check_tag as _check_tag
from r13core.semver import Range, Version, parse_version
from r13core.storage.blobs import _check_hex
from r13core.storage.sqlite import SQLiteStorage
from r13core.users import check_email, check_name
from tests.identity_app import PW, quote, serve
from tests.npm_builders import publish_body

ROOT = Path(__file__).resolve().parent.parent


def _key_id(tmp: Path) -> Callable[[str], object]:
    keys = KeyStore(SQLiteStorage(tmp / "r.sqlite3"))
    return lambda text: keys.create(text, Permission.READ, None)


def _secret(text: str) -> None:
    if not looks_like_secret(text):
        raise InvalidValue("not a key")


def _trace_id(text: str) -> None:
    if _TRACE_ID.fullmatch(text) is None:
        raise InvalidValue("not a trace id")


# (what, a valid value, the validator): each must accept the value and refuse value + "\n".
VALIDATORS: list[tuple[str, str, Callable[[str], object]]] = [
    ("package name", "left-pad", PackageName.parse),
    ("scoped package name", "@secret/plans", PackageName.parse),
    ("package name in a URL", "@secret%2fplans", PackageName.from_url),
    ("version", "1.0.0", parse_version),
    ("prerelease version", "1.0.0-beta.1", Version.parse),
    ("range", "^1.0.0", Range.parse),
    ("hyphen range", "1.0.0 - 2.0.0", Range.parse),
    ("dist-tag", "beta", _check_tag),
    ("user name", "alice", check_name),
    ("email", "alice@example.test", check_email),
    ("CIDR block", "10.0.0.0/8", lambda t: parse_cidrs([t])),
    ("package pattern", "@secret/*", parse_pattern),
    ("rule principal", "alice", lambda t: parse_rules([{"package": "x", "access": [t]}])),
    ("rule key principal", "key:ci", lambda t: parse_rules([{"package": "x", "access": [t]}])),
    ("key secret", new_secret(), _secret),
    ("trace id", "abc-123", _trace_id),
    ("duration", "30d", lambda t: parse_duration_ms(t, "duration")),
    ("sha512 hex", "a" * 128, _check_hex),
]


@pytest.mark.parametrize(("what", "good", "validate"), VALIDATORS, ids=[v[0] for v in VALIDATORS])
def test_trailing_newline_refused_everywhere(
    what: str, good: str, validate: Callable[[str], object]
) -> None:
    validate(good)
    for bad in (good + "\n", good + "\r\n", "\n" + good, good.replace("/", "\n/", 1)):
        if bad == good:
            continue
        with pytest.raises(InvalidValue):
            validate(bad)


def test_trailing_newline_refused_for_key_ids(tmp_path: Path) -> None:
    create = _key_id(tmp_path)
    create("ci-key")
    with pytest.raises(InvalidValue):
        create("ci-key2\n")


def test_the_reviews_two_attacks_are_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"package": "@secret/*", "publish": ["$admin"]}]))
    s = serve(tmp_path / "data", {"R13_ACCESS_RULES": str(rules)})
    try:
        from r13core.users import Role

        s.users.add("owner", PW, Role.PUBLISHER)
        s.users.add("other", PW, Role.PUBLISHER)
        owner, other = s.session("owner"), s.session("other")
        assert s.publish("lib", "1.0.0", owner).status_code == 201
        # 1. "1.0.0\n" beside 1.0.0 by a non-maintainer (and by the maintainer).
        body = publish_body("lib", "1.0.0")
        body["versions"] = {"1.0.0\n": {**body["versions"]["1.0.0"], "version": "1.0.0\n"}}
        body["_attachments"] = {"lib-1.0.0\n.tgz": body["_attachments"]["lib-1.0.0.tgz"]}
        for who in (other, owner):
            r = s.client.simulate_put("/lib", json=body, headers=who)
            assert r.status_code in (400, 403), r.text
        doc = s.client.simulate_get("/lib", headers=owner).json
        assert list(doc["versions"]) == ["1.0.0"]
        # 2. "@secret\n/plans" past the rule for @secret/*.
        r = s.client.simulate_put(
            f"/{quote('@secret%0a/plans')}", json=publish_body("@secret/plans", "1.0.0"),
            headers=other,
        )  # fmt: skip
        assert r.status_code == 400, r.text
        assert s.publish("@secret/plans", "1.0.0", other).status_code == 403
        assert s.storage.package("@secret\n/plans") is None
    finally:
        s.config.close()


# -- keep "$" out of validators ------------------------------------------------------------

_RE_FUNCS = frozenset({"compile", "match", "fullmatch", "search", "sub", "subn", "split"})


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    return None


def _unescaped_dollar(pattern: str) -> bool:
    """Whether ``pattern`` has a ``$`` anchor (not ``\\$``, not inside ``[...]``)."""
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            return True
    return False


def regex_findings(source: str) -> list[str]:
    """Why a module's regexes could accept a trailing newline (empty: they cannot)."""
    tree = ast.parse(source)
    compiled: set[str] = set()
    findings: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and isinstance(value.func.value, ast.Name)
                and value.func.value.id == "re"
                and value.func.attr == "compile"
            ):
                compiled.update(t.id for t in targets if isinstance(t, ast.Name))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func = node.func
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        if owner == "re" and func.attr in _RE_FUNCS and node.args:
            pattern = _literal(node.args[0])
            if pattern is not None and _unescaped_dollar(pattern):
                findings.append(f"line {node.lineno}: re.{func.attr} pattern with a $ anchor")
            if func.attr == "match":
                findings.append(f"line {node.lineno}: re.match (prefix match); use fullmatch")
        if owner in compiled and func.attr == "match":
            findings.append(f"line {node.lineno}: {owner}.match (prefix match); use fullmatch")
    return findings


def test_no_validator_uses_a_dollar_anchor_or_a_prefix_match() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for folder in ("r13core", "app")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (found := regex_findings(path.read_text()))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "source",
    [
        '_X = re.compile(r"^[a-z]+$")\n',
        '_X = re.compile(rf"^{A}[a-z]+$")\n',
        '_X = re.compile(r"[a-z]+")\ndef f(t):\n    return _X.match(t)\n',
        'def f(t):\n    return re.match(r"[a-z]+", t)\n',
        "def f(t):\n    return re.search(r'a$', t)\n",
    ],
)
def test_the_scan_catches_what_it_is_meant_to(source: str) -> None:
    assert regex_findings(source)


def test_the_scan_passes_what_is_safe() -> None:
    safe = '_X = re.compile(r"[a-z$]+\\$")\ndef f(t):\n    return _X.fullmatch(t)\n'
    assert regex_findings(safe) == []
    assert re.fullmatch(r"[a-z$]+\$", "ab$$") is not None
