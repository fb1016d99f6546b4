"""After publish: npm's unpublish flow with _rev, deprecate, dist-tags and owners."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.errors import BadRequest, InvalidValue, NotFound, RevConflict, VersionExists
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.users import Role, UserStore
from tests.npm_builders import files_under, open_registry, package_tgz, publish_body

A = PackageName.parse("widget")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = open_registry(tmp_path)
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        registry.put_package(A, publish_body("widget", version), actor=Actor("alice"))
    return registry


def for_write(reg: Registry) -> dict[str, Any]:
    return json.loads(reg.packument_for_write(A).body)  # type: ignore[no-any-return]


def npm_unpublish(reg: Registry, version: str) -> None:
    """What `npm unpublish widget@<version>` sends when other versions remain."""
    doc = for_write(reg)
    del doc["versions"][version]
    reg.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))
    fresh = for_write(reg)
    reg.remove_tarball(A, f"widget-{version}.tgz", fresh["_rev"], actor=Actor("alice"))


# -- unpublish ---------------------------------------------------------------------


def test_unpublishing_a_version_removes_it_and_moves_latest(reg: Registry) -> None:
    npm_unpublish(reg, "2.0.0")
    doc = for_write(reg)
    assert list(doc["versions"]) == ["1.0.0", "1.1.0"]
    assert "2.0.0" not in doc["time"]
    assert doc["dist-tags"] == {"latest": "1.1.0"}
    with pytest.raises(NotFound):
        reg.tarball(A, "widget-2.0.0.tgz")
    assert reg.stats() == {"packages": 1, "versions": 2}


def test_tags_pointing_at_an_unpublished_version_go_with_it(reg: Registry) -> None:
    reg.set_dist_tag(A, "beta", "1.1.0", actor=Actor("alice"))
    npm_unpublish(reg, "1.1.0")
    assert reg.dist_tags(A) == {"latest": "2.0.0"}


def test_a_stale_rev_is_a_conflict(reg: Registry) -> None:
    doc = for_write(reg)
    reg.set_dist_tag(A, "beta", "1.0.0", actor=Actor("alice"))  # someone else changed it
    del doc["versions"]["2.0.0"]
    with pytest.raises(RevConflict):
        reg.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))
    with pytest.raises(RevConflict):
        reg.unpublish_package(A, doc["_rev"], actor=Actor("alice"))
    with pytest.raises(RevConflict):
        reg.remove_tarball(A, "widget-2.0.0.tgz", "1-bogus", actor=Actor("alice"))
    assert "2.0.0" in for_write(reg)["versions"]


def test_removing_the_last_version_removes_the_package(reg: Registry) -> None:
    doc = for_write(reg)
    doc["versions"] = {}
    reg.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=True)


def test_deleting_the_last_tarball_removes_the_package(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    rev = for_write(reg)["_rev"]
    reg.remove_tarball(A, "widget-1.0.0.tgz", rev, actor=Actor("alice"))
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=False)


def test_whole_package_unpublish(reg: Registry) -> None:
    reg.unpublish_package(A, for_write(reg)["_rev"], actor=Actor("alice"))
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=False)
    with pytest.raises(NotFound):
        reg.unpublish_package(A, "1-x", actor=Actor("alice"))
    assert reg.stats() == {"packages": 0, "versions": 0}


def test_unpublished_version_number_is_never_accepted_again(reg: Registry) -> None:
    npm_unpublish(reg, "2.0.0")
    with pytest.raises(VersionExists, match="cannot be reused"):
        reg.put_package(A, publish_body("widget", "2.0.0"), actor=Actor("alice"))
    other = package_tgz("widget", "2.0.0", extra_files={"b.js": "b"})
    with pytest.raises(VersionExists):
        reg.put_package(A, publish_body("widget", "2.0.0", other), actor=Actor("alice"))


def test_versions_stay_used_after_the_whole_package_goes(reg: Registry, tmp_path: Path) -> None:
    reg.unpublish_package(A, for_write(reg)["_rev"], actor=Actor("alice"))
    with pytest.raises(VersionExists):
        reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    # a new version of the same name is fine
    reg.put_package(A, publish_body("widget", "3.0.0"), actor=Actor("bob"))
    doc = for_write(reg)
    assert list(doc["versions"]) == ["3.0.0"]
    assert doc["maintainers"] == [{"name": "bob", "email": ""}]


def test_unpublish_deletes_the_version_file_at_once(reg: Registry, tmp_path: Path) -> None:
    assert len(files_under(tmp_path / "blobs")) == 3
    gone = reg.tarball(A, "widget-2.0.0.tgz").path
    npm_unpublish(reg, "2.0.0")
    assert not gone.exists()
    assert len(files_under(tmp_path / "blobs")) == 2
    assert reg.sweep(min_age=0) == 0  # nothing left for the sweep
    assert reg.tarball(A, "widget-1.0.0.tgz").path.exists()


def test_put_rev_cannot_add_versions(reg: Registry) -> None:
    doc = for_write(reg)
    doc["versions"]["9.0.0"] = dict(doc["versions"]["1.0.0"], version="9.0.0")
    with pytest.raises(BadRequest):
        reg.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))


# -- deprecate ---------------------------------------------------------------------------


def test_deprecate_and_undeprecate_a_version(reg: Registry) -> None:
    doc = for_write(reg)
    doc["versions"]["1.0.0"]["deprecated"] = "use 2.x"
    created, answer = reg.put_package(A, doc, actor=Actor("alice"))
    assert not created and answer["ok"]
    abbreviated = json.loads(reg.packument(A, abbreviated=True).body)
    assert abbreviated["versions"]["1.0.0"]["deprecated"] == "use 2.x"
    assert "deprecated" not in abbreviated["versions"]["2.0.0"]
    doc = for_write(reg)
    doc["versions"]["1.0.0"]["deprecated"] = ""
    reg.put_package(A, doc, actor=Actor("alice"))
    assert "deprecated" not in for_write(reg)["versions"]["1.0.0"]


def test_deprecate_with_a_stale_rev_is_a_conflict(reg: Registry) -> None:
    doc = for_write(reg)
    reg.set_dist_tag(A, "beta", "1.0.0", actor=Actor("alice"))
    doc["versions"]["1.0.0"]["deprecated"] = "old"
    with pytest.raises(RevConflict):
        reg.put_package(A, doc, actor=Actor("alice"))


def test_deprecate_of_an_unknown_package_is_not_found(reg: Registry) -> None:
    ghost = PackageName.parse("ghost")
    with pytest.raises(NotFound):
        reg.put_package(ghost, {"name": "ghost", "versions": {}}, actor=Actor("alice"))


def test_metadata_update_cannot_add_a_version_without_a_tarball(reg: Registry) -> None:
    doc = for_write(reg)
    doc["versions"]["5.0.0"] = {"name": "widget", "version": "5.0.0"}
    with pytest.raises(BadRequest):
        reg.put_package(A, doc, actor=Actor("alice"))


def test_deprecate_without_changes_keeps_the_rev(reg: Registry) -> None:
    doc = for_write(reg)
    _, answer = reg.put_package(A, doc, actor=Actor("alice"))
    assert answer["rev"] == doc["_rev"]


# -- dist-tags ---------------------------------------------------------------------------


def test_dist_tags_add_list_move_and_remove(reg: Registry) -> None:
    assert reg.dist_tags(A) == {"latest": "2.0.0"}
    reg.set_dist_tag(A, "beta", "1.1.0", actor=Actor("alice"))
    assert reg.dist_tags(A) == {"latest": "2.0.0", "beta": "1.1.0"}
    reg.set_dist_tag(A, "beta", "1.0.0", actor=Actor("alice"))
    assert reg.dist_tags(A)["beta"] == "1.0.0"
    reg.remove_dist_tag(A, "beta", actor=Actor("alice"))
    assert reg.dist_tags(A) == {"latest": "2.0.0"}


def test_moving_latest_updates_the_packument(reg: Registry) -> None:
    reg.set_dist_tag(A, "latest", "1.0.0", actor=Actor("alice"))
    assert json.loads(reg.version(A, "latest").body)["version"] == "1.0.0"
    assert for_write(reg)["dist-tags"]["latest"] == "1.0.0"


@pytest.mark.parametrize("tag", ["1.0.0", "v1", "1", "^1.0.0", ">=2", "x", "", "a/b", "sp ace"])
def test_tags_that_read_as_versions_or_ranges_or_are_not_url_safe_are_refused(
    reg: Registry, tag: str
) -> None:
    with pytest.raises(InvalidValue):
        reg.set_dist_tag(A, tag, "1.0.0", actor=Actor("alice"))


def test_latest_cannot_be_removed(reg: Registry) -> None:
    with pytest.raises(InvalidValue, match="latest"):
        reg.remove_dist_tag(A, "latest", actor=Actor("alice"))


def test_a_tag_must_point_at_an_existing_version(reg: Registry) -> None:
    with pytest.raises(NotFound):
        reg.set_dist_tag(A, "beta", "9.9.9", actor=Actor("alice"))
    with pytest.raises(InvalidValue):
        reg.set_dist_tag(A, "beta", "not-a-version", actor=Actor("alice"))


def test_removing_an_absent_tag_is_not_found(reg: Registry) -> None:
    with pytest.raises(NotFound):
        reg.remove_dist_tag(A, "nope", actor=Actor("alice"))


# -- owners ---------------------------------------------------------------------------------


def test_owners_start_with_the_publisher_and_change_through_put_rev(reg: Registry) -> None:
    assert reg.owners(A) == [{"name": "alice", "email": ""}]
    doc = for_write(reg)
    maintainers = [{"name": "alice", "email": ""}, {"name": "bob", "email": "b@x.test"}]
    with pytest.raises(BadRequest, match="no user 'bob'"):  # nobody has that name yet
        reg.put_package_rev(A, doc["_rev"], {"_id": "widget", "maintainers": maintainers},
                            actor=Actor("a"))  # fmt: skip
    UserStore(reg.storage).add("bob", "bob's password", Role.PUBLISHER)
    reg.put_package_rev(
        A, doc["_rev"], {"_id": "widget", "maintainers": maintainers}, actor=Actor("a")
    )
    assert reg.owners(A) == maintainers
    assert for_write(reg)["maintainers"] == maintainers
    assert list(for_write(reg)["versions"]) == ["1.0.0", "1.1.0", "2.0.0"]


def test_owners_cannot_be_emptied(reg: Registry) -> None:
    doc = for_write(reg)
    with pytest.raises(BadRequest):
        reg.put_package_rev(A, doc["_rev"], {"maintainers": []}, actor=Actor("alice"))
