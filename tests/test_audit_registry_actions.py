"""Every registry write, from HTTP, writes exactly one audit event: who, what, from where.

The registry records its own events (r13core/registry/service.py), after the
change has committed; the HTTP resources only pass who acts (the principal and
the client address the security middleware resolved). Each case below is one
write route of the npm protocol or the admin API, run through the in-process
app over a real data dir; the audit log must then hold exactly one new event,
with the action name, target and detail fields the log has always used, the
actor's name and the request's address. A refused write records nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from r13core.users import Role
from tests.identity_app import PW, Served, quote, serve
from tests.npm_builders import publish_body

ADDRESS = "192.0.2.7"
JSON = {"Content-Type": "application/json"}
ADVISORY = {"vulnerable_versions": "<1.1.0", "severity": "high", "title": "widget is bad"}


@dataclass
class World:
    """A data dir with ``widget`` 1.0.0 and 1.1.0 (alice's, tag ``beta``) and an advisory."""

    served: Served
    alice: dict[str, str]
    advisory_id: int

    def rev(self, name: str = "widget") -> str:
        return str(self.write_doc(name)["_rev"])

    def write_doc(self, name: str = "widget") -> dict[str, Any]:
        r = self.served.client.simulate_get(
            f"/{quote(name)}", params={"write": "true"}, headers=self.alice
        )
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json
        return doc

    def put(self, path: str, headers: dict[str, str], **kw: Any) -> falcon.testing.Result:
        return self.served.client.simulate_put(path, headers=headers, remote_addr=ADDRESS, **kw)

    def post(self, path: str, headers: dict[str, str], **kw: Any) -> falcon.testing.Result:
        return self.served.client.simulate_post(path, headers=headers, remote_addr=ADDRESS, **kw)

    def delete(self, path: str, headers: dict[str, str]) -> falcon.testing.Result:
        return self.served.client.simulate_delete(path, headers=headers, remote_addr=ADDRESS)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    served = serve(tmp_path / "data")
    served.users.add("alice", PW, Role.PUBLISHER)
    served.users.add("bob", PW, Role.PUBLISHER)
    alice = served.session("alice")
    for version in ("1.0.0", "1.1.0"):
        assert served.publish("widget", version, alice).status_code == 201
    tag = served.client.simulate_put(
        "/-/package/widget/dist-tags/beta", body='"1.0.0"', headers={**alice, **JSON}
    )
    assert tag.status_code == 201, tag.text
    added = served.client.simulate_post(
        "/_api/advisories", json={"module_name": "widget", **ADVISORY}, headers=served.admin
    )
    assert added.status_code == 201, added.text
    yield World(served, alice, added.json["id"])
    served.config.close()


def events(served: Served) -> list[dict[str, Any]]:
    """Every event in the log, oldest first."""
    page = served.audit.page(limit=1000)
    assert page["next"] is None
    return list(reversed(page["events"]))


# -- the write routes ------------------------------------------------------------------------


def publish(w: World) -> falcon.testing.Result:
    return w.put("/widget", w.alice, json=publish_body("widget", "2.0.0"))


def publish_scoped(w: World) -> falcon.testing.Result:
    return w.put(f"/{quote('@team/thing')}", w.alice, json=publish_body("@team/thing", "0.1.0"))


def deprecate(w: World) -> falcon.testing.Result:
    doc = w.write_doc()
    doc["versions"]["1.0.0"]["deprecated"] = "use 1.1.0"
    return w.put("/widget", w.alice, json=doc)


def unpublish_version(w: World) -> falcon.testing.Result:
    doc = w.write_doc()
    del doc["versions"]["1.1.0"]
    return w.put(f"/widget/-rev/{doc['_rev']}", w.alice, json=doc)


def change_owners(w: World) -> falcon.testing.Result:
    owners = [{"name": "alice", "email": ""}, {"name": "bob", "email": ""}]
    return w.put(f"/widget/-rev/{w.rev()}", w.alice, json={"_id": "widget", "maintainers": owners})


def unpublish_package(w: World) -> falcon.testing.Result:
    return w.delete(f"/widget/-rev/{w.rev()}", w.alice)


def remove_tarball(w: World) -> falcon.testing.Result:
    return w.delete(f"/widget/-/widget-1.1.0.tgz/-rev/{w.rev()}", w.alice)


def set_tag(w: World) -> falcon.testing.Result:
    return w.put("/-/package/widget/dist-tags/next", {**w.alice, **JSON}, body='"1.1.0"')


def set_tag_by_post(w: World) -> falcon.testing.Result:
    return w.post("/-/package/widget/dist-tags/next", {**w.alice, **JSON}, body='"1.1.0"')


def remove_tag(w: World) -> falcon.testing.Result:
    return w.delete("/-/package/widget/dist-tags/beta", w.alice)


def add_advisory(w: World) -> falcon.testing.Result:
    return w.post("/_api/advisories", w.served.admin, json={"module_name": "widget", **ADVISORY})


def add_advisory_by_package(w: World) -> falcon.testing.Result:
    return w.post("/_api/advisories", w.served.admin, json={"package": "widget", **ADVISORY})


def remove_advisory(w: World) -> falcon.testing.Result:
    return w.delete(f"/_api/advisories/{w.advisory_id}", w.served.admin)


@dataclass(frozen=True)
class Expected:
    status: int
    actor: str
    action: str
    target: str | Callable[[World], str]
    detail: dict[str, Any]


TGZ = "widget-1.1.0.tgz"
NEXT = {"tag": "next", "version": "1.1.0"}
CASES: dict[Callable[[World], falcon.testing.Result], Expected] = {
    publish: Expected(201, "alice", "publish", "widget", {"versions": ["2.0.0"]}),
    publish_scoped: Expected(201, "alice", "publish", "@team/thing", {"versions": ["0.1.0"]}),
    deprecate: Expected(200, "alice", "package.update", "widget", {"versions": []}),
    unpublish_version: Expected(201, "alice", "package.change", "widget", {}),
    change_owners: Expected(201, "alice", "package.change", "widget", {}),
    unpublish_package: Expected(200, "alice", "unpublish", "widget", {}),
    remove_tarball: Expected(200, "alice", "unpublish.tarball", "widget", {"file": TGZ}),
    set_tag: Expected(201, "alice", "dist-tag.set", "widget", NEXT),
    set_tag_by_post: Expected(201, "alice", "dist-tag.set", "widget", NEXT),
    remove_tag: Expected(200, "alice", "dist-tag.remove", "widget", {"tag": "beta"}),
    # The stored package name, whichever field the body named it with.
    add_advisory: Expected(201, "key:root", "advisory.add", "widget", {}),
    add_advisory_by_package: Expected(201, "key:root", "advisory.add", "widget", {}),
    remove_advisory: Expected(200, "key:root", "advisory.remove", lambda w: str(w.advisory_id), {}),
}  # fmt: skip


@pytest.mark.parametrize("write", list(CASES), ids=lambda f: f.__name__)
def test_each_registry_write_records_one_event_with_actor_and_address(
    world: World, write: Callable[[World], falcon.testing.Result]
) -> None:
    expected = CASES[write]
    before = events(world.served)
    answer = write(world)
    assert answer.status_code == expected.status, answer.text
    new = events(world.served)[len(before) :]
    assert len(new) == 1, new
    (event,) = new
    target = expected.target(world) if callable(expected.target) else expected.target
    assert (event["actor"], event["ip"]) == (expected.actor, ADDRESS)
    assert (event["action"], event["target"], event["detail"]) == (
        expected.action,
        target,
        expected.detail,
    )


def test_every_registry_write_route_has_a_case() -> None:
    """The audited actions named in r13core/registry/service.py are all exercised above."""
    source = (Path(__file__).parent.parent / "r13core/registry/service.py").read_text()
    named = set(re.findall(r'self\._record\(\s*actor,\s*"([^"]+)"', source))
    assert named == {e.action for e in CASES.values()}


def test_the_address_is_the_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    served = serve(tmp_path / "data", {"R13_TRUSTED_PROXIES": "10.0.0.0/8"})
    served.users.add("alice", PW, Role.PUBLISHER)
    alice = served.session("alice")
    published = served.client.simulate_put(
        "/widget",
        json=publish_body("widget", "1.0.0"),
        headers={**alice, "X-Forwarded-For": "198.51.100.4"},
        remote_addr="10.1.2.3",
    )
    assert published.status_code == 201, published.text
    (event,) = [e for e in events(served) if e["action"] == "publish"]
    assert (event["actor"], event["ip"]) == ("alice", "198.51.100.4")
    served.config.close()


def refused_stale_rev(w: World) -> falcon.testing.Result:
    stale = w.rev()
    assert set_tag(w).status_code == 201  # moves the rev on
    return w.delete(f"/widget/-rev/{stale}", w.alice)


def refused_someone_elses(w: World) -> falcon.testing.Result:
    bob = w.served.session("bob")
    return w.put("/-/package/widget/dist-tags/next", {**bob, **JSON}, body='"1.1.0"')


def refused_bad_publish(w: World) -> falcon.testing.Result:
    body = publish_body("widget", "2.0.0")
    body["name"] = "other"
    return w.put("/widget", w.alice, json=body)


def refused_unknown_version(w: World) -> falcon.testing.Result:
    return w.put("/-/package/widget/dist-tags/next", {**w.alice, **JSON}, body='"9.9.9"')


def refused_unknown_advisory(w: World) -> falcon.testing.Result:
    return w.delete("/_api/advisories/999", w.served.admin)


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        (refused_stale_rev, 409),
        (refused_someone_elses, 403),
        (refused_bad_publish, 400),
        (refused_unknown_version, 404),
        (refused_unknown_advisory, 404),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_a_refused_write_records_nothing(
    world: World, refused: Callable[[World], falcon.testing.Result], status: int
) -> None:
    answer = refused(world)
    assert answer.status_code == status, answer.text
    after = [e for e in events(world.served) if e["ip"] == ADDRESS]
    assert [e["action"] for e in after] == (["dist-tag.set"] if status == 409 else [])
