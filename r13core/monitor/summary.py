"""The summary of a history: min/avg/max/percentiles of every figure, uptime, totals."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

SUMMARY_FIGURES: Final = (
    "cpu_percent",
    "memory_rss_bytes",
    "memory_percent",
    "system_cpu_percent",
    "system_memory_percent",
    "requests_per_s",
    "active_requests",
    "bytes_in_per_s",
    "bytes_out_per_s",
    "latency_avg_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "errors_per_s",
    "error_rate_percent",
    "publishes_per_s",
    "downloads_per_s",
    "unpublishes_per_s",
    "cache_hit_rate",
    "uplink_requests_per_s",
    "uplink_errors_per_s",
    "uplink_stale_per_s",
    "uplink_latency_ms",
    "ws_connections",
    "ws_messages_per_s",
    "ws_heartbeat_ms",
)
TOTAL_FIGURES: Final = (
    "requests_total",
    "errors_total",
    "client_errors_total",
    "bytes_in_total",
    "bytes_out_total",
    "publishes_total",
    "downloads_total",
    "unpublishes_total",
    "config_updates_total",
    "cache_hits_total",
    "cache_misses_total",
    "uplink_requests_total",
    "uplink_errors_total",
    "uplink_stale_total",
    "uplink_breaker",
    "uplink_breaker_failures",
    "packages",
    "versions",
)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    # Nearest rank on the sorted sample values.
    i = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


def summarize(history: Sequence[Mapping[str, Any]], now: float | None = None) -> dict[str, Any]:
    """The summary of ``history`` (see :meth:`MonitorView.summary`)."""
    now = time.time() if now is None else now
    figures: dict[str, Any] = {}
    for key in SUMMARY_FIGURES:
        values = sorted(float(s[key]) for s in history if s.get(key) is not None)
        if not values:
            figures[key] = None
            continue
        figures[key] = {
            "min": values[0],
            "avg": round(sum(values) / len(values), 3),
            "max": values[-1],
            "p50": _quantile(values, 0.50),
            "p95": _quantile(values, 0.95),
            "p99": _quantile(values, 0.99),
        }
    last = history[-1] if history else {}
    started = last.get("server_started")
    return {
        "samples": len(history),
        "from": history[0]["ts"] if history else None,
        "to": last.get("ts"),
        "uptime_s": round(now - started, 3) if started is not None else None,
        "server_started": started,
        "sampler_pid": last.get("sampler_pid"),
        "totals": {key: last.get(key) for key in TOTAL_FIGURES},
        "figures": figures,
    }
