"""The /metrics exporter: a prometheus_client collector over the shared counters.

The counters already live in shared memory (r13core/metrics.py), so no
multiprocess-mode files are needed: any worker's scrape reads the same
numbers, plus the latest sample of the state file for CPU, memory, registry
figures and active alerts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from r13core.metrics import LATENCY_BOUNDS, UNMATCHED, Event, Gauge, Metrics
from r13core.monitor import MonitorView

_LE = ["+Inf" if b == float("inf") else repr(b) for b in LATENCY_BOUNDS]


def _split(name: str) -> tuple[str, str]:
    if name == UNMATCHED:
        return UNMATCHED, UNMATCHED
    method, _, route = name.partition(" ")
    return method, route


class SharedCollector:
    """A prometheus_client collector over the shared counters and the latest sample.

    The counters already live in shared memory, so no multiprocess-mode
    files are needed: any worker's scrape reads the same numbers.
    """

    def __init__(self, metrics: Metrics, view: MonitorView) -> None:
        self.metrics = metrics
        self.view = view

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        totals = m.totals()
        requests = CounterMetricFamily(
            "r13_http_requests",
            "HTTP requests answered, by method, route template and status (all workers).",
            labels=["method", "route", "status"],
        )
        for name, status, count in m.requests_by_route():
            method, route = _split(name)
            requests.add_metric([method, route, str(status)], count)
        yield requests

        latency = HistogramMetricFamily(
            "r13_http_request_duration_seconds",
            "Time from the request reaching the app to the response being ready, in seconds.",
            labels=["method", "route"],
            unit="seconds",
        )
        for rid in range(totals.routes):
            buckets, total_ns = m.route_latency(rid)
            if not any(buckets):
                continue
            cumulative, acc = [], 0
            for le, n in zip(_LE, buckets, strict=True):
                acc += n
                cumulative.append((le, float(acc)))
            method, route = _split(m.route_name(rid))
            latency.add_metric([method, route], cumulative, sum_value=total_ns / 1e9)
        yield latency

        yield CounterMetricFamily(
            "r13_http_request_bytes",
            "Bytes of request bodies received (Content-Length), in bytes.",
            value=totals.bytes_in,
            unit="bytes",
        )
        yield CounterMetricFamily(
            "r13_http_response_bytes",
            "Bytes of response bodies sent, in bytes.",
            value=totals.bytes_out,
            unit="bytes",
        )
        yield GaugeMetricFamily(
            "r13_http_requests_in_flight",
            "Requests being handled right now (all workers).",
            value=max(0, totals.gauge(Gauge.ACTIVE_REQUESTS)),
        )
        yield GaugeMetricFamily(
            "r13_workers",
            "Worker processes that have the shared counters open.",
            value=totals.processes,
        )
        yield GaugeMetricFamily(
            "r13_counters_start_time_seconds",
            "Unix time the shared counters started from zero, in seconds.",
            value=totals.started,
            unit="seconds",
        )
        for event, name, text in (
            (Event.PUBLISHES, "r13_publishes", "Package versions published."),
            (Event.UNPUBLISHES, "r13_unpublishes", "Package versions unpublished."),
            (Event.DOWNLOADS, "r13_downloads", "Tarballs downloaded (200 answers to GET)."),
            (Event.CACHE_HITS, "r13_uplink_cache_hits", "Uplink requests answered from cache."),
            (Event.CACHE_MISSES, "r13_uplink_cache_misses", "Uplink requests not in cache."),
            (Event.UPLINK_REQUESTS, "r13_uplink_requests", "Requests the upstream answered."),
            (Event.UPLINK_ERRORS, "r13_uplink_errors",
             "Upstream failures: timeouts, resets, 5xx, bad integrity, breaker open."),
            (Event.UPLINK_STALE, "r13_uplink_stale_served",
             "Cached copies served because the upstream failed."),
        ):  # fmt: skip
            yield CounterMetricFamily(name, text, value=totals.event(event))
        yield CounterMetricFamily(
            "r13_uplink_latency_seconds",
            "Time the upstream took over every answered request, in seconds (sum).",
            value=totals.event(Event.UPLINK_LATENCY_NS) / 1e9,
            unit="seconds",
        )
        ws = CounterMetricFamily(
            "r13_websocket_messages",
            "Live-channel WebSocket messages, by direction.",
            labels=["direction"],
        )
        ws.add_metric(["in"], totals.event(Event.WS_MESSAGES_IN))
        ws.add_metric(["out"], totals.event(Event.WS_MESSAGES_OUT))
        yield ws
        yield GaugeMetricFamily(
            "r13_websocket_connections",
            "Open live-channel WebSocket connections (all workers).",
            value=max(0, totals.gauge(Gauge.WS_CONNECTIONS)),
        )
        yield from self._from_sample()

    def _from_sample(self) -> Iterator[Metric]:
        sample = self.view.latest()
        if sample is None:
            return
        for key, name, text, scale in (
            ("cpu_percent", "r13_process_cpu_ratio",
             "CPU used by the server's process tree over the last sample, 0..1 of all cores.",
             0.01),
            ("memory_rss_bytes", "r13_process_resident_memory_bytes",
             "Resident memory of the server's process tree, in bytes.", 1),
            ("system_cpu_percent", "r13_system_cpu_ratio",
             "CPU used on the whole machine over the last sample, 0..1.", 0.01),
            ("system_memory_percent", "r13_system_memory_ratio",
             "Memory in use on the whole machine, 0..1.", 0.01),
            ("server_started", "r13_start_time_seconds",
             "Unix time the server (gunicorn master) started, in seconds.", 1),
            ("packages", "r13_packages", "Packages in the registry.", 1),
            ("versions", "r13_package_versions", "Package versions in the registry.", 1),
            ("ts", "r13_sample_time_seconds",
             "Unix time of the latest monitor sample, in seconds.", 1),
        ):  # fmt: skip
            value = sample.get(key)
            if value is not None:
                unit = (
                    "bytes"
                    if name.endswith("_bytes")
                    else ("seconds" if name.endswith("_seconds") else "")
                )
                yield GaugeMetricFamily(name, text, value=float(value) * scale, unit=unit)
        breaker = sample.get("uplink_breaker")
        if breaker is not None:
            states = GaugeMetricFamily(
                "r13_uplink_breaker",
                "1 for the uplink circuit breaker's current state, else 0.",
                labels=["state"],
            )
            for state in ("closed", "open", "half-open"):
                states.add_metric([state], 1.0 if breaker == state else 0.0)
            yield states
        alerts = GaugeMetricFamily(
            "r13_alert_active", "1 while the alert rule is raised, else 0.", labels=["rule"]
        )
        active = {a.get("rule") for a in self.view.alerts()["active"]}
        for rule in self.view.state().get("rules", []):
            alerts.add_metric([rule["rule"]], 1.0 if rule["rule"] in active else 0.0)
        yield alerts
