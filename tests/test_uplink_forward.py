"""npm audit and search while PROXY_MODE is on: forwarded upstream, merged with local ones."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.npm_builders import publish_body
from tests.uplink_app import ProxyApp, build
from tests.uplink_fakes import FaultyUpstream

BULK = "/-/npm/v1/security/advisories/bulk"
UPSTREAM_ADVISORY = {
    "id": 1096303,
    "url": "https://github.com/advisories/GHSA-x",
    "title": "ReDoS in left-pad",
    "severity": "moderate",
    "vulnerable_versions": "<1.1.0",
    "cwe": ["CWE-1333"],
    "cvss": {"score": 5.3, "vectorString": None},
}


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream().start()
    up.add("left-pad", "1.0.0", "1.1.0")
    up.add("left-right", "3.0.0")
    up.add("@team/core", "1.0.0")
    up.advisories["left-pad"] = [UPSTREAM_ADVISORY]
    up.advisories["@team/core"] = [dict(UPSTREAM_ADVISORY, id=1, title="look-alike")]
    yield up
    up.stop()


@pytest.fixture
def app(tmp_path: Path, upstream: FaultyUpstream) -> ProxyApp:
    built = build(tmp_path, upstream.url, {"R13_PRIVATE_SCOPES": "@team"})
    local = {
        "module_name": "left-pad",
        "title": "Local finding",
        "severity": "high",
        "vulnerable_versions": "<2.0.0",
    }
    added = built.client.simulate_post("/_api/advisories", json=local, headers=built.admin)
    assert added.status_code == 201
    return built


def bulk(app: ProxyApp, body: dict[str, list[str]]) -> dict[str, list[dict[str, object]]]:
    answer = app.client.simulate_post(
        BULK,
        body=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, list[dict[str, object]]] = answer.json
    return result


def test_bulk_audit_merges_local_and_upstream_advisories(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    found = bulk(app, {"left-pad": ["1.0.0"], "@team/core": ["1.0.0"]})
    titles = [a["title"] for a in found["left-pad"]]
    assert titles == ["Local finding", "ReDoS in left-pad"]
    # A private name is never sent upstream, so no look-alike advisory comes back.
    assert "@team/core" not in found
    sent = [h for h in upstream.seen_headers if h.get("Content-Type") == "application/json"]
    assert len(sent) == 1
    assert upstream.count(BULK) == 1


def test_bulk_audit_without_proxy_mode_is_local_only(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    from r13core.config import Feature

    app.services.config.set_feature(Feature.PROXY_MODE, False)
    found = bulk(app, {"left-pad": ["1.0.0"]})
    assert [a["title"] for a in found["left-pad"]] == ["Local finding"]
    assert upstream.count(BULK) == 0


def test_an_audit_the_upstream_cannot_answer_is_an_error_not_a_clean_report(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    upstream.default_mode = "5xx"
    answer = app.client.simulate_post(BULK, json={"left-pad": ["1.0.0"]})
    assert answer.status_code == 502
    assert "error" in answer.json


def test_the_legacy_quick_audit_includes_upstream_advisories(app: ProxyApp) -> None:
    tree = {
        "name": "app",
        "version": "1.0.0",
        "requires": {"left-pad": "^1.0.0"},
        "dependencies": {"left-pad": {"version": "1.0.0"}},
    }
    answer = app.client.simulate_post("/-/npm/v1/security/audits/quick", json=tree)
    assert answer.status_code == 200
    titles = sorted(a["title"] for a in answer.json["advisories"].values())
    assert titles == ["Local finding", "ReDoS in left-pad"]
    assert answer.json["metadata"]["vulnerabilities"]["moderate"] == 1


def test_search_adds_upstream_results_marked_after_local_ones(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    assert app.publish("left-local", publish_body("left-local", "1.0.0")).status_code == 201
    found = app.client.simulate_get("/-/v1/search", params={"text": "left"}).json
    names = [o["package"]["name"] for o in found["objects"]]
    assert names[0] == "left-local"
    assert set(names[1:]) == {"left-pad", "left-right"}
    assert "flags" not in found["objects"][0] or not found["objects"][0]["flags"].get("upstream")
    assert all(o["flags"]["upstream"] is True for o in found["objects"][1:])
    assert found["total"] == 3


def test_search_never_lists_private_names_from_upstream(app: ProxyApp) -> None:
    found = app.client.simulate_get("/-/v1/search", params={"text": "core"}).json
    assert [o["package"]["name"] for o in found["objects"]] == []


def test_search_survives_a_failing_upstream(app: ProxyApp, upstream: FaultyUpstream) -> None:
    assert app.publish("left-local", publish_body("left-local", "1.0.0")).status_code == 201
    upstream.default_mode = "reset"
    found = app.client.simulate_get("/-/v1/search", params={"text": "left"})
    assert found.status_code == 200
    assert [o["package"]["name"] for o in found.json["objects"]] == ["left-local"]
    assert "upstream_error" in found.json
