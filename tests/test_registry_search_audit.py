"""Search ranking and response shape; advisories, the bulk audit and the legacy report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.errors import BadRequest, InvalidValue, NotFound
from r13core.names import PackageName
from r13core.registry import Registry
from tests.npm_builders import open_registry, publish_body


def publish(reg: Registry, name: str, version: str = "1.0.0", **manifest: Any) -> None:
    body = publish_body(name, version, manifest=manifest)
    if "description" in manifest:
        body["description"] = manifest["description"]
    reg.put_package(PackageName.parse(name), body, actor=Actor("alice"))


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = open_registry(tmp_path)
    publish(registry, "color", description="paint things", keywords=["ansi"])
    publish(registry, "color-convert", description="convert colors", keywords=["color"])
    publish(registry, "@acme/colorful", description="fancy output")
    publish(registry, "chalk", description="terminal string styling with color", keywords=["ansi"])
    publish(registry, "lodash", description="utilities", keywords=["util"])
    return registry


def names(result: dict[str, Any]) -> list[str]:
    return [o["package"]["name"] for o in result["objects"]]


# -- search ------------------------------------------------------------------------------


def test_search_ranks_exact_name_then_name_prefix_then_description(
    reg: Registry,
) -> None:
    result = reg.search("color", 20, 0)
    # prefix matches tie; the one with more metadata (keywords) ranks first
    assert names(result) == ["color", "color-convert", "@acme/colorful", "chalk"]
    assert result["total"] == 4
    scores = [o["searchScore"] for o in result["objects"]]
    assert scores == sorted(scores, reverse=True)


def test_search_result_has_npms_shape(reg: Registry) -> None:
    result = reg.search("lodash", 20, 0)
    assert set(result) == {"objects", "total", "time"}
    obj = result["objects"][0]
    assert set(obj) == {"package", "score", "searchScore"}
    pkg = obj["package"]
    for field in (
        "name",
        "version",
        "description",
        "keywords",
        "date",
        "links",
        "publisher",
        "maintainers",
    ):
        assert field in pkg
    assert pkg["version"] == "1.0.0"
    assert pkg["publisher"]["username"] == "alice"
    assert pkg["maintainers"] == [{"username": "alice", "email": ""}]
    assert set(obj["score"]["detail"]) == {"quality", "popularity", "maintenance"}
    assert 0 < obj["score"]["final"] <= 1


def test_all_terms_must_match(reg: Registry) -> None:
    assert names(reg.search("color ansi", 20, 0)) == ["color", "chalk"]
    assert reg.search("color nothing-like-this", 20, 0)["total"] == 0


def test_search_pages_with_size_and_from(reg: Registry) -> None:
    everything = names(reg.search("", 20, 0))
    assert len(everything) == 5
    assert names(reg.search("", 2, 1)) == everything[1:3]
    assert reg.search("", 2, 1)["total"] == 5


def test_search_qualifiers_filter(reg: Registry) -> None:
    assert names(reg.search("keywords:ansi", 20, 0)) == ["chalk", "color"]
    assert names(reg.search("scope:acme", 20, 0)) == ["@acme/colorful"]
    assert reg.search("maintainer:alice", 20, 0)["total"] == 5
    assert reg.search("author:nobody", 20, 0)["total"] == 0


def test_search_sees_deprecations_removals_and_new_versions(reg: Registry) -> None:
    publish(reg, "lodash", "2.0.0", description="utilities")
    assert reg.search("lodash", 20, 0)["objects"][0]["package"]["version"] == "2.0.0"


# -- advisories -------------------------------------------------------------------------------

ADVISORY = {
    "module_name": "lodash",
    "title": "Prototype pollution",
    "severity": "high",
    "vulnerable_versions": "<1.2.0",
    "patched_versions": ">=1.2.0",
    "url": "https://example.test/advisories/1",
    "cwe": ["CWE-1321"],
}


def test_advisories_are_added_listed_and_removed(reg: Registry) -> None:
    added = reg.add_advisory(ADVISORY, actor=Actor("admin"))
    assert added["id"] > 0 and added["created_by"] == "admin"
    assert [a["id"] for a in reg.list_advisories()] == [added["id"]]
    reg.remove_advisory(str(added["id"]), actor=Actor("admin"))
    assert reg.list_advisories() == []
    with pytest.raises(NotFound):
        reg.remove_advisory(added["id"], actor=Actor("admin"))
    with pytest.raises(NotFound):
        reg.remove_advisory("not-a-number", actor=Actor("admin"))


@pytest.mark.parametrize(
    "change",
    [
        {"module_name": None},
        {"module_name": "Bad Name"},
        {"vulnerable_versions": "not a range!"},
        {"vulnerable_versions": ""},
        {"severity": "apocalyptic"},
        {"title": ""},
        {"cwe": [1]},
    ],
)
def test_bad_advisories_are_refused(reg: Registry, change: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue):
        reg.add_advisory({**ADVISORY, **change}, actor=Actor("admin"))
    assert reg.list_advisories() == []


def test_bulk_audit_answers_advisories_whose_range_holds_a_requested_version(
    reg: Registry,
) -> None:
    adv = reg.add_advisory(ADVISORY, actor=Actor("admin"))
    reg.add_advisory(
        {**ADVISORY, "vulnerable_versions": ">=5.0.0", "title": "other"}, actor=Actor("a")
    )
    answer = reg.audit_bulk({"lodash": ["1.0.0", "1.3.0"], "chalk": ["1.0.0"]})
    assert list(answer) == ["lodash"]
    assert answer["lodash"] == [
        {
            "id": adv["id"],
            "url": ADVISORY["url"],
            "title": "Prototype pollution",
            "severity": "high",
            "vulnerable_versions": "<1.2.0",
            "cwe": ["CWE-1321"],
            "cvss": {"score": 0, "vectorString": None},
        }
    ]


def test_bulk_audit_is_empty_when_nothing_is_vulnerable(reg: Registry) -> None:
    reg.add_advisory(ADVISORY, actor=Actor("admin"))
    assert reg.audit_bulk({"lodash": ["1.2.0"], "unknown-pkg": ["0.0.1"]}) == {}
    assert reg.audit_bulk({}) == {}


def test_bulk_audit_body_must_be_names_to_version_lists(reg: Registry) -> None:
    with pytest.raises(BadRequest):
        reg.audit_bulk({"lodash": "1.0.0"})  # type: ignore[dict-item]


LOCK_TREE = {
    "name": "app",
    "version": "1.0.0",
    "requires": {"lodash": "^1.0.0", "chalk": "^1.0.0"},
    "dependencies": {
        "lodash": {"version": "1.1.0", "requires": {}},
        "chalk": {
            "version": "1.0.0",
            "requires": {"lodash": "^1.0.0"},
            "dependencies": {"lodash": {"version": "1.0.5"}},
        },
        "mocha": {
            "version": "10.0.0",
            "dev": True,
            "dependencies": {"lodash": {"version": "1.3.0", "dev": True}},
        },
        "fsevents": {"version": "2.0.0", "optional": True},
    },
}


def test_quick_audit_reports_findings_paths_actions_and_counts(reg: Registry) -> None:
    adv = reg.add_advisory(ADVISORY, actor=Actor("admin"))
    report = reg.audit_quick(LOCK_TREE)
    assert set(report) == {"actions", "advisories", "muted", "metadata"}
    entry = report["advisories"][str(adv["id"])]
    assert entry["module_name"] == "lodash"
    assert entry["severity"] == "high"
    assert entry["vulnerable_versions"] == "<1.2.0"
    assert entry["patched_versions"] == ">=1.2.0"
    findings = {f["version"]: f["paths"] for f in entry["findings"]}
    assert findings == {"1.1.0": ["lodash"], "1.0.5": ["chalk>lodash"]}
    assert report["actions"][0]["action"] == "review"
    assert {r["path"] for r in report["actions"][0]["resolves"]} == {"lodash", "chalk>lodash"}
    meta = report["metadata"]
    assert meta["vulnerabilities"] == {"info": 0, "low": 0, "moderate": 0, "high": 2, "critical": 0}
    assert meta["dependencies"] == 3
    assert meta["devDependencies"] == 2
    assert meta["optionalDependencies"] == 1
    assert meta["totalDependencies"] == 6
    assert report["muted"] == []


def test_quick_audit_of_a_clean_tree(reg: Registry) -> None:
    report = reg.audit_quick(LOCK_TREE)
    assert report["advisories"] == {} and report["actions"] == []
    assert sum(report["metadata"]["vulnerabilities"].values()) == 0


def test_quick_audit_skips_malformed_nodes(reg: Registry) -> None:
    reg.add_advisory(ADVISORY, actor=Actor("admin"))
    tree = {"dependencies": {"lodash": "1.0.0", "x": {"dependencies": []}, "ok": {"version": 1}}}
    assert reg.audit_quick(tree)["advisories"] == {}
    with pytest.raises(BadRequest):
        reg.audit_quick([])  # type: ignore[arg-type]


def test_search_finds_packages_saved_without_a_summary(reg: Registry) -> None:
    record = reg.storage.package("lodash")
    assert record is not None
    with reg.storage.write() as tx:  # as a row from before summaries existed
        tx.save_package("lodash", record.doc)
    assert names(reg.search("lodash", 20, 0)) == ["lodash"]
    assert reg.search("lodash", 20, 0)["objects"][0]["package"]["description"] == "utilities"
