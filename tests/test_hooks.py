"""Webhooks in process, against a real loopback receiver that checks every signature:
the events each package change queues (with the change, in its transaction), delivery
and retries, SSRF refusals, and who may manage which hook over HTTP."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.main import create_app
from r13core.audit import Actor
from r13core.errors import Forbidden, InvalidValue, VersionExists
from r13core.hooks import Deliverer
from r13core.hooks.endpoints import AddressPolicy, check_endpoint
from r13core.hooks.worker import backoff_ms
from r13core.keys import Permission
from r13core.names import PackageName
from r13core.services import Services, open_services
from r13core.settings import HookSettings, Settings
from r13core.users import Role
from tests.hook_receiver import Receiver
from tests.npm_builders import publish_body

SECRET = "receiver-secret"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET)
    r.start()
    yield r
    r.stop()


def _settings(data: Path, **env: str) -> Settings:
    return Settings.from_env({
        "R13_DATA": str(data),
        "R13_PUBLIC_URL": "http://r13.test",
        "SECURITY_RATE_LIMIT_MAX": "1000000",
        "R13_AUTH_RATE_LIMIT_MAX": "1000000",
        "R13_BLOCK_AUTH_FAILURES": "0",
        "R13_HOOKS_ALLOW_PRIVATE": "1",
        "R13_HOOKS_RETRY_BASE": "1",
        "R13_HOOKS_MAX_ATTEMPTS": "3",
        **env,
    })  # fmt: skip


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = open_services(_settings(tmp_path / "data"))
    s.users.add("alice", "alice's password", Role.PUBLISHER)
    s.users.add("bob", "bob's password", Role.PUBLISHER)
    yield s
    s.storage.close()


def drain(services: Services, clock: list[float] | None = None) -> None:
    """Run delivery rounds until nothing is pending (retries moved on by the fake clock)."""
    now = clock or [time.time()]
    deliverer = Deliverer(services.storage, services.settings.hooks, clock=lambda: now[0])
    for _ in range(50):
        if services.storage.queue_counts()["pending"] == 0:
            return
        deliverer.run_once()
        now[0] += 3600
    raise AssertionError(services.storage.queue_counts())


def test_every_package_change_queues_its_events_in_commit_order_signed(
    services: Services, receiver: Receiver
) -> None:
    receiver.received.clear()
    reg, hooks, alice = services.registry, services.hooks, Actor("alice", "10.0.0.1")
    hook = hooks.add(alice, owner="alice", kind="package", name="lib", endpoint=receiver.url,
                     secret=SECRET)  # fmt: skip
    hooks.add(alice, owner="alice", kind="scope", name="@other", endpoint=receiver.url,
              secret=SECRET)  # fmt: skip
    name = PackageName.parse("lib")
    reg.put_package(name, publish_body("lib", "1.0.0"), actor=alice)
    reg.put_package(name, publish_body("lib", "1.1.0", tag="next"), actor=alice)
    reg.set_dist_tag(name, "beta", "1.0.0", actor=alice)
    reg.remove_dist_tag(name, "beta", actor=alice)
    deprecate = {"name": "lib", "versions": {"1.0.0": {"deprecated": "use 1.1"}}}
    reg.put_package(name, deprecate, actor=alice)
    reg.put_package(name, {"name": "lib", "versions": {"1.0.0": {"deprecated": ""}}}, actor=alice)
    doc = reg.packument_for_write(name)
    body = copy.deepcopy(json.loads(doc.body))
    body["maintainers"] = [{"name": "alice", "email": ""}, {"name": "bob", "email": ""}]
    reg.put_package_rev(name, body["_rev"], body, actor=alice)
    body = json.loads(reg.packument_for_write(name).body)
    body["maintainers"] = [{"name": "bob", "email": ""}]
    del body["versions"]["1.0.0"]
    reg.put_package_rev(name, body["_rev"], body, actor=alice)
    reg.put_package(PackageName.parse("unhooked"), publish_body("unhooked", "1.0.0"), actor=alice)
    assert services.storage.queue_counts()["pending"] == 9
    drain(services)
    got = receiver.unique()
    assert all(r.signature_ok for r in receiver.snapshot())
    assert [(r.body["event"], r.body["version"]) for r in got] == [
        ("package:publish", "1.0.0"),
        ("package:publish", "1.1.0"),
        ("package:dist-tag", "1.0.0"),
        ("package:dist-tag-rm", "1.0.0"),
        ("package:deprecate", "1.0.0"),
        ("package:undeprecate", "1.0.0"),
        ("package:owner", None),
        ("package:unpublish", "1.0.0"),
        ("package:owner-rm", None),
    ]
    first = got[0].body
    assert first["id"] == got[0].delivery == got[0].headers["x-r13-delivery"]
    assert first["name"] == "lib" and first["type"] == "package"
    assert first["sender"] == {"username": "alice"}
    assert first["payload"]["versions"]["1.0.0"]["version"] == "1.0.0"
    assert first["change"] == {"version": "1.0.0", "dist-tags": {"latest": "1.0.0"}}
    assert got[1].body["change"]["dist-tags"] == {"next": "1.1.0"}
    assert got[2].body["change"] == {"dist-tag": "beta", "version": "1.0.0"}
    assert got[4].body["change"]["deprecated"] == "use 1.1"
    assert got[6].body["change"] == {"maintainer": "bob"}
    assert got[8].body["change"] == {"maintainer": "alice"}
    assert got[0].headers["x-r13-event"] == "package:publish"
    assert {r.headers["x-r13-hook"] for r in got} == {hook.id}
    stored = services.storage.hook(hook.id)
    assert stored is not None and stored.last_status == 204


def test_a_change_that_fails_queues_nothing(services: Services, receiver: Receiver) -> None:
    reg, alice, bob = services.registry, Actor("alice"), Actor("bob")
    services.hooks.add(alice, owner="alice", kind="owner", name="alice", endpoint=receiver.url,
                       secret=SECRET)  # fmt: skip
    name = PackageName.parse("mine")
    reg.put_package(name, publish_body("mine", "1.0.0"), actor=alice)  # alice's new package
    reg.put_package(name, publish_body("mine", "1.1.0"), actor=alice)
    assert services.storage.queue_counts()["pending"] == 2
    with pytest.raises(VersionExists):  # rolled back inside its transaction
        reg.put_package(name, publish_body("mine", "1.1.0", manifest={"x": 1}), actor=alice)

    def not_bob(owners: list[str]) -> None:
        raise Forbidden("bob is not a maintainer")

    with pytest.raises(Forbidden):
        reg.set_dist_tag(name, "beta", "1.0.0", actor=bob, check_owner=not_bob)
    assert services.storage.queue_counts()["pending"] == 2


def test_failures_retry_with_growing_jittered_waits_then_fail(
    services: Services, receiver: Receiver
) -> None:
    receiver.received.clear()
    receiver.mode = "fail"
    try:
        hook = services.hooks.add(Actor("alice"), owner="alice", kind="package", name="flaky",
                                  endpoint=receiver.url, secret=SECRET)  # fmt: skip
        services.registry.put_package(
            PackageName.parse("flaky"), publish_body("flaky", "1.0.0"), actor=Actor("alice")
        )
        now = [time.time() + 1]
        deliverer = Deliverer(
            services.storage, services.settings.hooks, clock=lambda: now[0], rand=lambda: 0.0
        )
        assert deliverer.run_once() == 1
        [pending] = services.storage.deliveries(hook_id=hook.id)
        # rand 0 -> half the base (1 ms; at least 1) for the first retry
        assert (pending.state, pending.attempts) == ("pending", 1)
        assert pending.next_ms == int(now[0] * 1000) + 1
        assert deliverer.run_once() == 0  # not due yet: the clock has not moved
        now[0] += 0.001
        assert deliverer.run_once() == 1
        now[0] += 1
        assert deliverer.run_once() == 1
        [failed] = services.storage.deliveries(hook_id=hook.id)
        assert (failed.state, failed.attempts, failed.last_status) == ("failed", 3, 500)
        log = services.hooks.attempts(hook.id)
        assert [(a.attempt, a.status) for a in log] == [(3, 500), (2, 500), (1, 500)]
        assert len(receiver.snapshot()) == 3
    finally:
        receiver.mode = "ok"
    settings = HookSettings(retry_base_ms=1000, retry_max_ms=10_000)
    assert [backoff_ms(n, settings, lambda: 0.999999) for n in (1, 2, 3, 4, 5, 9)] == [
        999, 1999, 3999, 7999, 9999, 9999
    ]  # fmt: skip
    assert backoff_ms(3, settings, lambda: 0.0) == 2000


# -- SSRF ------------------------------------------------------------------------------


def _resolver(answer: list[str]) -> Any:
    return lambda host, port: list(answer)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/h",
        "http://[::1]/h",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/h",
        "http://192.168.0.10/h",
        "http://100.64.0.1/h",
        "http://[::ffff:127.0.0.1]/h",
        "http://[fe80::1]/h",
        "http://0.0.0.0/h",
        "http://localhost:9/h",
    ],
)
def test_private_endpoints_are_refused_unless_allowed(endpoint: str) -> None:
    with pytest.raises(InvalidValue, match="private, loopback"):
        check_endpoint(endpoint, AddressPolicy())
    assert check_endpoint("http://93.184.216.34/h", AddressPolicy()).port == 80


def test_a_name_is_checked_after_resolution_and_an_allow_list_opens_only_its_networks() -> None:
    two = _resolver(["93.184.216.34", "10.0.0.7"])
    with pytest.raises(InvalidValue, match=r"resolves to 10\.0\.0\.7"):
        check_endpoint("https://hooks.example/x", AddressPolicy(), two)
    policy = AddressPolicy(allowed=(__import__("ipaddress").ip_network("10.0.0.0/8"),))
    assert check_endpoint("https://hooks.example/x", policy, _resolver(["10.0.0.7"])).port == 443
    with pytest.raises(InvalidValue):
        check_endpoint("https://hooks.example/x", policy, _resolver(["127.0.0.1"]))
    for bad in ("ftp://a.example/", "http://user:pw@a.example/", "http:///x", "nope", 42):
        with pytest.raises(InvalidValue):
            check_endpoint(bad, AddressPolicy(), _resolver(["93.184.216.34"]))


def test_a_name_that_resolves_to_loopback_at_delivery_is_not_sent_to(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Created while the name resolved to a public address; at delivery it resolves to the
    # receiver on loopback (DNS rebinding): the attempt is refused and nothing arrives.
    services = open_services(_settings(tmp_path / "d", R13_HOOKS_ALLOW_PRIVATE="0"))
    services.hooks.resolver = _resolver(["93.184.216.34"])
    endpoint = f"http://rebind.example:{receiver.port}/hook"
    hook = services.hooks.add(Actor("admin"), owner="admin", kind="package", name="p",
                              endpoint=endpoint, secret=SECRET)  # fmt: skip
    services.hooks.ping(Actor("admin"), hook.id)
    before = len(receiver.snapshot())
    deliverer = Deliverer(services.storage, services.settings.hooks,
                          resolver=_resolver(["127.0.0.1"]))  # fmt: skip
    assert deliverer.run_once() == 1
    [attempt] = services.hooks.attempts(hook.id)
    assert attempt.status is None and "resolves to 127.0.0.1" in (attempt.error or "")
    assert len(receiver.snapshot()) == before


# -- management over HTTP: who may do what --------------------------------------------


@dataclass
class Web:
    client: falcon.testing.TestClient
    keys: dict[str, str]
    services: Services

    def call(self, who: str, method: str, path: str, **kw: Any) -> falcon.testing.Result:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who in self.keys else {}
        return self.client.simulate_request(
            method, path, headers=headers, remote_addr="127.0.0.1", **kw
        )


@pytest.fixture
def web(tmp_path: Path, receiver: Receiver) -> Iterator[Web]:
    services = open_services(_settings(tmp_path / "web"))
    services.users.add("alice", "alice's password", Role.PUBLISHER)
    services.users.add("bob", "bob's password", Role.PUBLISHER)
    keys = {
        "alice": services.keys.create("alice-1", Permission.WRITE, None, owner="alice")[1],
        "bob": services.keys.create("bob-1", Permission.WRITE, None, owner="bob")[1],
        "reader": services.keys.create("reader", Permission.READ, None)[1],
        "admin": services.keys.create("root", Permission.ADMIN, None)[1],
        "scoped": services.keys.create("scoped", Permission.WRITE, None,
                                       packages=["@mine/*"])[1],
    }  # fmt: skip
    yield Web(falcon.testing.TestClient(create_app(services)), keys, services)
    services.storage.close()


def test_a_user_manages_their_own_hooks_and_an_admin_everyone_s(
    web: Web, receiver: Receiver
) -> None:
    new = {"type": "package", "name": "lib", "endpoint": receiver.url, "secret": SECRET}
    r = web.call("alice", "POST", "/-/npm/v1/hooks/hook", json=new)
    assert r.status_code == 201, r.text
    hook = r.json
    assert hook["username"] == "alice" and "secret" not in hook
    path = f"/-/npm/v1/hooks/hook/{hook['id']}"
    assert web.call("alice", "GET", path).json["id"] == hook["id"]
    for method in ("GET", "PUT", "DELETE"):
        kw = {"json": {"endpoint": receiver.url, "secret": "x"}} if method == "PUT" else {}
        assert web.call("bob", method, path, **kw).status_code == 403
    assert web.call("reader", "GET", path).status_code == 403
    assert web.call("anonymous", "GET", path).status_code == 401
    assert web.call("bob", "GET", "/-/npm/v1/hooks").json["objects"] == []
    listed = web.call("alice", "GET", "/-/npm/v1/hooks?package=lib").json
    assert [h["id"] for h in listed["objects"]] == [hook["id"]]
    assert web.call("alice", "GET", "/-/npm/v1/hooks?package=other").json["objects"] == []
    changed = web.call("admin", "PUT", path, json={"endpoint": receiver.url + "2", "secret": "n"})
    assert changed.status_code == 200 and changed.json["endpoint"] == receiver.url + "2"
    assert web.call("admin", "GET", "/_api/hooks").json["total"] == 1
    assert web.call("alice", "GET", "/_api/hooks").status_code == 403
    ping = web.call("admin", "POST", f"/_api/hooks/{hook['id']}/ping")
    assert ping.status_code == 202
    log = web.call("admin", "GET", f"/_api/hooks/{hook['id']}/deliveries").json
    assert [d["event"] for d in log["deliveries"]] == ["hook:ping"]
    gone = web.call("alice", "DELETE", path)
    assert gone.status_code == 200 and gone.json["deleted"] is True
    assert web.call("alice", "GET", path).status_code == 404
    audited = [(e["action"], e["actor"], e["ip"], e["target"])
               for e in reversed(web.services.audit.page(limit=50)["events"])
               if e["action"].startswith("hook.")]  # fmt: skip
    assert audited == [
        ("hook.add", "alice", "127.0.0.1", hook["id"]),
        ("hook.change", "key:root", "127.0.0.1", hook["id"]),
        ("hook.ping", "key:root", "127.0.0.1", hook["id"]),
        ("hook.remove", "alice", "127.0.0.1", hook["id"]),
    ]  # one event per change, with who and from where; refusals record nothing


def test_what_a_hook_may_watch_is_decided_by_the_policy(web: Web, receiver: Receiver) -> None:
    def add(who: str, kind: str, name: str, endpoint: str = receiver.url) -> int:
        body = {"type": kind, "name": name, "endpoint": endpoint, "secret": SECRET}
        return web.call(who, "POST", "/-/npm/v1/hooks/hook", json=body).status_code

    assert add("alice", "owner", "alice") == 201
    assert add("alice", "owner", "bob") == 403  # someone else's packages
    assert add("admin", "owner", "bob") == 201
    assert add("scoped", "package", "@mine/a") == 201
    assert add("scoped", "scope", "@mine") == 201
    assert add("scoped", "package", "@theirs/a") == 403  # outside the key's packages
    assert add("scoped", "scope", "@theirs") == 403
    assert add("reader", "package", "lib") == 403
    assert add("alice", "team", "x") == 400
    assert add("alice", "package", "Not A Name") == 400
    body = {"type": "package", "name": "lib", "endpoint": receiver.url}
    r = web.call("alice", "POST", "/-/npm/v1/hooks/hook", json=body)
    assert r.status_code == 400 and "secret is required" in r.json["error"]
    web.services.hooks.policy = AddressPolicy()  # as without R13_HOOKS_ALLOW_PRIVATE
    r = web.call("alice", "POST", "/-/npm/v1/hooks/hook",
                 json={**body, "secret": SECRET})  # fmt: skip
    assert r.status_code == 400 and "loopback" in r.json["error"]
    admin_made = web.call("admin", "POST", "/_api/hooks",
                          json={**body, "secret": SECRET, "owner": "bob"})  # fmt: skip
    assert admin_made.status_code == 400  # the admin API checks the address too


# -- the command line -------------------------------------------------------------------


def test_r13_hooks_add_ls_ping_log_rm(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from app.cli import main

    data = tmp_path / "cli"
    monkeypatch.setenv("R13_HOOKS_ALLOW_PRIVATE", "1")
    assert main(["--data", str(data), "hooks", "add", "scope", "@acme", receiver.url,
                 "--secret", SECRET]) == 0  # fmt: skip
    hook_id = capsys.readouterr().out.strip()
    assert main(["--data", str(data), "hooks", "ls", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["name"], listed["owner"]) == (hook_id, "@acme", "cli")
    assert "secret" not in listed
    assert main(["--data", str(data), "hooks", "ping", hook_id]) == 0
    delivery = capsys.readouterr().out.strip()
    services = open_services(_settings(data))
    Deliverer(services.storage, services.settings.hooks).run_once()
    assert main(["--data", str(data), "hooks", "log", hook_id, "--json"]) == 0
    log = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in log["deliveries"]] == [delivery]
    assert log["attempts"][0]["status"] == 204
    assert any(r.delivery == delivery and r.signature_ok for r in receiver.snapshot())
    assert (
        main(
            [
                "--data",
                str(data),
                "hooks",
                "add",
                "package",
                "x",
                "http://10.0.0.1/",
                "--secret",
                "s",
            ]
        )
        == 0
    )  # fmt: skip  (allowed: R13_HOOKS_ALLOW_PRIVATE)
    monkeypatch.delenv("R13_HOOKS_ALLOW_PRIVATE")
    assert main(["--data", str(data), "hooks", "add", "package", "x", "http://10.0.0.1/",
                 "--secret", "s"]) == 2  # fmt: skip
    assert "private" in capsys.readouterr().err
    assert main(["--data", str(data), "hooks", "rm", hook_id]) == 0
    assert main(["--data", str(data), "hooks", "rm", hook_id]) != 0
    events = [e["action"] for e in services.audit.page(limit=20)["events"]]
    assert events.count("hook.add") == 2 and "hook.ping" in events and "hook.remove" in events
