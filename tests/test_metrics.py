"""Shared request counters: the C path against its Python twin, across processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r13core.metrics import (
    BUCKETS,
    LATENCY_BOUNDS,
    ROUTES,
    Event,
    Gauge,
    Metrics,
    PyMetrics,
    bucket_of,
    route_key,
)


@pytest.fixture
def metrics(data_dir: Path) -> Iterator[Metrics]:
    m = Metrics(data_dir)
    yield m
    m.close()


def test_bounds_grow_and_end_in_infinity() -> None:
    assert len(LATENCY_BOUNDS) == BUCKETS
    assert list(LATENCY_BOUNDS) == sorted(set(LATENCY_BOUNDS))
    assert LATENCY_BOUNDS[-1] == float("inf")
    assert bucket_of(0) == 0 and bucket_of(25_000) == 0 and bucket_of(25_001) == 1
    assert bucket_of(10**15) == BUCKETS - 1


def test_route_keys_name_method_and_template() -> None:
    assert route_key("GET", "/-/ping") == "GET /-/ping"
    assert route_key("BREW", "/x") == "OTHER /x"
    assert route_key("GET", None) == "*"


def test_route_ids_are_shared_by_handles(data_dir: Path, metrics: Metrics) -> None:
    with Metrics(data_dir) as other:
        a = metrics.route_id("GET /a")
        b = other.route_id("GET /b")
        assert other.route_id("GET /a") == a and metrics.route_id("GET /b") == b
        assert {a, b} == {1, 2}
        assert metrics.route_name(b) == "GET /b"
        assert metrics.route_name(0) == "*"


def test_a_full_route_table_counts_under_route_zero(metrics: Metrics) -> None:
    for i in range(1, ROUTES):
        assert metrics.route_id(f"GET /r{i}") == i
    assert metrics.route_id("GET /one-too-many") == 0


def test_a_request_is_counted_everywhere(metrics: Metrics) -> None:
    rid = metrics.route_id("PUT /pkg")
    metrics.request_start()
    assert metrics.totals().gauge(Gauge.ACTIVE_REQUESTS) == 1
    metrics.request_end(rid, 201, 1000, 20, 3_000_000)
    metrics.count(Event.PUBLISHES)
    t = metrics.totals()
    assert t.requests == 1 and t.by_class[2] == 1
    assert (t.bytes_in, t.bytes_out, t.latency_sum_ns) == (1000, 20, 3_000_000)
    assert t.latency[bucket_of(3_000_000)] == 1
    assert t.event(Event.PUBLISHES) == 1 and t.gauge(Gauge.ACTIVE_REQUESTS) == 0
    assert metrics.requests_by_route() == [("PUT /pkg", 201, 1)]
    buckets, total = metrics.route_latency(rid)
    assert sum(buckets) == 1 and total == 3_000_000


def test_out_of_range_statuses_count_as_599(metrics: Metrics) -> None:
    metrics.request_start()
    metrics.request_end(0, 999, 0, 0, 1)
    assert metrics.requests_by_route() == [("*", 599, 1)]


requests = st.lists(
    st.tuples(
        st.sampled_from(["GET /a", "PUT /b", "*"]),
        st.integers(100, 599),
        st.integers(0, 2**20),
        st.integers(0, 2**20),
        st.integers(0, 10**11),
    ),
    max_size=60,
)


@settings(max_examples=60)
@given(requests)
def test_the_c_counters_agree_with_the_python_twin(
    tmp_path_factory: pytest.TempPathFactory, reqs: list[tuple[str, int, int, int, int]]
) -> None:
    d = tmp_path_factory.mktemp("m")
    twin = PyMetrics()
    with Metrics(d) as m:
        for name, status, size_in, size_out, ns in reqs:
            for side in (m, twin):
                side.request_start()
                side.request_end(side.route_id(name), status, size_in, size_out, ns)
        c, py = m.totals(), twin.totals()
        assert (c.requests, c.by_class, c.bytes_in, c.bytes_out) == (
            py.requests,
            py.by_class,
            py.bytes_in,
            py.bytes_out,
        )
        assert (c.latency, c.latency_sum_ns, c.gauges) == (py.latency, py.latency_sum_ns, py.gauges)


def _hammer(data_dir: str, n: int) -> None:
    m = Metrics(data_dir)
    rid = m.route_id("GET /hot")
    for i in range(n):
        m.request_start()
        m.request_end(rid, 200 if i % 3 else 500, 3, 5, i)
    m.close()


def test_counters_are_exact_across_processes(data_dir: Path, metrics: Metrics) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(data_dir), 20_000)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    t = metrics.totals()
    assert t.requests == 60_000
    assert t.by_class[5] == 3 * 6667 and t.by_class[2] == 60_000 - 3 * 6667
    assert (t.bytes_in, t.bytes_out) == (180_000, 300_000)
    assert t.gauge(Gauge.ACTIVE_REQUESTS) == 0


def _stuck(data_dir: str, ready: multiprocessing.synchronize.Event) -> None:
    m = Metrics(data_dir)
    m.request_start()
    m.gauge_add(Gauge.WS_CONNECTIONS, 2)
    ready.set()
    signal.pause()


def test_a_killed_worker_leaves_no_requests_in_flight(data_dir: Path, metrics: Metrics) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_stuck, args=(str(data_dir), ready))
    p.start()
    assert ready.wait(30)
    t = metrics.totals()
    assert (t.gauge(Gauge.ACTIVE_REQUESTS), t.gauge(Gauge.WS_CONNECTIONS), t.processes) == (1, 2, 2)
    assert p.pid is not None
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    assert metrics.reap() == 1
    t = metrics.totals()
    assert (t.gauge(Gauge.ACTIVE_REQUESTS), t.gauge(Gauge.WS_CONNECTIONS), t.processes) == (0, 0, 1)
