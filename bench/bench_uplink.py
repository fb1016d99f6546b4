"""The uplink's cost: cached upstream packages vs local ones, and a cold proxied fetch.

Run: .venv/bin/python -m pytest bench/bench_uplink.py --benchmark-only -q

The real app in process (falcon's test client; middleware, guard, monitor all on),
over a real data dir, with tests/uplink_fakes.py's upstream on loopback:

* group ``uplink-packument``: ``GET /<pkg>`` of a local package vs of a proxied one
  served from the uplink cache (same shape: 20 versions) — the ratio is the
  cache's overhead (goal: within 10%);
* group ``uplink-tarball``: a local tarball vs a cached upstream one (same size);
* group ``uplink-cold``: the upstream's own latency for a packument (a keep-alive
  ``http.client`` GET straight to it) vs the same packument through r13 with
  CACHE_ENABLED off, so that every request is a cold proxied fetch; the
  difference of the medians is r13's overhead (goal: ≤ 5 ms).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.config import Feature
from r13core.names import PackageName
from tests.npm_builders import package_tgz, publish_body
from tests.uplink_app import ProxyApp, build
from tests.uplink_fakes import FaultyUpstream

VERSIONS = [f"1.{i}.0" for i in range(20)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyApp, FaultyUpstream]]:
    upstream = FaultyUpstream().start()
    for v in VERSIONS:
        upstream.add("proxied-pkg", v, tgz=package_tgz("proxied-pkg", v, description="x" * 64))
    app = build(
        tmp_path_factory.mktemp("uplink-bench"),
        upstream.url,
        {"SECURITY_RATE_LIMIT_MAX": "2147483647", "R13_FEATURE_METRICS": "1"},
    )
    app.services.uplink.allow_publish(PackageName.parse("local-pkg"), actor=Actor("bench"))
    for v in VERSIONS:
        tgz = package_tgz("local-pkg", v, description="x" * 64)
        assert app.publish("local-pkg", publish_body("local-pkg", v, tgz)).status_code == 201
    for path in ("/local-pkg", "/proxied-pkg", "/local-pkg/-/local-pkg-1.0.0.tgz",
                 "/proxied-pkg/-/proxied-pkg-1.0.0.tgz"):  # fmt: skip
        assert app.get(path).status_code == 200  # rendered, cached
    yield app, upstream
    upstream.stop()


def _get(app: ProxyApp, path: str) -> Any:
    answer = app.get(path)
    assert answer.status_code == 200
    return answer


@pytest.mark.parametrize("kind", ["local", "cached"])
def test_packument(benchmark: Any, setup: tuple[ProxyApp, FaultyUpstream], kind: str) -> None:
    benchmark.group = "uplink-packument"
    app, _ = setup
    path = "/local-pkg" if kind == "local" else "/proxied-pkg"
    benchmark(_get, app, path)


@pytest.mark.parametrize("kind", ["local", "cached"])
def test_tarball(benchmark: Any, setup: tuple[ProxyApp, FaultyUpstream], kind: str) -> None:
    benchmark.group = "uplink-tarball"
    app, _ = setup
    name = "local-pkg" if kind == "local" else "proxied-pkg"
    benchmark(_get, app, f"/{name}/-/{name}-1.0.0.tgz")


def test_cold_direct(benchmark: Any, setup: tuple[ProxyApp, FaultyUpstream]) -> None:
    benchmark.group = "uplink-cold"
    _, upstream = setup
    conn = http.client.HTTPConnection("127.0.0.1", int(upstream.url.rsplit(":", 1)[1]))

    def fetch() -> None:
        conn.request("GET", "/proxied-pkg", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()

    benchmark(fetch)
    conn.close()


def test_cold_through_r13(benchmark: Any, setup: tuple[ProxyApp, FaultyUpstream]) -> None:
    benchmark.group = "uplink-cold"
    app, _ = setup
    app.services.config.set_feature(Feature.CACHE_ENABLED, False)
    try:
        benchmark(_get, app, "/proxied-pkg")
    finally:
        app.services.config.set_feature(Feature.CACHE_ENABLED, True)
