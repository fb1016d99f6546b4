"""What a registry remembers between requests (r13core/registry/recent.py) is never stale:
a change made through another registry on the same data dir (another worker) is seen at
once — tarball lookups, maintainers and a publish's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.errors import Forbidden, NotFound
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.users import Role, UserStore
from tests.npm_builders import open_registry, publish_body

A = PackageName.parse("gizmo")


def _doc(reg: Registry) -> dict[str, Any]:
    return json.loads(reg.packument(A, abbreviated=False).body)  # type: ignore[no-any-return]


def test_a_tarball_remembered_by_one_worker_goes_when_another_unpublishes_it(
    tmp_path: Path,
) -> None:
    one, two = open_registry(tmp_path), open_registry(tmp_path)
    one.put_package(A, publish_body("gizmo", "1.0.0"), actor=Actor("alice"))
    one.put_package(A, publish_body("gizmo", "1.1.0"), actor=Actor("alice"))
    first = two.tarball(A, "gizmo-1.0.0.tgz")
    assert two.tarball(A, "gizmo-1.0.0.tgz") == first  # remembered: the same answer
    doc = _doc(one)
    del doc["versions"]["1.0.0"]
    one.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))
    with pytest.raises(NotFound):
        two.tarball(A, "gizmo-1.0.0.tgz")
    assert two.tarball(A, "gizmo-1.1.0.tgz").path.is_file()
    one.unpublish_package(A, _doc(one)["_rev"], actor=Actor("alice"))
    with pytest.raises(NotFound):
        two.tarball(A, "gizmo-1.1.0.tgz")


def test_maintainers_and_publish_checks_follow_changes_made_elsewhere(tmp_path: Path) -> None:
    one, two = open_registry(tmp_path), open_registry(tmp_path)
    one.put_package(A, publish_body("gizmo", "1.0.0"), actor=Actor("alice"))
    assert [m["name"] for m in two.owners(A)] == ["alice"]  # two remembers this document
    UserStore(one.storage).add("bob", "correct horse battery", Role.PUBLISHER)
    doc = _doc(one)
    doc["maintainers"] = [{"name": "bob", "email": ""}]
    one.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))
    assert [m["name"] for m in two.owners(A)] == ["bob"]

    def only(owners: list[str]) -> None:  # as the app's owner check: alice is no owner now
        if "alice" not in owners:
            raise Forbidden("alice is not a maintainer")

    with pytest.raises(Forbidden):
        two.put_package(A, publish_body("gizmo", "2.0.0"), actor=Actor("alice"), check_owner=only)
    # A version published by one is known to two's checks: publishing it again is a retry.
    one.put_package(A, publish_body("gizmo", "3.0.0"), actor=Actor("bob"))
    created, _ = two.put_package(A, publish_body("gizmo", "3.0.0"), actor=Actor("bob"))
    assert created and list(_doc(two)["versions"]) == ["1.0.0", "3.0.0"]
    one.unpublish_package(A, _doc(one)["_rev"], actor=Actor("bob"))
    with pytest.raises(NotFound):
        two.owners(A)
