"""``/_api/performance/*`` and ``/metrics``: what the monitor knows.

Every worker answers from the same shared state (the sampler's history
file and the shared counters), so it does not matter which one a request
lands on.
"""

from __future__ import annotations

import falcon

from app.monitoring import Monitoring, require_monitoring_access
from r13core.config import Feature

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class Performance:
    """``GET /_api/performance/{metrics,summary,alerts,history}``."""

    def __init__(self, monitoring: Monitoring) -> None:
        self.monitoring = monitoring

    def _guard(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_monitoring_access(req, self.monitoring.store)
        resp.cache_control = ["no-store"]

    def on_get_metrics(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The latest sample."""
        self._guard(req, resp)
        sample = self.monitoring.view.latest()
        if sample is None:
            raise falcon.HTTPServiceUnavailable(
                description="no sample yet: the sampler takes the first one after an interval",
                retry_after=max(1, self.monitoring.settings.interval_ms // 1000),
            )
        sample["metrics_enabled"] = self.monitoring.store.enabled(Feature.METRICS)
        resp.media = sample

    def on_get_summary(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Min/avg/max/percentiles over the history, uptime, totals."""
        self._guard(req, resp)
        body = self.monitoring.view.summary()
        body["metrics_enabled"] = self.monitoring.store.enabled(Feature.METRICS)
        body["interval_ms"] = self.monitoring.settings.interval_ms
        body["history_size"] = self.monitoring.settings.history
        resp.media = body

    def on_get_alerts(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Active alerts, the recent log and the rules."""
        self._guard(req, resp)
        resp.media = self.monitoring.view.alerts()

    def on_get_history(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every kept sample, oldest first (for the dashboard's charts)."""
        self._guard(req, resp)
        resp.media = {"samples": self.monitoring.view.history()}


class PrometheusMetrics:
    """``GET /metrics``: the Prometheus text format; 404 while METRICS is off."""

    def __init__(self, monitoring: Monitoring) -> None:
        self.monitoring = monitoring

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.monitoring.store.enabled(Feature.METRICS):
            raise falcon.HTTPNotFound(description="metrics are off (the METRICS flag)")
        require_monitoring_access(req, self.monitoring.store)
        resp.content_type = PROMETHEUS_TEXT
        resp.cache_control = ["no-store"]
        resp.data = self.monitoring.scrape()


def add_routes(app: falcon.App[falcon.Request, falcon.Response], monitoring: Monitoring) -> None:
    """Register the monitoring routes on ``app``."""
    perf = Performance(monitoring)
    for name in ("metrics", "summary", "alerts", "history"):
        app.add_route(f"/_api/performance/{name}", perf, suffix=name)
    app.add_route("/metrics", PrometheusMetrics(monitoring))
