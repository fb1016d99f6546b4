"""The sampler's math, the alert state machine, the shared history."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.config import ConfigStore, Feature
from r13core.events import EventLog
from r13core.metrics import BUCKETS, LATENCY_BOUNDS, Event, Metrics, Totals, bucket_of
from r13core.monitor import (
    EVENTS_FILE,
    AlertEngine,
    AlertRule,
    MonitorSettings,
    MonitorView,
    Sampler,
    compute_rates,
    default_rules,
    percentile,
    summarize,
)
from r13core.settings import Settings, SettingsError


def totals(**kw: Any) -> Totals:
    base: dict[str, Any] = {
        "started": 1.0,
        "requests": 0,
        "by_class": (0, 0, 0, 0, 0, 0),
        "bytes_in": 0,
        "bytes_out": 0,
        "latency_sum_ns": 0,
        "latency": (0,) * BUCKETS,
        "events": (0,) * 16,
        "gauges": (0,) * 4,
        "processes": 1,
        "routes": 1,
    }
    base.update(kw)
    return Totals(**base)


# -- math ---------------------------------------------------------------------------


def test_percentile_of_an_empty_histogram_is_none() -> None:
    assert percentile([0] * BUCKETS, 0.5) is None


def test_percentile_interpolates_inside_the_bucket() -> None:
    counts = [0] * BUCKETS
    i = bucket_of(3_000_000)  # the 2.5..5 ms bucket
    counts[i] = 100
    lo, hi = LATENCY_BOUNDS[i - 1], LATENCY_BOUNDS[i]
    assert percentile(counts, 0.5) == pytest.approx(lo + (hi - lo) * 0.5)
    assert percentile(counts, 1.0) == pytest.approx(hi)


def test_percentile_of_the_open_bucket_is_its_lower_bound() -> None:
    counts = [0] * BUCKETS
    counts[-1] = 3
    assert percentile(counts, 0.99) == LATENCY_BOUNDS[-2]


def test_rates_come_from_the_difference_of_two_totals() -> None:
    lat = [0] * BUCKETS
    lat[bucket_of(1_000_000)] = 10
    events = [0] * 16
    events[Event.CACHE_HITS], events[Event.CACHE_MISSES] = 3, 1
    prev = totals()
    cur = totals(
        requests=20,
        by_class=(0, 0, 18, 0, 0, 2),
        bytes_out=2000,
        latency_sum_ns=20_000_000,
        latency=tuple(lat),
        events=tuple(events),
    )
    r = compute_rates(prev, cur, 2.0)
    assert r["requests_per_s"] == 10 and r["errors_per_s"] == 1
    assert r["error_rate_percent"] == 10.0 and r["bytes_out_per_s"] == 1000
    assert r["latency_avg_ms"] == 1.0
    assert 0.5 < r["latency_p50_ms"] <= 1.0
    assert r["cache_hit_rate"] == 0.75


def test_settings_of_the_monitor_are_validated() -> None:
    env = {"ALERT_CPU_THRESHOLD": "50", "METRICS_HISTORY_SIZE": "7", "R13_ALERT_SAMPLES": "2"}
    m = Settings.from_env(env).monitor
    assert (m.cpu_percent, m.history, m.alert_samples) == (50, 7, 2)
    assert MonitorSettings.from_env(env) == m
    with pytest.raises(SettingsError, match="R13_ALERT_SAMPLES"):
        Settings.from_env({"R13_ALERT_SAMPLES": "zero"})
    with pytest.raises(SettingsError, match="R13_ALERT_ERROR_RATE"):
        Settings.from_env({"R13_ALERT_ERROR_RATE": "101"})


# -- alerts -------------------------------------------------------------------------


def feed(engine: AlertEngine, values: list[float | None], metric: str = "cpu_percent") -> list[str]:
    out = []
    for i, v in enumerate(values):
        for e in engine.feed({"ts": float(i), metric: v, "requests": 100}):
            out.append(f"{e['event']}@{i}")
    return out


def test_an_alert_is_raised_once_after_n_samples_over() -> None:
    engine = AlertEngine([AlertRule("cpu", "cpu_percent", 80, samples=3)])
    assert feed(engine, [90, 95, 85, 99, 99, 99]) == ["raised@2"]
    (alert,) = engine.active()
    assert alert["started"] == 0.0 and alert["peak"] == 99 and alert["ended"] is None


def test_an_alert_does_not_flap_around_the_threshold() -> None:
    engine = AlertEngine([AlertRule("cpu", "cpu_percent", 80, samples=3)])
    # Over, under, over...: never three in a row either way.
    assert feed(engine, [90, 70, 90, 70, 90, 90, 70, 90]) == []
    engine2 = AlertEngine([AlertRule("cpu", "cpu_percent", 80, samples=3)])
    assert feed(engine2, [90, 90, 90, 70, 70, 90, 70, 70, 99]) == ["raised@2"]


def test_an_alert_clears_after_n_samples_under_and_keeps_its_peak() -> None:
    engine = AlertEngine([AlertRule("cpu", "cpu_percent", 80, samples=2)])
    assert feed(engine, [81, 97, 85, 10, 20, 90, 95]) == ["raised@1", "cleared@4", "raised@6"]
    first, second = engine.log
    assert (first["started"], first["ended"], first["peak"], first["state"]) == (
        0,
        4,
        97,
        "cleared",
    )
    assert second["state"] == "active" and second["started"] == 5.0 and second["peak"] == 95


def test_a_stall_holds_the_alert() -> None:
    engine = AlertEngine([AlertRule("latency", "latency_p95_ms", 100, samples=2)])
    samples: list[dict[str, Any]] = [
        {"ts": 0.0, "latency_p95_ms": 500},
        {"ts": 1.0, "latency_p95_ms": 500},
        *({"ts": 2.0 + i, "latency_p95_ms": None, "active_requests": 4} for i in range(5)),
    ]
    events = [e["event"] for s in samples for e in engine.feed(s)]
    assert events == ["raised"] and engine.active()


def test_no_data_counts_as_under() -> None:
    engine = AlertEngine([AlertRule("latency", "latency_p95_ms", 100, samples=2)])
    assert feed(engine, [500, 500, None, None], metric="latency_p95_ms") == [
        "raised@1",
        "cleared@3",
    ]


def test_the_error_rate_rule_needs_enough_requests() -> None:
    rules = default_rules(MonitorSettings(alert_samples=1, error_min_requests=10))
    engine = AlertEngine([r for r in rules if r.name == "error_rate"])
    assert engine.feed({"ts": 1, "error_rate_percent": 100.0, "requests": 3}) == []
    (event,) = engine.feed({"ts": 2, "error_rate_percent": 50.0, "requests": 10})
    assert event["event"] == "raised" and event["rule"] == "error_rate"


def test_alert_state_survives_a_new_engine() -> None:
    engine = AlertEngine([AlertRule("cpu", "cpu_percent", 80, samples=2)])
    feed(engine, [90, 90, 10])
    again = AlertEngine([AlertRule("cpu", "cpu_percent", 80, samples=2)])
    again.load(json.loads(json.dumps(engine.to_dict())))
    assert [e["event"] for e in again.feed({"ts": 9.0, "cpu_percent": 5})] == ["cleared"]
    assert again.log[0]["ended"] == 9.0


# -- the sampler ------------------------------------------------------------------------


@pytest.fixture
def metrics(data_dir: Path) -> Iterator[Metrics]:
    m = Metrics(data_dir)
    yield m
    m.close()


def make_sampler(
    data_dir: Path, metrics: Metrics, store: ConfigStore | None = None, **kw: Any
) -> Sampler:
    s = MonitorSettings(**{"interval_ms": 50, "history": 5, **kw})
    return Sampler(data_dir, metrics, s, config=store, registry_stats=lambda: {"packages": 3})


def test_the_first_collection_only_sets_the_baseline(data_dir: Path, metrics: Metrics) -> None:
    sampler = make_sampler(data_dir, metrics)
    assert sampler.tick() is None
    rid = metrics.route_id("GET /x")
    for _ in range(4):
        metrics.request_start()
        metrics.request_end(rid, 200, 0, 10, 1000)
    sample = sampler.tick()
    assert sample is not None
    assert sample["requests"] == 4 and sample["requests_total"] == 4
    assert sample["packages"] == 3 and sample["versions"] is None
    assert sample["processes"] >= 1 and sample["memory_rss_bytes"] > 0


def test_history_is_bounded_and_shared_through_the_file(
    data_dir: Path, metrics: Metrics, store: ConfigStore
) -> None:
    sampler = make_sampler(data_dir, metrics, store)
    sampler.tick()
    for _ in range(8):
        sampler.tick()
    view = MonitorView(data_dir)
    assert [s["seq"] for s in view.history()] == [4, 5, 6, 7, 8]
    latest = view.latest()
    assert latest is not None and latest["seq"] == 8
    store.set_feature(Feature.DEBUG, True)
    sample = sampler.tick()
    assert sample is not None and sample["config_updates"] == 1
    assert view.latest() == sample


def test_a_new_sampler_continues_the_history(data_dir: Path, metrics: Metrics) -> None:
    first = make_sampler(data_dir, metrics, cpu_percent=0.0001, alert_samples=1)
    first.tick()
    first.tick()
    first.tick()
    second = make_sampler(data_dir, metrics, cpu_percent=0.0001, alert_samples=1)
    second.resume()
    sample = second.tick()  # resumed totals: no baseline tick needed
    assert sample is not None and sample["seq"] == 3
    assert [s["seq"] for s in MonitorView(data_dir).history()] == [1, 2, 3]


def test_alerts_are_written_to_the_events_file(data_dir: Path, metrics: Metrics) -> None:
    # Only the memory rule can fire: the test process's real CPU must not raise one too.
    sampler = make_sampler(
        data_dir, metrics, memory_percent=0.001, cpu_percent=1e9, alert_samples=1
    )
    sampler.tick()
    sampler.tick()
    lines = [json.loads(x) for x in (data_dir / EVENTS_FILE).read_text().splitlines()]
    # The sample goes out first (topic "metrics", for the live channel), then its alert.
    assert [(x["seq"], x["topic"]) for x in lines] == [(1, "metrics"), (2, "alert")]
    assert lines[0]["data"]["seq"] == 1
    assert (lines[1]["data"]["rule"], lines[1]["data"]["event"]) == ("memory", "raised")
    assert MonitorView(data_dir).alerts()["active"][0]["rule"] == "memory"


def test_a_new_sampler_goes_on_numbering_the_events(data_dir: Path, metrics: Metrics) -> None:
    first = make_sampler(data_dir, metrics, memory_percent=0.001, cpu_percent=1e9, alert_samples=1)
    first.tick()
    first.tick()  # raises the memory alert: event 1
    second = make_sampler(data_dir, metrics, memory_percent=1e9, cpu_percent=1e9, alert_samples=1)
    second.resume()
    second.tick()  # the resumed alert clears: event 2, from another sampler
    events = EventLog(data_dir).read_after(0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    alerts = [(e.data["rule"], e.data["event"]) for e in events if e.topic == "alert"]
    assert alerts == [("memory", "raised"), ("memory", "cleared")]


def test_an_unwritable_events_log_does_not_stop_the_history(
    data_dir: Path, metrics: Metrics
) -> None:
    (data_dir / "run").mkdir(exist_ok=True)
    (data_dir / "run" / "events.lock").mkdir()  # the events log cannot be opened
    sampler = make_sampler(
        data_dir, metrics, memory_percent=0.001, cpu_percent=1e9, alert_samples=1
    )
    sampler.tick()
    assert sampler.tick() is not None
    view = MonitorView(data_dir)
    assert [s["seq"] for s in view.history()] == [1]
    assert view.alerts()["active"][0]["rule"] == "memory"  # kept, though not published


def wait_for(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_only_one_sampler_leads_and_another_takes_over(data_dir: Path, metrics: Metrics) -> None:
    a = make_sampler(data_dir, metrics)
    b = make_sampler(data_dir, metrics)
    a.start()
    wait_for(lambda: a.leading)
    b.start()
    view = MonitorView(data_dir)
    wait_for(lambda: len(view.history()) >= 2)
    assert not b.leading
    seq = view.history()[-1]["seq"]
    a.stop()
    wait_for(lambda: b.leading)
    wait_for(lambda: view.history()[-1]["seq"] > seq + 1)
    seqs = [s["seq"] for s in view.history()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    b.stop()


def test_the_leader_calls_on_turn_every_turn_even_when_it_fails(
    data_dir: Path, metrics: Metrics
) -> None:
    """A cluster node's heartbeat rides on_turn (r13core/cluster/heartbeat.py): it is
    called at once by a new leader (None), then with each sample; a failing one (the
    database down) never stops the sampling."""
    sampler = make_sampler(data_dir, metrics)
    seen: list[dict[str, Any] | None] = []

    def beat(sample: Any) -> None:
        seen.append(None if sample is None else dict(sample))
        raise OSError("the database is down")

    sampler.on_turn = beat
    sampler.start()
    try:
        wait_for(lambda: sum(1 for s in seen if s is not None) >= 3)
    finally:
        sampler.stop()
    assert seen[0] is None
    samples = [s for s in seen if s is not None]
    assert [s["seq"] for s in samples] == list(
        range(samples[0]["seq"], samples[0]["seq"] + len(samples))
    )


def test_metrics_off_stops_sampling(data_dir: Path, metrics: Metrics, store: ConfigStore) -> None:
    store.set_feature(Feature.METRICS, False)
    sampler = make_sampler(data_dir, metrics, store)
    # Count the loop's turns (each asks whether METRICS is on) rather than sleep a while.
    turns = [0]
    enabled = sampler._enabled

    def counted() -> bool:
        turns[0] += 1
        return enabled()

    sampler._enabled = counted  # type: ignore[method-assign]
    sampler.start()
    wait_for(lambda: turns[0] >= 6)
    view = MonitorView(data_dir)
    assert view.history() == []
    store.set_feature(Feature.METRICS, True)
    wait_for(lambda: len(view.history()) >= 1)
    sampler.stop()


def test_summary_reports_spread_uptime_and_totals() -> None:
    history = [
        {"ts": float(i), "cpu_percent": float(i), "requests_total": i * 10, "server_started": 0.0}
        for i in range(1, 11)
    ]
    s = summarize(history, now=100.0)
    assert s["samples"] == 10 and s["uptime_s"] == 100.0
    cpu = s["figures"]["cpu_percent"]
    assert (cpu["min"], cpu["avg"], cpu["max"], cpu["p50"], cpu["p95"]) == (1, 5.5, 10, 5, 10)
    assert s["totals"]["requests_total"] == 100
    assert s["figures"]["latency_p95_ms"] is None


def test_an_unreadable_state_file_starts_a_new_history(data_dir: Path, metrics: Metrics) -> None:
    (data_dir / "run").mkdir(exist_ok=True)
    (data_dir / "run" / "metrics.json").write_text(
        '{"format": 1, "last_totals": {"x": 1}, "last_ts": 5}'
    )
    sampler = make_sampler(data_dir, metrics)
    sampler.start()
    wait_for(lambda: len(MonitorView(data_dir).history()) >= 2)
    sampler.stop()
    assert MonitorView(data_dir).history()[0]["seq"] == 1
