"""Monitoring glue: the request middleware, the access log, the /metrics exporter, counting.

:class:`Monitoring` builds everything the app needs from the settings and
the live record: the shared counters, the sampler (started only in a real
server, see ``create_app``), the read side every worker answers from, the
access log, a Prometheus collector over the shared counters, and the
counting of publishes, unpublishes and downloads — in the shared counters
(rates, totals) and per package and day in the database (analytics,
buffered per worker: :mod:`r13core.usage`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import falcon
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from app.http import redact_path
from app.security_middleware import request_is_local
from r13core.access import Action
from r13core.config import ConfigStore, Feature
from r13core.metrics import (
    LATENCY_BOUNDS,
    METHODS,
    UNMATCHED,
    Event,
    Gauge,
    Metrics,
    route_key,
)
from r13core.monitor import MonitorSettings, MonitorView, RegistryStats, Sampler
from r13core.registry import PackageChange
from r13core.settings import Settings
from r13core.usage import Clock, UsageRecorder, UsageStorage

log = logging.getLogger("r13.access")
debug_log = logging.getLogger("r13.debug")

_METRICS = int(Feature.METRICS)
_LOGGING = int(Feature.LOGGING)
_DEBUG = int(Feature.DEBUG)
_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


# -- access checks ------------------------------------------------------------------


def can_read_monitoring(
    req: falcon.Request, store: ConfigStore, *, admin: bool | None = None
) -> bool:
    """Whether ``req`` may read /metrics, /_api/performance/* or /_api/config.

    A request that carries a key is decided by the security layer's guard
    (r13core.access, the one decision point): admin for /_api/performance/*,
    read for /metrics and /_api/config (``admin`` overrides the choice by
    path); a bad key is 401 and too weak a key 403 (raised). Without a key:
    anyone when PRIVATE_REGISTRY is off, and only local clients (a scraper or
    admin on this machine, not through a proxy: app/security_middleware.py
    ``request_is_local``) when it is on.
    """
    guard = getattr(req.context, "guard", None)
    if guard is not None and getattr(req.context, "token", None) is not None:
        if admin is None:
            admin = req.path != "/metrics"
        guard.require(req, Action.ADMIN if admin else Action.READ)
        return True
    if not store.enabled(Feature.PRIVATE_REGISTRY):
        return True
    return request_is_local(req)


def require_monitoring_access(
    req: falcon.Request, store: ConfigStore, *, admin: bool | None = None
) -> None:
    """Raise 403 unless :func:`can_read_monitoring`."""
    if not can_read_monitoring(req, store, admin=admin):
        raise falcon.HTTPForbidden(
            description="without a key this is readable only from this machine (not "
            "through a proxy) while PRIVATE_REGISTRY is on"
        )


# -- logs ---------------------------------------------------------------------------


class JsonLines:
    """An append-only JSON-lines file shared by every worker.

    Each record is one ``write(2)`` on an ``O_APPEND`` descriptor, so lines
    from different processes never interleave. Opened on first use.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (errors are logged, never raised)."""
        line = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
        try:
            if self._fd < 0:
                with self._lock:
                    if self._fd < 0:
                        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                        self._fd = os.open(
                            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
                        )
            os.write(self._fd, line)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def close(self) -> None:
        """Close the file (reopened by the next write)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


# -- the middleware --------------------------------------------------------------------


class RequestMonitor:
    """Counts every request in the shared counters; access log; trace ids.

    Put it first in the middleware list so its latency covers the others.
    Requests are counted under ``"<METHOD> <route template>"``, named from the
    route table only, never from the request path: falcon's ``uri_template``,
    or for a sink or custom router a name it sets in ``req.context.route`` from
    the fixed set it declared (:meth:`declare_routes`). Anything else (no
    route, an undeclared name) counts under ``"*"``, and methods outside
    ``METHODS`` as ``OTHER``, so no client can fill the shared route table.
    Reads the live record once per request: METRICS off skips counting,
    LOGGING on writes an access-log line, DEBUG on adds ``X-Request-Id``
    (the client's, if it sent a sane one), ``X-R13-Worker`` (the pid that
    served it) and a debug log line.
    """

    def __init__(self, metrics: Metrics, store: ConfigStore, access_log: JsonLines) -> None:
        self.metrics = metrics
        self.store = store
        self.access_log = access_log
        self._ids: dict[tuple[str, str | None], int] = {}
        self._start = metrics.request_start
        self._end = metrics.request_end
        self._read = store.read
        self.pid = str(os.getpid())
        self.sink_routes: frozenset[str] = frozenset()

    def declare_routes(self, names: Iterable[str]) -> None:
        """Add the route names a sink may put in ``req.context.route``."""
        self.sink_routes = self.sink_routes | frozenset(names)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = req.context
        flags = self._read().feature_flags
        ctx.r13_flags = flags
        if flags & _METRICS:
            self._start()
        if flags & _DEBUG:
            given = req.get_header("X-Request-Id")
            trace = given if given and _TRACE_ID.fullmatch(given) else uuid.uuid4().hex
            ctx.trace_id = trace
            resp.set_header("X-Request-Id", trace)
            resp.set_header("X-R13-Worker", self.pid)
        ctx.r13_t0 = time.perf_counter_ns()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        ctx = req.context
        t0 = getattr(ctx, "r13_t0", None)
        if t0 is None:
            return
        latency = time.perf_counter_ns() - t0
        flags: int = ctx.r13_flags
        # Sinks and custom routers have no uri_template: they may name the route
        # in req.context.route (e.g. "/{package}/-/{tarball}"), if declared.
        route = getattr(ctx, "route", None)
        if route is not None and route not in self.sink_routes:
            route = None
        method = req.method if req.method in METHODS else "OTHER"
        key = (method, route or req.uri_template)
        rid = self._ids.get(key)
        if rid is None:
            rid = self._ids[key] = self.metrics.route_id(route_key(*key))
        status = resp.status_code
        try:
            body = resp.render_body()
        except Exception:  # the app's error path will report it
            body = None
        out = len(body) if body is not None else int(resp.content_length or 0)
        # The raw header: falcon's content_length property costs ~0.5 us.
        raw_len = req.env.get("CONTENT_LENGTH")
        size_in = int(raw_len) if raw_len and raw_len.isdigit() else 0
        if flags & _METRICS:
            self._end(rid, status, size_in, out, latency)
        if flags & (_LOGGING | _DEBUG):
            record = {
                "ts": round(time.time(), 6),
                "method": req.method,
                "path": redact_path(req.path),  # no token from a logout URL
                "route": key[1] or UNMATCHED,
                "status": status,
                "bytes_in": size_in,
                "bytes_out": out,
                "ms": round(latency / 1e6, 3),
                "ip": req.remote_addr,
                "trace_id": ctx.get("trace_id"),
                "pid": os.getpid(),
            }
            if flags & _LOGGING:
                self.access_log.write(record)
            if flags & _DEBUG:
                debug_log.debug("request %s", json.dumps(record))


# -- Prometheus --------------------------------------------------------------------------

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
        ):
            yield CounterMetricFamily(name, text, value=totals.event(event))
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
        alerts = GaugeMetricFamily(
            "r13_alert_active", "1 while the alert rule is raised, else 0.", labels=["rule"]
        )
        active = {a.get("rule") for a in self.view.alerts()["active"]}
        for rule in self.view.state().get("rules", []):
            alerts.add_metric([rule["rule"]], 1.0 if rule["rule"] in active else 0.0)
        yield alerts


# -- the bundle ---------------------------------------------------------------------------


class Monitoring:
    """Everything the app needs for monitoring, built from the settings.

    The sampler thread and the usage flusher start only when :meth:`start` is
    called (a real server does it in each worker; exactly one of them samples).
    Without ``usage`` storage nothing is counted per package.
    """

    def __init__(
        self,
        settings: Settings,
        store: ConfigStore,
        *,
        registry_stats: RegistryStats | None = None,
        root_pid: int | None = None,
        usage: UsageStorage | None = None,
        clock: Clock = time.time,
    ) -> None:
        data = Path(settings.data_dir)
        self.store = store
        self.settings = MonitorSettings.from_settings(settings)
        self.metrics = Metrics(data)
        self.view = MonitorView(data)
        self.access_log = JsonLines(data / "logs" / "access.log")
        self.middleware = RequestMonitor(self.metrics, store, self.access_log)
        self.sampler = Sampler(
            data,
            self.metrics,
            self.settings,
            config=store,
            registry_stats=registry_stats,
            root_pid=root_pid,
        )
        self.usage = (
            None
            if usage is None
            else UsageRecorder(usage, interval=settings.usage_flush_interval_ms / 1000, clock=clock)
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SharedCollector(self.metrics, self.view))
        _ensure_debug_handler()

    def start(self) -> None:
        """Start this worker's sampler thread (it samples only while it leads) and flusher."""
        self.sampler.start()
        if self.usage is not None:
            self.usage.start()

    def stop(self) -> None:
        """Stop the sampler thread; write the buffered usage counts."""
        self.sampler.stop()
        if self.usage is not None:
            self.usage.stop()

    def scrape(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)

    def count(self, event: Event, n: int = 1) -> None:
        """Count a registry or live-channel event in the shared counters (METRICS on)."""
        if self.store.enabled(Feature.METRICS):
            self.metrics.count(event, n)

    def downloaded(self, package: str) -> None:
        """A tarball of ``package`` was sent: the shared counter and today's count."""
        self.count(Event.DOWNLOADS)
        if self.usage is not None:
            self.usage.record("downloads", package)

    def package_changed(self, change: PackageChange) -> None:
        """The registry committed a publish or an unpublish (a registry listener)."""
        n = len(change.versions)
        if change.action == "publish":
            self.count(Event.PUBLISHES, n)
            kind = "publishes"
        elif change.action == "unpublish":
            self.count(Event.UNPUBLISHES, n)
            kind = "unpublishes"
        else:
            return
        if self.usage is not None:
            self.usage.record(kind, change.package, n)


def _ensure_debug_handler() -> None:
    # DEBUG's request lines go to stderr (gunicorn's error stream) at DEBUG level.
    if not debug_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [r13 %(process)d] %(message)s"))
        debug_log.addHandler(handler)
        debug_log.setLevel(logging.DEBUG)
        debug_log.propagate = False
