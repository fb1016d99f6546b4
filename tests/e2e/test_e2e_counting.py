"""The monitor's counts move: a real r13 (gunicorn, 2 workers) counts every download once.

Downloads land on both workers; the shared counters (the latest sample of
/_api/performance/metrics, /metrics) and the per-package daily counts
(/_api/analytics/*, written by each worker in batches) must all say exactly N.
Waits are for conditions, never fixed sleeps.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server
from tests.e2e.publish_body import publish_body, tarball
from tests.ports import free_port
from tests.workers import until_answered_by

pytestmark = pytest.mark.slow

NAME = "@count/me"


def wait_for(what: str, probe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 120  # generous: a loaded machine samples and flushes late
    while True:
        value = probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r}"
        time.sleep(0.1)


def make_server(root: Path, **env: str) -> Server:
    srv = Server(data=root / "data", port=free_port(), log=root / "server.log")
    srv.extra_env.update(
        {
            "METRICS_COLLECTION_INTERVAL": "200",
            "METRICS_HISTORY_SIZE": "3000",  # ten minutes: the samples of the downloads stay
            "R13_FEATURE_DEBUG": "1",  # X-R13-Worker names the worker that answered
            **env,
        }
    )
    return srv


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = make_server(tmp_path, R13_USAGE_FLUSH_INTERVAL="200")
    srv.start()
    yield srv
    assert srv.stop() == 0
    assert "Traceback" not in srv.log.read_text()


def publish(srv: Server) -> None:
    body = publish_body(NAME, "1.0.0", tarball(NAME, "1.0.0"))
    status, _, answer = srv.request("PUT", "/@count%2fme", body, key=srv.key("write"))
    assert status == 201, answer


def download(srv: Server, key: str) -> str:
    """One tarball GET on a new connection; the pid of the worker that sent it."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request("GET", "/@count/me/-/me-1.0.0.tgz", headers={"Authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        return resp.getheader("X-R13-Worker") or ""
    finally:
        conn.close()


def download_on_both_workers(srv: Server, at_least: int) -> int:
    """Download (a new connection each) until both workers have sent some and ``at_least``
    were made; how many downloads were made. Bounded by time (tests/workers.py)."""
    key = srv.key("read")
    return len(until_answered_by(2, lambda: download(srv, key), str, at_least=at_least))


def sample(srv: Server) -> dict[str, Any]:
    status, _, body = srv.request("GET", "/_api/performance/metrics", key=srv.admin_key)
    return json.loads(body) if status == 200 else {}


def prometheus(srv: Server) -> dict[str, float]:
    status, _, body = srv.request("GET", "/metrics", key=srv.admin_key)
    assert status == 200
    return {
        s.name: s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if not s.labels
    }


def analytics(srv: Server, route: str, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, _, body = srv.request("GET", f"/_api/analytics/{route}?{query}", key=srv.admin_key)
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def test_downloads_on_two_workers_are_counted_exactly(server: Server) -> None:
    publish(server)
    n = download_on_both_workers(server, at_least=25)

    latest = wait_for(
        "the sampler's totals",
        lambda: sample(server),
        lambda s: s.get("downloads_total", 0) >= n,
    )
    assert latest["downloads_total"] == n
    assert latest["publishes_total"] == 1
    assert latest["unpublishes_total"] == 0
    rates = [s["downloads_per_s"] for s in wait_for(
        "a sample with downloads", lambda: history(server), lambda h: any(
            s["downloads_per_s"] > 0 for s in h))]  # fmt: skip
    assert max(rates) > 0

    prom = prometheus(server)
    assert prom["r13_downloads_total"] == n
    assert prom["r13_publishes_total"] == 1

    mine = wait_for(
        "the daily count of the package",
        lambda: analytics(server, "downloads", package=NAME),
        lambda a: a["total"] >= n,
    )
    assert mine["total"] == n == sum(d["count"] for d in mine["days"])
    assert mine["days"][-1]["day"] == datetime.now(UTC).date().isoformat()
    assert analytics(server, "downloads")["total"] == n
    assert analytics(server, "top")["packages"] == [{"package": NAME, "count": n}]
    assert analytics(server, "publishes", package=NAME)["total"] == 1


def history(srv: Server) -> list[dict[str, Any]]:
    status, _, body = srv.request("GET", "/_api/performance/history", key=srv.admin_key)
    assert status == 200
    return json.loads(body)["samples"]  # type: ignore[no-any-return]


def test_a_graceful_stop_writes_every_buffered_count(tmp_path: Path) -> None:
    # Flushes only at exit: the counts below can reach the database no other way.
    srv = make_server(tmp_path, R13_USAGE_FLUSH_INTERVAL="86400000")
    srv.start()
    try:
        publish(srv)
        n = download_on_both_workers(srv, at_least=10)
    finally:
        assert srv.stop() == 0
    srv.start()
    try:
        assert analytics(srv, "downloads", package=NAME)["total"] == n
        assert analytics(srv, "publishes", package=NAME)["total"] == 1
    finally:
        assert srv.stop() == 0
