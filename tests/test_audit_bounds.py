"""The legacy audit routes under hostile trees: bounded before walking,
walked without a path per node, refused beyond the bounds, with memory measured."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.main import create_app
from r13core.database import open_database
from r13core.errors import BadRequest, PayloadTooLarge
from r13core.keys import KeyStore, Permission
from r13core.registry.advisories import AuditLimits, Tree, measure_tree, parse_audit_body
from r13core.services import open_services
from r13core.settings import Settings

LIMITS = AuditLimits()
LONG = 200  # characters per name on the chain: each old path string grew by this per level
DEPTH = 30
MiB = 1024 * 1024


def chain(bottom: dict[str, Any], depth: int = DEPTH) -> dict[str, Any]:
    """``bottom``'s modules under ``depth`` nested modules with long names."""
    node: dict[str, Any] = {"version": "1.0.0", "dependencies": bottom}
    for level in range(depth - 1, 0, -1):
        node = {"version": "1.0.0", "dependencies": {f"{level:03d}" + "x" * LONG: node}}
    return {"name": "app", "version": "1.0.0", "dependencies": {"000" + "x" * LONG: node}}


def bomb(children: int) -> bytes:
    """The review's shape: a deep chain of long names, then many small modules at the bottom.

    The old walk gave each bottom module a ``prefix>name`` string of ~DEPTH * LONG
    characters: ``children`` x 6 KB.
    """
    bottom = {f"m{i}": {"version": "1.0.0"} for i in range(children)}
    return gzip.compress(json.dumps(chain(bottom)).encode(), compresslevel=9)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[falcon.testing.TestClient, dict[str, str]]]:
    env = {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": "http://r13.test"}
    _, secret = KeyStore(open_database(tmp_path)).create("root", Permission.ADMIN, None)
    app = create_app(open_services(Settings.from_env(env)))
    client = falcon.testing.TestClient(app)
    yield client, {"Authorization": f"Bearer {secret}"}


def post_measured(
    client: falcon.testing.TestClient, headers: dict[str, str], body: bytes
) -> tuple[falcon.testing.Result, int]:
    """POST the gzip body to the quick audit; (the answer, tracemalloc's peak in bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = client.simulate_post(
            "/-/npm/v1/security/audits/quick",
            body=body,
            headers={
                **headers,
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            },
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_audit_bomb_refused_with_bounded_memory(served: Any) -> None:
    client, admin = served
    body = bomb(LIMITS.max_nodes + 10_000)
    assert len(body) < 256 * 1024  # small on the wire
    result, peak = post_measured(client, admin, body)
    assert result.status_code == 413, result.text
    assert f"more than {LIMITS.max_nodes} modules" in result.json["error"]
    # The old walk needed ~60000 x 6 KB = 360 MB of path strings for this body; what is
    # left is parsing the JSON itself (bounded by max_body and max_objects).
    assert peak < 48 * MiB, peak


def test_audit_tree_within_bounds_spells_out_only_capped_paths(served: Any) -> None:
    client, admin = served
    r = client.simulate_post(
        "/_api/advisories",
        json={"package": "vuln", "vulnerable_versions": "<2.0.0", "severity": "high",
              "title": "t"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201
    parents = 2000  # "vuln" under each: 2000 vulnerable paths of ~6 KB each
    bottom = {f"p{i}": {"version": "1.0.0", "dependencies": {"vuln": {"version": "1.0.0"}}}
              for i in range(parents)}  # fmt: skip
    body = gzip.compress(json.dumps(chain(bottom)).encode())
    result, peak = post_measured(client, admin, body)
    assert result.status_code == 200, result.text
    report = result.json
    (advisory,) = report["advisories"].values()
    (finding,) = advisory["findings"]
    assert len(finding["paths"]) == LIMITS.max_paths
    assert all(p.endswith(">vuln") and p.count(">") == DEPTH + 1 for p in finding["paths"])
    assert len(report["actions"][0]["resolves"]) == LIMITS.max_paths
    assert report["metadata"]["vulnerabilities"]["high"] == parents  # every path counted
    assert report["metadata"]["totalDependencies"] == DEPTH + 2 * parents
    assert peak < 48 * MiB, peak


def test_bounds_are_checked_before_anything_is_built() -> None:
    too_deep: dict[str, Any] = {"version": "1.0.0"}
    for _ in range(LIMITS.max_depth + 1):
        too_deep = {"version": "1.0.0", "dependencies": {"d": too_deep}}
    with pytest.raises(BadRequest, match="deeper than"):
        measure_tree({"dependencies": {"top": too_deep}}, LIMITS)
    with pytest.raises(BadRequest, match="longer than"):
        measure_tree({"dependencies": {"n" * 215: {"version": "1.0.0"}}}, LIMITS)
    wide = {"dependencies": {f"m{i}": {"version": "1"} for i in range(11)}}
    with pytest.raises(PayloadTooLarge, match="more than 10 modules"):
        measure_tree(wide, AuditLimits(max_nodes=10))
    assert measure_tree(wide, LIMITS) == 11


def test_the_parse_itself_stops_at_the_object_bound() -> None:
    limits = AuditLimits(max_objects=1000)
    many = json.dumps({"dependencies": {f"m{i}": {} for i in range(5000)}}).encode()
    with pytest.raises(PayloadTooLarge, match="more than 1000 objects"):
        parse_audit_body(many, limits)
    with pytest.raises(PayloadTooLarge):
        parse_audit_body(b" " * (limits.max_body + 1), limits)
    for bad in (b"[]", b"{", b'{"a": NaN}', b"\xff"):
        with pytest.raises(BadRequest):
            parse_audit_body(bad, limits)


def test_the_flat_tree_builds_paths_only_on_demand() -> None:
    tree = {"dependencies": {"a": {"version": "1", "dependencies": {"b": {"version": "2"}}},
                             "c": {"dependencies": {"d": {"version": "3"}}}}}  # fmt: skip
    flat = Tree.walk(tree)
    paths = {flat.names[i]: flat.path(i) for i in range(len(flat.names))}
    assert paths == {"a": "a", "b": "a>b", "c": "c", "d": "c>d"}
    assert sorted(flat.names[i] for i in flat.modules()) == ["a", "b", "d"]  # c has no version
