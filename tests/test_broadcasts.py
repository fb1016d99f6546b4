"""What the live channel broadcasts: the audited operations' events, throttled refusals.

The fan-out itself (every worker's hub tailing the log) is tested through a real server
in tests/e2e/test_e2e_live.py; here, what lands in the events log and in which shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.broadcasts import SCHEMAS, TOPICS, SecurityEvents, from_audit
from r13core.config import Feature
from r13core.events import EventLog
from r13core.frames import Topic
from r13core.keys import Permission
from r13core.names import PackageName
from r13core.services import Services, open_services
from r13core.settings import Settings
from tests.live_client import conforms
from tests.npm_builders import publish_body


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = open_services(Settings.from_env({"R13_DATA": str(tmp_path / "data")}))
    yield s
    s.close()


def events_of(services: Services) -> list[tuple[str, dict[str, Any]]]:
    return [(e.topic, e.data) for e in services.events.read_after(0)]


def test_every_log_topic_has_a_broadcast_topic_and_a_schema() -> None:
    assert set(TOPICS) == set(SCHEMAS)
    assert sorted(TOPICS.values()) == sorted(Topic)


def test_a_record_change_is_broadcast_with_who_and_the_bytes(services: Services) -> None:
    old = services.config.read_bytes()
    services.config_changes.set_feature(Actor("alice", "10.0.0.7"), Feature.DEBUG, True)
    new = services.config.read_bytes()
    assert events_of(services) == [
        ("config", {"who": "alice", "ip": "10.0.0.7", "old": old.hex(), "new": new.hex()})
    ]
    assert conforms(events_of(services)[0][1], SCHEMAS["config"])


def test_a_change_that_changes_nothing_broadcasts_nothing(services: Services) -> None:
    on = services.config.read().has(Feature.METRICS)
    services.config_changes.set_feature(Actor.cli(), Feature.METRICS, on)
    assert events_of(services) == []


def test_package_operations_are_broadcast_as_package_events(services: Services) -> None:
    registry = services.registry
    name = PackageName.parse("live-pkg")
    admin = Actor("key:admin", "127.0.0.1")
    registry.put_package(name, publish_body("live-pkg", "1.0.0"), actor=admin)
    registry.put_package(name, publish_body("live-pkg", "1.1.0"), actor=admin)
    registry.set_dist_tag(name, "beta", "1.1.0", actor=admin)
    registry.remove_dist_tag(name, "beta", actor=admin)
    deprecation = {"name": "live-pkg", "versions": {"1.0.0": {"deprecated": "use 1.1"}}}
    registry.put_package(name, deprecation, actor=admin)
    packages = [d for topic, d in events_of(services) if topic == "package"]
    assert [(d["event"], d["package"], d["who"]) for d in packages] == [
        ("publish", "live-pkg", "key:admin"),
        ("publish", "live-pkg", "key:admin"),
        ("tag", "live-pkg", "key:admin"),
        ("untag", "live-pkg", "key:admin"),
        ("deprecate", "live-pkg", "key:admin"),
    ]
    assert packages[0]["versions"] == ["1.0.0"] and packages[2]["tag"] == "beta"
    assert all(conforms(d, SCHEMAS["package"]) for d in packages)


def test_blocks_and_unblocks_are_security_events(services: Services) -> None:
    services.abuse.block(Actor("key:admin", "127.0.0.1"), "203.0.113.9", "scraping", 60)
    services.abuse.unblock(Actor("key:admin", "127.0.0.1"), "203.0.113.9")
    security = [d for topic, d in events_of(services) if topic == "security"]
    assert [(d["event"], d["ip"], d["who"]) for d in security] == [
        ("block", "203.0.113.9", "key:admin"),
        ("unblock", "203.0.113.9", "key:admin"),
    ]
    assert security[0]["reason"] == "scraping" and security[0]["kind"] == "manual"
    assert all(conforms(d, SCHEMAS["security"]) for d in security)


def test_revoking_a_key_is_a_security_event(services: Services) -> None:
    info, _ = services.identity.create_key(Actor.cli(), "ci", Permission.READ, 30)
    services.identity.revoke_key(Actor("alice", "10.1.1.1"), info.id)
    security = [d for topic, d in events_of(services) if topic == "security"]
    assert [(d["event"], d["target"], d["who"]) for d in security] == [
        ("key_revoked", "ci", "alice")
    ]


@pytest.mark.parametrize(
    "action", ["key.create", "login", "user.passwd", "advisory.add", "logout", "whatever"]
)
def test_actions_with_no_live_meaning_broadcast_nothing(action: str) -> None:
    assert from_audit("alice", action, "x", "1.2.3.4", {}) is None


def test_a_failing_events_log_never_fails_the_operation(services: Services, tmp_path: Path) -> None:
    class Broken(EventLog):
        def append(self, topic: str, data: Any) -> Any:
            raise OSError("disk full")

    services.audit.on_record.events = Broken(tmp_path)  # type: ignore[union-attr]
    services.config_changes.set_feature(Actor.cli(), Feature.DEBUG, True)
    assert services.config.read().has(Feature.DEBUG)
    assert services.audit.page()["events"][0]["action"] == "config.change"  # kept


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refusals_are_folded_per_client_and_kind(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    clock = Clock()
    events = SecurityEvents(log, quiet=10.0, clock=clock)
    for _ in range(5):
        events.refused("auth_failure", "10.0.0.1")
    events.refused("limit", "10.0.0.1")
    events.refused("auth_failure", "10.0.0.2")
    clock.now += 10.0
    events.refused("auth_failure", "10.0.0.1")
    got = [(e.data["event"], e.data["ip"], e.data["count"]) for e in log.read_after(0)]
    assert got == [
        ("auth_failure", "10.0.0.1", 1),
        ("limit", "10.0.0.1", 1),
        ("auth_failure", "10.0.0.2", 1),
        ("auth_failure", "10.0.0.1", 5),  # the 4 folded ones and this one
    ]
    assert all(conforms(e.data, SCHEMAS["security"]) for e in log.read_after(0))


def test_the_refusal_table_stays_bounded(tmp_path: Path) -> None:
    clock = Clock()
    events = SecurityEvents(EventLog(tmp_path), max_clients=10, clock=clock)
    for i in range(100):
        events.refused("limit", f"10.0.0.{i}")
    assert len(events._seen) <= 10
