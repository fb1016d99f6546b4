"""Publish checks through the registry: what is served comes from the tarball, every
stored string renders, and ownership is decided against the package at commit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.errors import BadRequest, Forbidden, InvalidPublish
from r13core.names import PackageName
from r13core.registry import Registry
from tests.npm_builders import (
    files_under,
    make_tgz,
    open_registry,
    package_json,
    package_tgz,
    publish_body,
)

A = PackageName.parse("widget")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return open_registry(tmp_path)


def served(reg: Registry) -> dict[str, dict[str, Any]]:
    """The version as the full packument, the abbreviated one and GET /:pkg/:v serve it."""
    full = json.loads(reg.packument(A, abbreviated=False).body)["versions"]["1.0.0"]
    corgi = json.loads(reg.packument(A, abbreviated=True).body)["versions"]["1.0.0"]
    one = json.loads(reg.version(A, "1.0.0").body)
    return {"full": full, "abbreviated": corgi, "version": one}


# -- manifest confusion ---------------------------------------------------------------------

TRUTH: dict[str, Any] = {
    "dependencies": {"left-pad": "^1", "evil": "^6"},
    "optionalDependencies": {"fsevents": "^2"},
    "peerDependencies": {"react": "^17"},
    "peerDependenciesMeta": {"react": {"optional": True}},
    "bundleDependencies": ["left-pad"],
    "bin": {"widget": "cli.js"},
    "directories": {"lib": "dist"},
    "scripts": {"postinstall": "node steal.js"},
    "os": ["linux"],
    "cpu": ["x64"],
    "libc": ["glibc"],
    "engines": {"node": ">=4"},
}
LIES: dict[str, Any] = {
    "dependencies": {"left-pad": "^1"},
    "optionalDependencies": {},
    "peerDependencies": {"react": "*"},
    "peerDependenciesMeta": {},
    "bundleDependencies": [],
    "bin": {"widget": "harmless.js"},
    "directories": {"lib": "lib"},
    "scripts": {"test": "jest"},
    "os": ["darwin", "linux", "win32"],
    "cpu": ["x64", "arm64"],
    "libc": ["musl"],
    "engines": {"node": ">=18"},
    "hasInstallScript": False,
}


def test_a_body_that_hides_what_the_tarball_installs_is_served_as_the_tarball_says(
    reg: Registry,
) -> None:
    tgz = package_tgz("widget", "1.0.0", **TRUTH)
    reg.put_package(A, publish_body("widget", "1.0.0", tgz, manifest=LIES), actor=Actor("alice"))
    for where, doc in served(reg).items():
        for field, value in TRUTH.items():
            if where == "abbreviated" and field in ("scripts",):
                continue  # not part of the install document
            assert doc[field] == value, (where, field)
        assert doc["hasInstallScript"] is True, where


def test_a_body_that_claims_install_scripts_the_tarball_lacks_is_not_believed(
    reg: Registry,
) -> None:
    body = publish_body(
        "widget", "1.0.0", package_tgz("widget", "1.0.0"),
        manifest={"scripts": {"install": "x"}, "hasInstallScript": True},
    )  # fmt: skip
    reg.put_package(A, body, actor=Actor("alice"))
    for doc in served(reg).values():
        assert "hasInstallScript" not in doc
        assert "scripts" not in doc


def test_a_native_module_is_marked_as_running_an_install_script(reg: Registry) -> None:
    tgz = make_tgz({"package.json": package_json("widget", "1.0.0"), "binding.gyp": "{}"})
    reg.put_package(A, publish_body("widget", "1.0.0", tgz), actor=Actor("alice"))
    doc = served(reg)["abbreviated"]
    assert doc["hasInstallScript"] is True
    assert served(reg)["full"]["scripts"] == {"install": "node-gyp rebuild"}


# -- strings that must render later (item 4) -------------------------------------------------


@pytest.mark.parametrize(
    "place",
    ["description", "readme", "keyword", "key", "dist-tag body"],
)
def test_a_publish_holding_a_lone_surrogate_is_refused_and_stores_nothing(
    reg: Registry, tmp_path: Path, place: str
) -> None:
    body = publish_body("widget", "1.0.0")
    manifest = body["versions"]["1.0.0"]
    if place == "description":
        manifest["description"] = "bad \ud800 text"
    elif place == "readme":
        body["readme"] = "\udfff"
    elif place == "keyword":
        manifest["keywords"] = ["ok", "\ud83d"]
    elif place == "key":
        manifest["funding"] = {"\udc00": "x"}
    else:
        body["dist-tags"] = {"latest": "1.0.0", "note": "\ud800"}
    with pytest.raises(BadRequest, match="lone UTF-16 surrogate"):
        reg.put_package(A, body, actor=Actor("alice"))
    assert reg.storage.package("widget") is None
    assert files_under(tmp_path / "blobs") == []


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), 10**5000, {1, 2}, b"bytes"],
    ids=["nan", "inf", "huge-int", "set", "bytes"],
)  # fmt: skip
def test_a_publish_holding_a_value_json_cannot_carry_is_refused(reg: Registry, value: Any) -> None:
    body = publish_body("widget", "1.0.0")
    body["versions"]["1.0.0"]["x"] = value
    with pytest.raises(BadRequest):
        reg.put_package(A, body, actor=Actor("alice"))
    assert reg.storage.package("widget") is None


def test_a_deprecation_message_with_a_lone_surrogate_is_refused(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    before = reg.packument(A, abbreviated=False)
    doc = json.loads(before.body)
    doc["versions"]["1.0.0"]["deprecated"] = "use \ud800 instead"
    with pytest.raises(BadRequest, match="surrogate"):
        reg.put_package(A, doc, actor=Actor("alice"))
    with pytest.raises(BadRequest, match="surrogate"):
        reg.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))
    assert reg.packument(A, abbreviated=False) == before


def test_maintainers_with_a_lone_surrogate_are_refused(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    rev = json.loads(reg.packument(A, abbreviated=False).body)["_rev"]
    with pytest.raises(BadRequest, match="surrogate"):
        reg.put_package_rev(A, rev, {"maintainers": [{"name": "b\ud800b"}]}, actor=Actor("alice"))
    assert reg.owners(A) == [{"name": "alice", "email": ""}]


def test_an_advisory_with_a_lone_surrogate_is_refused(reg: Registry) -> None:
    advisory = {
        "module_name": "widget",
        "vulnerable_versions": "<2",
        "severity": "high",
        "title": "bad \udfff",
    }
    with pytest.raises(BadRequest, match="surrogate"):
        reg.add_advisory(advisory, actor=Actor("admin"))
    assert reg.list_advisories() == []


def test_non_bmp_text_is_fine(reg: Registry) -> None:
    body = publish_body("widget", "1.0.0", manifest={"description": "emoji \U0001f600 ok"})
    reg.put_package(A, body, actor=Actor("alice"))
    assert served(reg)["full"]["description"] == "emoji \U0001f600 ok"


# -- ownership at commit ------------------------------------------------------


def only(owner: str) -> Any:
    def check(owners: list[str]) -> None:
        if owner not in owners:
            raise Forbidden(f"{owner} is not a maintainer")

    return check


def test_a_publish_to_someone_elses_package_is_refused_before_any_file(
    reg: Registry, tmp_path: Path
) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    files = files_under(tmp_path / "blobs")
    with pytest.raises(Forbidden):
        reg.put_package(
            A, publish_body("widget", "2.0.0"), actor=Actor("bob"), check_owner=only("bob")
        )
    assert files_under(tmp_path / "blobs") == files
    assert list(json.loads(reg.packument(A, abbreviated=False).body)["versions"]) == ["1.0.0"]


def test_a_package_created_while_a_publish_was_being_checked_is_not_taken_over(
    tmp_path: Path,
) -> None:
    attacker, victim = open_registry(tmp_path), open_registry(tmp_path)
    real_put = attacker.blobs.put

    def victim_commits_first(data: bytes) -> Any:
        # Between the attacker's checks (package absent) and its transaction.
        victim.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("victim"))
        return real_put(data)

    attacker.blobs.put = victim_commits_first  # type: ignore[method-assign]
    hostile = publish_body("widget", "6.6.6", manifest={"scripts": {"postinstall": "evil"}})
    with pytest.raises(Forbidden):
        attacker.put_package(A, hostile, actor=Actor("mallory"), check_owner=only("mallory"))
    doc = json.loads(victim.packument(A, abbreviated=False).body)
    assert list(doc["versions"]) == ["1.0.0"]
    assert doc["dist-tags"] == {"latest": "1.0.0"}
    assert doc["maintainers"] == [{"name": "victim", "email": ""}]
    assert victim.storage.used_version("widget", "6.6.6") is None


def test_a_maintainer_passes_the_check_at_commit(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    seen: list[list[str]] = []

    def check(owners: list[str]) -> None:
        seen.append(owners)

    reg.put_package(A, publish_body("widget", "1.1.0"), actor=Actor("alice"), check_owner=check)
    assert seen == [["alice"], ["alice"]]  # the fast refusal, then the decision at commit


def test_a_deprecation_by_someone_else_is_refused(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    doc = json.loads(reg.packument(A, abbreviated=False).body)
    doc["versions"]["1.0.0"]["deprecated"] = "gone"
    with pytest.raises(Forbidden):
        reg.put_package(A, doc, actor=Actor("bob"), check_owner=only("bob"))
    assert "deprecated" not in served(reg)["full"]


def test_an_unsafe_bin_in_the_tarball_is_refused_even_if_the_body_is_clean(
    reg: Registry, tmp_path: Path
) -> None:
    tgz = package_tgz("widget", "1.0.0", bin={"widget": "../../../../bin/sh"})
    body = publish_body("widget", "1.0.0", tgz, manifest={"bin": {"widget": "cli.js"}})
    with pytest.raises(InvalidPublish, match=r"bin\['widget'\] .* leaves the package"):
        reg.put_package(A, body, actor=Actor("alice"))
    assert files_under(tmp_path / "blobs") == []
