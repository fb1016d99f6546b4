"""Ownership is decided again at commit, for every change to a package.

The app decides early (app/auth.py ``Guard.require``, before the body is read)
against the maintainers it looked up then; the registry asks the same check
again inside its write transaction (r13core/registry/changes.py), with the
maintainers the package has at that moment. So an owner removed, or a package
taken over, while a request was on its way cannot be changed by it: not by a
publish or a deprecation, and not by a dist-tag move, an owner change or an
unpublish either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from r13core.audit import Actor
from r13core.errors import Forbidden
from r13core.names import PackageName
from r13core.registry import OwnerCheck, Registry
from r13core.users import Role, UserStore
from tests.identity_app import PW, Served, serve
from tests.npm_builders import open_registry, publish_body, registry_with

A = PackageName.parse("widget")
BOB = Actor("bob", "203.0.113.9")


def only(owner: str, seen: list[list[str]] | None = None) -> OwnerCheck:
    """The check for ``owner``: refuses a package ``owner`` does not maintain."""

    def check(owners: list[str]) -> None:
        if seen is not None:
            seen.append(list(owners))
        if owner not in owners:
            raise Forbidden(f"{owner} is not a maintainer")

    return check


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = registry_with(tmp_path, "widget", "1.0.0", "1.1.0")
    registry.set_dist_tag(A, "beta", "1.0.0", actor=Actor("alice"))
    return registry


def write_doc(reg: Registry) -> dict[str, Any]:
    return json.loads(reg.packument_for_write(A).body)  # type: ignore[no-any-return]


# Each change bob might make to alice's package, through the registry's API.
Change = Callable[[Registry, OwnerCheck], None]


def without_version(reg: Registry, check: OwnerCheck) -> None:
    doc = write_doc(reg)
    del doc["versions"]["1.1.0"]
    reg.put_package_rev(A, doc["_rev"], doc, actor=BOB, check_owner=check)


def with_bob_as_owner(reg: Registry, check: OwnerCheck) -> None:
    owners = {"maintainers": [{"name": "bob", "email": ""}]}
    reg.put_package_rev(A, write_doc(reg)["_rev"], owners, actor=BOB, check_owner=check)


def whole_package(reg: Registry, check: OwnerCheck) -> None:
    reg.unpublish_package(A, write_doc(reg)["_rev"], actor=BOB, check_owner=check)


def one_tarball(reg: Registry, check: OwnerCheck) -> None:
    rev = write_doc(reg)["_rev"]
    reg.remove_tarball(A, "widget-1.1.0.tgz", rev, actor=BOB, check_owner=check)


def tag_set(reg: Registry, check: OwnerCheck) -> None:
    reg.set_dist_tag(A, "beta", "1.1.0", actor=BOB, check_owner=check)


def tag_removed(reg: Registry, check: OwnerCheck) -> None:
    reg.remove_dist_tag(A, "beta", actor=BOB, check_owner=check)


def deprecated(reg: Registry, check: OwnerCheck) -> None:
    doc = write_doc(reg)
    doc["versions"]["1.0.0"]["deprecated"] = "bob says no"
    reg.put_package(A, doc, actor=BOB, check_owner=check)


def published(reg: Registry, check: OwnerCheck) -> None:
    reg.put_package(A, publish_body("widget", "6.6.6"), actor=BOB, check_owner=check)


CHANGES: list[Change] = [
    without_version,
    with_bob_as_owner,
    whole_package,
    one_tarball,
    tag_set,
    tag_removed,
    deprecated,
    published,
]
NAMES = [c.__name__ for c in CHANGES]


@pytest.mark.parametrize("change", CHANGES, ids=NAMES)
def test_every_change_is_refused_at_commit_for_a_non_maintainer(
    reg: Registry, change: Change
) -> None:
    before = write_doc(reg)
    events = reg.audit.page()["events"]
    with pytest.raises(Forbidden):
        change(reg, only("bob"))
    assert write_doc(reg) == before
    assert reg.audit.page()["events"] == events  # nothing happened, nothing recorded


@pytest.mark.parametrize("change", CHANGES, ids=NAMES)
def test_every_change_asks_with_the_maintainers_as_they_are_at_commit(
    reg: Registry, change: Change, tmp_path: Path
) -> None:
    other = open_registry(tmp_path)  # another worker on the same data dir
    UserStore(other.storage).add("bob", PW, Role.PUBLISHER)
    owners = [{"name": "alice", "email": ""}, {"name": "bob", "email": ""}]
    rev = write_doc(reg)["_rev"]
    other.put_package_rev(A, rev, {"maintainers": owners}, actor=Actor("alice"))
    seen: list[list[str]] = []
    change(reg, only("bob", seen))
    assert seen[-1] == ["alice", "bob"]  # the check that counted saw the committed owners


# -- through HTTP: the early check passed on an owner list that is stale by commit ----------

QUOTE_JSON = {"Content-Type": "application/json"}


@pytest.fixture
def stale(tmp_path: Path) -> Iterator[tuple[Served, dict[str, str]]]:
    """alice's ``widget``; the app's early lookup still believes bob maintains it."""

    def owners_when_the_request_began(name: PackageName) -> list[dict[str, Any]]:
        return [{"name": "alice", "email": ""}, {"name": "bob", "email": ""}]

    served = serve(tmp_path / "data", owners=owners_when_the_request_began)
    served.users.add("alice", PW, Role.PUBLISHER)
    served.users.add("bob", PW, Role.PUBLISHER)
    alice = served.session("alice")
    for version in ("1.0.0", "1.1.0"):
        assert served.publish("widget", version, alice).status_code == 201
    assert (
        served.client.simulate_put(
            "/-/package/widget/dist-tags/beta", body='"1.0.0"', headers={**alice, **QUOTE_JSON}
        ).status_code
        == 201
    )
    yield served, served.session("bob")
    served.config.close()


def _doc(served: Served, headers: dict[str, str]) -> dict[str, Any]:
    r = served.client.simulate_get("/widget", params={"write": "true"}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json  # type: ignore[no-any-return]


HttpChange = Callable[[Served, dict[str, str]], falcon.testing.Result]


def http_unpublish_version(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    doc = _doc(s, bob)
    del doc["versions"]["1.1.0"]
    return s.client.simulate_put(f"/widget/-rev/{doc['_rev']}", json=doc, headers=bob)


def http_take_ownership(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    body = {"_id": "widget", "maintainers": [{"name": "bob", "email": ""}]}
    return s.client.simulate_put(f"/widget/-rev/{_doc(s, bob)['_rev']}", json=body, headers=bob)


def http_unpublish_package(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    return s.client.simulate_delete(f"/widget/-rev/{_doc(s, bob)['_rev']}", headers=bob)


def http_remove_tarball(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    rev = _doc(s, bob)["_rev"]
    return s.client.simulate_delete(f"/widget/-/widget-1.1.0.tgz/-rev/{rev}", headers=bob)


def http_set_tag(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    return s.client.simulate_put(
        "/-/package/widget/dist-tags/latest", body='"1.0.0"', headers={**bob, **QUOTE_JSON}
    )


def http_remove_tag(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    return s.client.simulate_delete("/-/package/widget/dist-tags/beta", headers=bob)


def http_deprecate(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    doc = _doc(s, bob)
    doc["versions"]["1.0.0"]["deprecated"] = "bob says no"
    return s.client.simulate_put("/widget", json=doc, headers=bob)


def http_publish(s: Served, bob: dict[str, str]) -> falcon.testing.Result:
    return s.client.simulate_put("/widget", json=publish_body("widget", "6.6.6"), headers=bob)


HTTP_CHANGES: list[HttpChange] = [
    http_unpublish_version,
    http_take_ownership,
    http_unpublish_package,
    http_remove_tarball,
    http_set_tag,
    http_remove_tag,
    http_deprecate,
    http_publish,
]


@pytest.mark.parametrize("change", HTTP_CHANGES, ids=[c.__name__ for c in HTTP_CHANGES])
def test_a_stale_early_owner_check_is_overruled_at_commit(
    stale: tuple[Served, dict[str, str]], change: HttpChange
) -> None:
    served, bob = stale
    before = _doc(served, bob)
    events = served.audit.page()["events"]
    answer = change(served, bob)
    assert answer.status_code == 403, answer.text
    assert "maintainer" in answer.json["error"]
    assert _doc(served, bob) == before
    assert served.audit.page()["events"] == events
