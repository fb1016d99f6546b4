"""The circuit breaker (shared by every worker) and single flight, alone and through the app."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.uplink.breaker import CircuitBreaker
from r13core.uplink.flight import SingleFlight
from tests.uplink_app import Clock, build
from tests.uplink_fakes import FaultyUpstream


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# -- the breaker alone ----------------------------------------------------------------


def test_the_breaker_opens_after_max_fails_in_a_row(tmp_path: Path) -> None:
    clock = Clock()
    breaker = CircuitBreaker(tmp_path, max_fails=3, fail_timeout_ms=1000, clock=clock)
    breaker.failure()
    breaker.success()  # not in a row
    breaker.failure()
    breaker.failure()
    assert breaker.allow()
    assert breaker.state().state == "closed"
    breaker.failure()
    assert breaker.state().state == "open"
    assert not breaker.allow()
    assert breaker.state().retry_in_ms == 1000


def test_after_the_fail_timeout_exactly_one_probe_goes_through(tmp_path: Path) -> None:
    clock = Clock()
    breaker = CircuitBreaker(tmp_path, max_fails=1, fail_timeout_ms=1000, clock=clock)
    breaker.failure()
    clock.advance(999)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.state().state == "half-open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for its outcome
    breaker.success()
    assert breaker.state().state == "closed"
    assert breaker.allow() and breaker.allow()


def test_a_failed_probe_opens_the_breaker_again(tmp_path: Path) -> None:
    clock = Clock()
    breaker = CircuitBreaker(tmp_path, max_fails=2, fail_timeout_ms=1000, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.advance(1000)
    assert breaker.allow()
    breaker.failure()  # one failure is enough once open
    assert breaker.state().state == "open"
    assert not breaker.allow()


def test_a_probe_that_never_reports_is_replaced(tmp_path: Path) -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        tmp_path, max_fails=1, fail_timeout_ms=1000, probe_timeout_ms=5000, clock=clock
    )
    breaker.failure()
    clock.advance(1000)
    assert breaker.allow()
    clock.advance(4999)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()  # the first probe's worker died: a new probe


def test_two_workers_share_one_breaker(tmp_path: Path) -> None:
    clock = Clock()
    one = CircuitBreaker(tmp_path, max_fails=2, fail_timeout_ms=1000, clock=clock)
    two = CircuitBreaker(tmp_path, max_fails=2, fail_timeout_ms=1000, clock=clock)
    one.failure()
    two.failure()
    assert not one.allow() and not two.allow()
    clock.advance(1000)
    assert two.allow()
    assert not one.allow()  # the probe is one for the whole server
    two.success()
    assert one.allow()


def _fail_in_child(data: str) -> None:
    breaker = CircuitBreaker(Path(data), max_fails=3, fail_timeout_ms=60_000)
    for _ in range(3):
        breaker.failure()


def test_a_breaker_opened_in_another_process_is_open_here(tmp_path: Path) -> None:
    here = CircuitBreaker(tmp_path, max_fails=3, fail_timeout_ms=60_000)
    assert here.allow()
    child = multiprocessing.get_context("fork").Process(
        target=_fail_in_child, args=(str(tmp_path),)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert here.state().state == "open"
    assert not here.allow()


# -- single flight alone --------------------------------------------------------------


def test_single_flight_runs_one_call_per_key_and_shares_its_outcome() -> None:
    flight: SingleFlight[int] = SingleFlight()
    release = threading.Event()
    calls: list[int] = []
    results: list[tuple[int, bool]] = []

    def work() -> int:
        calls.append(1)
        release.wait(30)
        return 42

    threads = [
        threading.Thread(target=lambda: results.append(flight.do("k", work))) for _ in range(5)
    ]
    for t in threads:
        t.start()
    wait_for(lambda: flight.waiters("k") == 4)
    release.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(results) == [(42, False)] + [(42, True)] * 4
    assert flight.in_flight() == 0


def test_single_flight_hands_the_leaders_error_to_every_waiter() -> None:
    flight: SingleFlight[int] = SingleFlight()
    release = threading.Event()
    errors: list[BaseException] = []

    def work() -> int:
        release.wait(30)
        raise ValueError("upstream down")

    def call() -> None:
        try:
            flight.do("k", work)
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: flight.waiters("k") == 2)
    release.set()
    for t in threads:
        t.join()
    assert len(errors) == 3


# -- through the app ------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream().start()
    up.add("left-pad", "1.0.0")
    up.add("other", "1.0.0")
    yield up
    up.stop()


def test_an_open_breaker_answers_at_once_without_asking_and_a_probe_closes_it(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    app = build(tmp_path, upstream.url, {"R13_UPLINK_MAX_FAILS": "2"})
    upstream.default_mode = "5xx"
    assert app.get("/left-pad").status_code == 502
    assert app.get("/other").status_code == 502
    asked = sum(upstream.counts.values())
    refused = app.get("/left-pad")
    assert refused.status_code == 502
    assert "circuit breaker open" in refused.json["error"]
    assert sum(upstream.counts.values()) == asked  # not asked
    status = app.client.simulate_get("/_api/uplink", headers=app.admin).json
    assert status["breaker"]["state"] == "open"
    upstream.default_mode = "ok"
    app.clock.advance(app.services.settings.uplink.fail_timeout_ms)
    assert app.get("/left-pad").status_code == 200  # the probe
    assert (
        app.client.simulate_get("/_api/uplink", headers=app.admin).json["breaker"]["state"]
        == "closed"
    )


def test_an_admin_can_close_the_breaker(tmp_path: Path, upstream: FaultyUpstream) -> None:
    app = build(tmp_path, upstream.url, {"R13_UPLINK_MAX_FAILS": "1"})
    upstream.default_mode = "5xx"
    app.get("/left-pad")
    upstream.default_mode = "ok"
    assert app.get("/left-pad").status_code == 502
    reset = app.client.simulate_post("/_api/uplink/breaker/reset", headers=app.admin)
    assert reset.status_code == 200
    assert app.get("/left-pad").status_code == 200
    assert (
        app.client.simulate_post("/_api/uplink/breaker/reset", headers=app.writer).status_code
        == 403
    )


def _concurrent_gets(app: Any, path: str, n: int) -> tuple[list[threading.Thread], list[int]]:
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(app.get(path).status_code))
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    return threads, statuses


def test_concurrent_misses_in_one_worker_make_one_upstream_request(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    app = build(tmp_path, upstream.url)
    upstream.gate.clear()
    threads, statuses = _concurrent_gets(app, "/left-pad", 6)
    wait_for(lambda: app.services.uplink._flight.waiters(("doc", "left-pad", "full")) == 5)
    upstream.gate.set()
    for t in threads:
        t.join()
    assert statuses == [200] * 6
    assert upstream.count("/left-pad") == 1


def test_concurrent_tarball_misses_make_one_upstream_request(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    app = build(tmp_path, upstream.url)
    app.get("/left-pad")
    path = upstream.tarball_path("left-pad", "1.0.0")
    upstream.gate.clear()
    threads, statuses = _concurrent_gets(app, path, 4)
    wait_for(lambda: app.services.uplink._flight.waiters(("tgz", "left-pad", "1.0.0")) == 3)
    upstream.gate.set()
    for t in threads:
        t.join()
    assert statuses == [200] * 4
    assert upstream.count(path) == 1


def test_concurrent_misses_in_two_workers_make_one_upstream_request(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    one = build(tmp_path, upstream.url)
    two = build(tmp_path, upstream.url, keys=False)  # another worker: its own uplink, same data dir
    upstream.gate.clear()
    first, s1 = _concurrent_gets(one, "/left-pad", 1)
    assert upstream.waiting.acquire(timeout=30)  # worker one's request reached the upstream
    second, s2 = _concurrent_gets(two, "/left-pad", 1)
    wait_for(lambda: two.services.uplink._flight.in_flight() == 1)
    upstream.gate.set()
    for t in first + second:
        t.join()
    assert s1 + s2 == [200, 200]
    assert upstream.count("/left-pad") == 1
