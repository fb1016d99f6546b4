"""The monitor's costs: per-request counting, one collection, a /metrics scrape.

Run: .venv/bin/python -m pytest bench/bench_metrics.py --benchmark-only
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon
import pytest

from app.main import create_app
from app.monitoring import Monitoring
from app.resources.system import Ping
from r13core.config import ConfigStore
from r13core.metrics import Metrics, PyMetrics
from r13core.monitor import MonitorSettings, Sampler
from r13core.services import open_services
from r13core.settings import Settings


def _record(settings: Settings) -> ConfigStore:
    """The data dir's record with the settings' R13_FEATURE_* bits applied (as a server does)."""
    services = open_services(settings)
    services.apply_feature_overrides()
    return services.config


SIDES = ["c", "py"]


@pytest.fixture(params=SIDES)
def counters(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    m: Any = Metrics(tmp_path) if request.param == "c" else PyMetrics()
    yield m
    if request.param == "c":
        m.close()


def test_count_one_request(benchmark: Any, counters: Any) -> None:
    """The hot path of the middleware: start + end of one request."""
    benchmark.group = "count one request (start + end)"
    rid = counters.route_id("GET /-/ping")
    start, end = counters.request_start, counters.request_end

    def one() -> None:
        start()
        end(rid, 200, 0, 2, 123_456)

    benchmark(one)


@pytest.fixture
def sampler(tmp_path: Path) -> Iterator[Sampler]:
    m = Metrics(tmp_path)
    rid = m.route_id("GET /-/ping")
    for i in range(1000):
        m.request_start()
        m.request_end(rid, 200, 0, 2, i * 1000)
    s = Sampler(tmp_path, m, MonitorSettings())
    s.collect()
    yield s
    m.close()


def test_one_collection(benchmark: Any, sampler: Sampler) -> None:
    """Counters + psutil (process tree and system) + rates and percentiles."""
    benchmark.group = "sampler"
    benchmark(sampler.collect)


def test_one_hundred_collections(
    benchmark: Any, sampler: Sampler, rounds: Callable[[int], int]
) -> None:
    """100 collections (goal: < 100 ms)."""
    benchmark.group = "sampler"

    def hundred() -> None:
        for _ in range(100):
            sampler.collect()

    benchmark.pedantic(hundred, rounds=rounds(5), iterations=1)


def test_one_tick(benchmark: Any, sampler: Sampler) -> None:
    """A collection plus alerts plus writing the 60-sample history file."""
    benchmark.group = "sampler"
    for _ in range(60):
        sampler.tick()
    benchmark(sampler.tick)


# -- middleware overhead: the same WSGI app with and without the monitor -----------


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "4873",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


@pytest.fixture(params=["bare", "monitored"])
def wsgi_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The same one-route app, without and with the monitor middleware (LOGGING off:
    the access log is a separate, opt-in cost)."""
    settings = Settings.from_env({"R13_DATA": str(tmp_path), "R13_FEATURE_LOGGING": "0"})
    store = _record(settings)
    mon = Monitoring(settings, store)
    middleware: list[Any] = [mon.middleware] if request.param == "monitored" else []
    app: falcon.App[falcon.Request, falcon.Response] = falcon.App(
        media_type=falcon.MEDIA_JSON, middleware=middleware
    )
    app.add_route("/-/ping", Ping())
    yield app
    mon.metrics.close()
    store.close()


def test_request_through_the_app(benchmark: Any, wsgi_app: Any) -> None:
    """GET /-/ping through the whole falcon app, in process."""
    benchmark.group = "middleware overhead (GET /-/ping in process)"

    def one() -> None:
        env = _environ("/-/ping")
        for _ in wsgi_app(env, _start_response):
            pass

    benchmark(one)


def test_middleware_hooks_alone(benchmark: Any, tmp_path: Path) -> None:
    """process_request + process_response of the monitor on one request."""
    benchmark.group = "middleware hooks"
    app: Any = create_app(
        open_services(Settings.from_env({"R13_DATA": str(tmp_path), "R13_FEATURE_LOGGING": "0"}))
    )
    mw = app._unprepared_middleware[0]
    req = falcon.Request(_environ("/-/ping"))
    req.uri_template = "/-/ping"
    resp = falcon.Response()
    resp.media = {}

    def one() -> None:
        mw.process_request(req, resp)
        mw.process_response(req, resp, None, True)

    benchmark(one)


# -- scraping -----------------------------------------------------------------------------


def test_scrape(benchmark: Any, tmp_path: Path) -> None:
    """GET /metrics body with 12 routes x 3 statuses counted."""
    benchmark.group = "scrape /metrics"
    settings = Settings.from_env({"R13_DATA": str(tmp_path), "R13_FEATURE_LOGGING": "0"})
    from app.monitoring import Monitoring

    store = _record(settings)
    mon = Monitoring(settings, store)
    for r in range(12):
        rid = mon.metrics.route_id(f"GET /route/{r}")
        for status in (200, 304, 404):
            for i in range(10):
                mon.metrics.request_start()
                mon.metrics.request_end(rid, status, 0, 100, i * 100_000)
    s = Sampler(tmp_path, mon.metrics, mon.settings)
    s.tick()
    s.tick()
    benchmark(mon.scrape)
    mon.metrics.close()
    store.close()
