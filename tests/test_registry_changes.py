"""The two pieces every write is built from: the publish plan and the one change helper.

``check_publish`` (r13core/registry/publish_checks.py) is pure: given the body
and the package as it is, it returns everything the commit needs, or refuses.
``change_package`` (r13core/registry/changes.py) reads, checks, applies and
writes one package in one transaction: a change that fails leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from r13core.errors import InvalidPublish, NotFound, RevConflict, VersionExists
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.registry.changes import Draft, change_package
from r13core.registry.publish_checks import check_publish
from r13core.tarball import Limits
from tests.npm_builders import files_under, package_tgz, publish_body, registry_with

A = PackageName.parse("widget")


# -- the plan ---------------------------------------------------------------------------------


def test_the_plan_holds_everything_the_commit_needs() -> None:
    tgz = package_tgz("widget", "1.0.0", types="index.d.ts", dependencies={"dep": "^1.0.0"})
    body = publish_body("widget", "1.0.0", tgz, tag="next")
    plan = check_publish(A, body, Limits(), current=None, publisher="alice", mark_types=True)
    assert (plan.name, plan.version, plan.publisher, plan.retry) == (
        "widget",
        "1.0.0",
        "alice",
        False,
    )
    assert plan.data == tgz and plan.sha512 == hashlib.sha512(tgz).hexdigest()
    assert plan.tags == {"next": "1.0.0"} and plan.versions == ("1.0.0",)
    doc = plan.document
    assert doc["_id"] == "widget@1.0.0" and doc["_npmUser"] == {"name": "alice", "email": ""}
    assert doc["dependencies"] == {"dep": "^1.0.0"} and doc["_hasTypes"] is True
    assert doc["dist"]["shasum"] == hashlib.sha1(tgz).hexdigest()
    assert doc["dist"]["integrity"] == body["versions"]["1.0.0"]["dist"]["integrity"]


def test_types_are_marked_only_when_asked() -> None:
    body = publish_body("widget", "1.0.0", package_tgz("widget", "1.0.0", types="index.d.ts"))
    plan = check_publish(A, body, Limits(), current=None, mark_types=False)
    assert "_hasTypes" not in plan.document


def test_a_used_number_is_a_retry_or_refused_before_the_document_is_built() -> None:
    body = publish_body("widget", "1.0.0")
    first = check_publish(A, body, Limits(), current=None)
    same = check_publish(A, body, Limits(), current=["1.0.0"], used=lambda v: first.sha512)
    assert same.retry and same.document == {}
    with pytest.raises(VersionExists, match="other contents"):
        check_publish(A, body, Limits(), current=["1.0.0"], used=lambda v: "0" * 128)
    with pytest.raises(VersionExists, match="cannot be reused"):
        check_publish(A, body, Limits(), current=["2.0.0"], used=lambda v: first.sha512)


def test_a_new_package_needs_a_name_a_new_package_may_take() -> None:
    upper = PackageName.parse("Widget")
    body = publish_body("Widget", "1.0.0")
    with pytest.raises(InvalidPublish):
        check_publish(upper, body, Limits(), current=None)
    assert check_publish(upper, body, Limits(), current=["0.1.0"]).version == "1.0.0"


# -- the change helper ------------------------------------------------------------------------


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return registry_with(tmp_path, "widget", "1.0.0", "1.1.0")


def stored(reg: Registry) -> tuple[int, dict[str, Any]]:
    record = reg.storage.package("widget")
    assert record is not None
    return record.rev, record.doc


def test_a_change_that_fails_halfway_leaves_nothing(reg: Registry, tmp_path: Path) -> None:
    before = stored(reg)
    files = files_under(tmp_path / "blobs")

    def half_then_fail(draft: Draft) -> None:
        draft.remove_versions(["1.1.0"])
        draft.doc["dist-tags"]["evil"] = "1.0.0"
        raise RuntimeError("the change fails after it began")

    with pytest.raises(RuntimeError):
        change_package(reg.storage, "widget", half_then_fail)
    assert stored(reg) == before
    assert reg.storage.tarball("widget", "1.1.0") is not None
    assert files_under(tmp_path / "blobs") == files


def test_a_change_that_changes_nothing_writes_nothing(reg: Registry) -> None:
    rev, doc = stored(reg)
    done = change_package(reg.storage, "widget", lambda draft: "looked")
    assert (done.value, done.rev, done.changed, done.removed) == ("looked", rev, False, ())
    assert stored(reg) == (rev, doc)


def test_a_touched_change_gets_a_new_rev_and_modified(reg: Registry) -> None:
    rev, doc = stored(reg)

    def hand_over(draft: Draft) -> None:
        draft.doc["maintainers"] = [{"name": "zed", "email": ""}]
        draft.touch()

    assert reg.search("maintainer:zed")["objects"] == []
    done = change_package(reg.storage, "widget", hand_over)
    new_rev, new_doc = stored(reg)
    assert done.rev == new_rev > rev and done.changed
    assert new_doc["maintainers"][0]["name"] == "zed" and new_doc["modified"] >= doc["modified"]
    # The search summary is saved with it.
    hit = reg.search("maintainer:zed")["objects"]
    assert [o["package"]["name"] for o in hit] == ["widget"]


def test_the_rev_is_checked_only_when_given(reg: Registry) -> None:
    current = json.loads(reg.packument_for_write(A).body)["_rev"]
    change_package(reg.storage, "widget", lambda draft: None)  # no rev: any state
    change_package(reg.storage, "widget", lambda draft: None, rev=current)
    with pytest.raises(RevConflict):
        change_package(reg.storage, "widget", lambda draft: None, rev="1-stale")
    with pytest.raises(RevConflict):
        change_package(reg.storage, "widget", lambda draft: None, rev=None)


def test_an_absent_package_is_not_found_unless_the_change_creates_it(reg: Registry) -> None:
    with pytest.raises(NotFound):
        change_package(reg.storage, "ghost", lambda draft: None)

    def start(now: str) -> dict[str, Any]:
        owners = [{"name": "x", "email": ""}]
        return {"name": "ghost", "created": now, "modified": now, "dist-tags": {},
                "versions": {}, "time": {}, "maintainers": owners}  # fmt: skip

    untouched = change_package(reg.storage, "ghost", lambda draft: draft.new, create=start)
    assert untouched.value is True and untouched.rev is None
    assert reg.storage.package("ghost") is None  # nothing was changed, nothing written


def test_the_owner_check_sees_the_maintainers_before_the_change(reg: Registry) -> None:
    seen: list[list[str]] = []
    change_package(reg.storage, "widget", lambda draft: None, check_owner=seen.append)
    assert seen == [["alice"]]
