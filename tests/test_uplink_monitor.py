"""The uplink in the monitor: counters shared by every worker, samples, /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from r13core.metrics import Event, Metrics
from r13core.monitor import Sampler
from tests.uplink_app import ProxyApp, build
from tests.uplink_fakes import FaultyUpstream


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream().start()
    up.add("left-pad", "1.0.0")
    yield up
    up.stop()


@pytest.fixture
def app(tmp_path: Path, upstream: FaultyUpstream) -> ProxyApp:
    return build(tmp_path, upstream.url, {"R13_UPLINK_MAX_FAILS": "1"})


def test_hits_misses_upstream_answers_errors_and_stale_copies_are_counted(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    metrics = Metrics(app.data)  # what every worker of the data dir adds to
    before = metrics.totals()
    app.get("/left-pad")  # miss, one upstream answer
    app.get("/left-pad")  # hit
    app.clock.advance(app.services.settings.uplink.max_age_ms + 1)
    upstream.add("left-pad", "1.1.0")
    upstream.default_mode = "5xx"
    assert app.get("/left-pad").headers["X-R13-Cache"] == "STALE"  # miss, error, stale
    after = metrics.totals()

    def delta(event: Event) -> int:
        return after.event(event) - before.event(event)

    assert delta(Event.CACHE_HITS) == 1
    assert delta(Event.CACHE_MISSES) == 2
    assert delta(Event.UPLINK_REQUESTS) == 1
    assert delta(Event.UPLINK_ERRORS) == 1
    assert delta(Event.UPLINK_STALE) == 1
    assert delta(Event.UPLINK_LATENCY_NS) > 0


def test_a_sample_carries_the_uplink_figures_and_the_breaker_state(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    sampler = Sampler(
        app.data,
        Metrics(app.data),
        app.services.settings.monitor,
        uplink_state=lambda: app.services.uplink.breaker.state().as_dict(),
    )
    assert sampler.collect() is None  # the baseline
    app.get("/left-pad")
    upstream.default_mode = "reset"
    app.get("/no-such")  # an error that opens the breaker (max fails 1)
    sample = sampler.collect()
    assert sample is not None
    assert sample["uplink_latency_ms"] is not None and sample["uplink_latency_ms"] > 0
    assert sample["uplink_errors_per_s"] > 0
    assert sample["cache_hit_rate"] == 0.0
    assert sample["uplink_breaker"] == "open"
    assert sample["uplink_breaker_failures"] == 1
    assert sample["uplink_requests_total"] >= 1


def test_metrics_expose_the_uplink(app: ProxyApp, upstream: FaultyUpstream) -> None:
    app.get("/left-pad")
    app.get("/left-pad")
    text = app.client.simulate_get("/metrics", headers=app.admin).text
    for name in (
        "r13_uplink_cache_hits_total",
        "r13_uplink_cache_misses_total",
        "r13_uplink_requests_total",
        "r13_uplink_errors_total",
        "r13_uplink_stale_served_total",
        "r13_uplink_latency_seconds_total",
    ):
        assert name in text, name
