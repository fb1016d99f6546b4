"""Webhooks through a real r13 (gunicorn, gevent workers) to a real receiver on loopback.

A receiver that fails (500s), then refuses connections, then recovers gets every event
exactly once after deduplication by id, in commit order per package; SIGKILLing the
whole server while a delivery is in flight loses nothing (the restarted server sends it
again once the claim's lease ends).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server, start_server
from tests.hook_receiver import Receiver, wait_for
from tests.npm_builders import publish_body

SECRET = "e2e-hook-secret"
ENV = {
    "R13_HOOKS_ALLOW_PRIVATE": "1",  # the receiver is on loopback
    "R13_HOOKS_RETRY_BASE": "50",
    "R13_HOOKS_RETRY_MAX": "400",
    "R13_HOOKS_POLL": "50",
    "R13_HOOKS_TIMEOUT": "2000",  # a claim's lease: 2 x 2 s + 1 s
    "R13_HOOKS_MAX_ATTEMPTS": "100",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET)
    r.start()
    yield r
    r.release.set()
    r.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("hooks"), **ENV)
    yield srv
    srv.stop()
    assert "Traceback" not in srv.log.read_text(), srv.log.read_text()[-5000:]


def _ok(srv: Server, method: str, path: str, body: Any = None) -> Any:
    status, _, raw = srv.request(method, path, body, key=srv.admin_key)
    assert 200 <= status < 300, (method, path, status, raw[:500])
    return json.loads(raw) if raw else None


def _hook(srv: Server, receiver: Receiver, scope: str) -> str:
    body = {"type": "scope", "name": scope, "endpoint": receiver.url, "secret": SECRET}
    return str(_ok(srv, "POST", "/-/npm/v1/hooks/hook", body)["id"])


def _publish(srv: Server, name: str, version: str) -> None:
    _ok(srv, "PUT", "/" + name.replace("/", "%2f"), publish_body(name, version))


def _pending(srv: Server) -> int:
    return int(_ok(srv, "GET", "/_api/hooks")["queue"]["pending"])


def test_a_failing_then_recovering_receiver_gets_every_event_once_in_order(
    server: Server, receiver: Receiver
) -> None:
    receiver.received.clear()
    receiver.mode = "fail"
    hook = _hook(server, receiver, "@flaky")
    expected: dict[str, list[tuple[str, str]]] = {}
    for pkg in ("@flaky/a", "@flaky/b", "@flaky/c"):
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            _publish(server, pkg, version)
            expected.setdefault(pkg, []).append(("package:publish", version))
        url = "/-/package/" + pkg.replace("/", "%2f") + "/dist-tags/beta"
        status, _, _ = server.request("PUT", url, b'"1.0.0"', key=server.admin_key,
                                      headers={"Content-Type": "application/json"})  # fmt: skip
        assert status in (200, 201, 204)
        expected[pkg].append(("package:dist-tag", "1.0.0"))
        _ok(server, "DELETE", url)
        expected[pkg].append(("package:dist-tag-rm", "1.0.0"))
    total = sum(len(v) for v in expected.values())
    wait_for(lambda: sum(r.answered == 500 for r in receiver.snapshot()) >= 6, what="500s")
    receiver.stop()  # now connections are refused
    assert receiver.refuses()

    def refused_attempts() -> int:
        log = _ok(server, "GET", f"/_api/hooks/{hook}/deliveries?limit=1000")["attempts"]
        return sum(1 for a in log if a["status"] is None and "Refused" in (a["error"] or ""))

    wait_for(lambda: refused_attempts() >= 3, what="refused connections in the log")
    receiver.mode = "ok"
    receiver.start()  # recovers on the same port
    wait_for(lambda: _pending(server) == 0, what="the queue to drain")
    got = receiver.unique()
    assert all(r.signature_ok for r in receiver.snapshot())
    assert len(got) == total and len({r.delivery for r in got}) == total
    for pkg, events in expected.items():
        mine = [(r.body["event"], r.body["version"]) for r in got if r.body["name"] == pkg]
        assert mine == events, pkg
    log = _ok(server, "GET", f"/_api/hooks/{hook}/deliveries?limit=1000")
    assert {d["state"] for d in log["deliveries"]} == {"delivered"}
    statuses = {a["status"] for a in log["attempts"]}
    assert {500, 204, None} <= statuses


def test_killing_the_server_mid_delivery_loses_no_event(server: Server, receiver: Receiver) -> None:
    receiver.received.clear()
    receiver.release.clear()
    receiver.mode = "hold"  # the first request is received, and never answered
    _hook(server, receiver, "@crash")
    versions = ["1.0.0", "2.0.0", "3.0.0"]
    for version in versions:
        _publish(server, "@crash/pkg", version)
    wait_for(lambda: len(receiver.snapshot()) >= 1, what="a delivery in flight")
    server.kill()  # SIGKILL master and workers while the receiver holds the request
    receiver.mode = "ok"
    receiver.release.set()
    server.start()
    wait_for(lambda: _pending(server) == 0, what="the queue to drain after the restart")
    got = [r for r in receiver.unique() if r.body["name"] == "@crash/pkg"]
    assert [r.body["version"] for r in got] == versions
    raw = [r for r in receiver.snapshot() if r.body["name"] == "@crash/pkg"]
    # The one in flight at the crash was sent again (at least once), and deduplicated.
    assert [r.delivery for r in raw].count(got[0].delivery) == 2
    assert all(r.signature_ok for r in raw)
