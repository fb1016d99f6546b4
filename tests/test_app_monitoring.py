"""Monitoring in the app, in process: counting, /metrics, flags, access, OpenAPI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.openapi import PATHS
from r13core.config import ConfigStore, Feature
from r13core.monitor import MonitorSettings, Sampler
from r13core.services import open_services
from r13core.settings import Settings

FLAGS_OFF_PRIVATE = {"R13_FEATURE_PRIVATE_REGISTRY": "0"}


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return {"R13_DATA": str(data_dir), **FLAGS_OFF_PRIVATE}


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[falcon.App[falcon.Request, falcon.Response]]:
    yield create_app(open_services(Settings.from_env(env)))


@pytest.fixture
def client(app: falcon.App[falcon.Request, falcon.Response]) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(app)


def scrape(client: falcon.testing.TestClient) -> dict[str, Any]:
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(resp.text)}


def requests_of(families: dict[str, Any], route: str, status: str = "200") -> float:
    for s in families["r13_http_requests"].samples:
        if s.labels["route"] == route and s.labels["status"] == status:
            return float(s.value)
    return 0.0


def test_every_request_is_counted_by_route_and_status(client: falcon.testing.TestClient) -> None:
    for _ in range(7):
        client.simulate_get("/-/ping")
    client.simulate_get("/_api/nowhere")
    fam = scrape(client)
    assert requests_of(fam, "/-/ping") == 7
    assert requests_of(fam, "*", "404") == 1
    hist = fam["r13_http_request_duration_seconds"]
    count = [
        s for s in hist.samples if s.name.endswith("_count") and s.labels.get("route") == "/-/ping"
    ]
    assert count[0].value == 7
    inf = [
        s for s in hist.samples if s.labels.get("le") == "+Inf" and s.labels["route"] == "/-/ping"
    ]
    assert inf[0].value == 7
    assert fam["r13_http_response_bytes"].samples[0].value >= 7 * 2


def test_prometheus_output_has_help_and_units(client: falcon.testing.TestClient) -> None:
    text = client.simulate_get("/metrics").text
    for name in (
        "r13_http_requests_total",
        "r13_http_request_duration_seconds",
        "r13_http_response_bytes_total",
        "r13_http_requests_in_flight",
        "r13_websocket_connections",
    ):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text


def test_metrics_off_hides_metrics_and_stops_counting(
    client: falcon.testing.TestClient, env: dict[str, str]
) -> None:
    store = ConfigStore(env["R13_DATA"])
    try:
        client.simulate_get("/-/ping")
        store.set_feature(Feature.METRICS, False)
        resp = client.simulate_get("/metrics")
        assert resp.status_code == 404 and "METRICS" in resp.json["error"]
        client.simulate_get("/-/ping")
        store.set_feature(Feature.METRICS, True)
        assert requests_of(scrape(client), "/-/ping") == 1
    finally:
        store.close()


def test_logging_flag_toggles_the_access_log(
    client: falcon.testing.TestClient, data_dir: Path
) -> None:
    store = ConfigStore(data_dir)
    try:
        log = data_dir / "logs" / "access.log"
        client.simulate_get("/-/ping", headers={"Content-Length": "0"})
        store.set_feature(Feature.LOGGING, False)
        client.simulate_get("/-/ping")
        store.set_feature(Feature.LOGGING, True)
        client.simulate_post("/-/ping", body=b"abc")
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert [(x["method"], x["status"]) for x in lines] == [("GET", 200), ("POST", 405)]
        assert lines[1]["bytes_in"] == 3 and lines[0]["route"] == "/-/ping"
        assert {"ts", "path", "ms", "ip", "trace_id", "bytes_out"} <= set(lines[0])
    finally:
        store.close()


def test_debug_adds_a_trace_id(client: falcon.testing.TestClient, data_dir: Path) -> None:
    assert "X-Request-Id" not in client.simulate_get("/-/ping").headers
    store = ConfigStore(data_dir)
    try:
        store.set_feature(Feature.DEBUG, True)
        resp = client.simulate_get("/-/ping")
        assert len(resp.headers["X-Request-Id"]) == 32
        assert resp.headers["X-R13-Worker"] == str(os.getpid())
        resp = client.simulate_get("/-/ping", headers={"X-Request-Id": "abc-123"})
        assert resp.headers["X-Request-Id"] == "abc-123"
        resp = client.simulate_get("/-/ping", headers={"X-Request-Id": "bad id\n"})
        assert resp.headers["X-Request-Id"] != "bad id\n"
    finally:
        store.close()


def test_performance_endpoints_answer_from_the_sampler(
    client: falcon.testing.TestClient, data_dir: Path
) -> None:
    resp = client.simulate_get("/_api/performance/metrics")
    assert resp.status_code == 503 and "error" in resp.json
    store = ConfigStore(data_dir)
    from r13core.metrics import Metrics

    metrics = Metrics(data_dir)
    try:
        sampler = Sampler(data_dir, metrics, MonitorSettings(alert_samples=1, cpu_percent=1e-9))
        sampler.tick()
        client.simulate_get("/-/ping")
        sampler.tick()
        latest = client.simulate_get("/_api/performance/metrics").json
        assert latest["seq"] == 1 and latest["requests"] >= 1
        summary = client.simulate_get("/_api/performance/summary").json
        assert summary["samples"] == 1 and summary["totals"]["requests_total"] >= 1
        assert client.simulate_get("/_api/performance/history").json["samples"][0]["seq"] == 1
        alerts = client.simulate_get("/_api/performance/alerts").json
        assert {r["rule"] for r in alerts["rules"]} == {"cpu", "memory", "latency", "error_rate"}
        fam = scrape(client)
        assert "r13_process_cpu_ratio" in fam and "r13_alert_active" in fam
    finally:
        metrics.close()
        store.close()


def test_private_registry_limits_monitoring_to_loopback(data_dir: Path) -> None:
    app = create_app(open_services(Settings.from_env({"R13_DATA": str(data_dir)})))
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/metrics", remote_addr="127.0.0.1").status_code == 200
    # No peer address at all (a Unix socket): nothing says it is this machine.
    assert client.simulate_get("/metrics").status_code == 403
    far = client.simulate_get("/metrics", remote_addr="10.1.2.3")
    assert far.status_code == 403 and "error" in far.json
    assert (
        client.simulate_get("/_api/performance/alerts", remote_addr="10.1.2.3").status_code == 403
    )


def _routes(app: falcon.App[falcon.Request, falcon.Response]) -> set[str]:
    found: set[str] = set()

    def walk(nodes: list[Any]) -> None:
        for node in nodes:
            if node.resource is not None:
                found.add(node.uri_template)
            walk(node.children)

    walk(app._router._roots)
    return found


def test_every_api_route_is_in_the_openapi_document(
    app: falcon.App[falcon.Request, falcon.Response], client: falcon.testing.TestClient
) -> None:
    routes = _routes(app)
    api = {r for r in routes if r.startswith("/_api/")}
    assert "/_api/performance/summary" in api
    doc = client.simulate_get("/_api/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    assert api <= set(doc["paths"]), api - set(doc["paths"])
    assert set(PATHS) == set(doc["paths"])


def test_a_sink_can_name_its_route(
    app: falcon.App[falcon.Request, falcon.Response], client: falcon.testing.TestClient
) -> None:
    def sink(req: falcon.Request, resp: falcon.Response, **kw: Any) -> None:
        req.context.route = "/{package}"
        resp.media = {}

    app.add_sink(sink, "/pkgs/")
    client.simulate_get("/pkgs/a")
    client.simulate_get("/pkgs/b")
    assert requests_of(scrape(client), "/{package}") == 2


def test_the_access_log_records_the_client_behind_a_trusted_proxy(data_dir: Path) -> None:
    env = {
        "R13_DATA": str(data_dir),
        "R13_TRUSTED_PROXIES": "10.0.0.0/8",
        **FLAGS_OFF_PRIVATE,
    }
    client = falcon.testing.TestClient(create_app(open_services(Settings.from_env(env))))
    via_proxy = {"X-Forwarded-For": "203.0.113.7"}
    client.simulate_get("/-/ping", remote_addr="10.1.2.3", headers=via_proxy)
    # A peer that is no trusted proxy cannot name another client.
    client.simulate_get("/-/ping", remote_addr="198.51.100.9", headers=via_proxy)
    lines = [json.loads(x) for x in (data_dir / "logs" / "access.log").read_text().splitlines()]
    assert [x["ip"] for x in lines] == ["203.0.113.7", "198.51.100.9"]
