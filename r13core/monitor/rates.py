"""Counter deltas to rates: the request figures of one sampling interval.

The shared counters (r13core/metrics.py) only grow; the change between two
:class:`~r13core.metrics.Totals` over ``dt`` seconds gives requests/s,
bytes/s, error rate, publishes/s, the cache hit rate and the latency
percentiles of that interval (from the histogram difference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from r13core.metrics import LATENCY_BOUNDS, Event, Gauge, Totals


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0..1) in seconds of a histogram over LATENCY_BOUNDS.

    Interpolates linearly inside the bucket (as Prometheus'
    ``histogram_quantile`` does); the open last bucket answers its lower
    bound. None when the histogram is empty.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            lo = LATENCY_BOUNDS[i - 1] if i else 0.0
            hi = LATENCY_BOUNDS[i]
            if math.isinf(hi):
                return lo
            return lo + (hi - lo) * max(0.0, rank - seen) / n
        seen += n
    return LATENCY_BOUNDS[-2]  # pragma: no cover - rank <= total always stops above


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _rate(now: int, before: int, dt: float) -> float:
    return round((now - before) / dt, 3) if now > before and dt > 0 else 0.0


def _deltas(cur: Sequence[int], prev: Sequence[int]) -> list[int]:
    # Most ticks of a quiet server change few counters: compare whole lists first.
    if cur == prev:
        return [0] * len(cur)
    return [a - b if a > b else 0 for a, b in zip(cur, prev, strict=True)]


def compute_rates(prev: Totals, cur: Totals, dt: float) -> dict[str, Any]:
    """The request figures of one interval of ``dt`` seconds between two totals."""
    requests = max(0, cur.requests - prev.requests)
    errors = max(0, cur.by_class[5] - prev.by_class[5])
    lat = _deltas(cur.latency, prev.latency)
    lat_sum = max(0, cur.latency_sum_ns - prev.latency_sum_ns)
    ev = _deltas(cur.events, prev.events)
    p50, p95, p99 = percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99)
    hits, misses = ev[Event.CACHE_HITS], ev[Event.CACHE_MISSES]
    answered = ev[Event.UPLINK_REQUESTS]
    beats = ev[Event.WS_HEARTBEATS]
    return {
        "interval_s": round(dt, 4),
        "requests": requests,
        "requests_per_s": _rate(cur.requests, prev.requests, dt),
        "errors_per_s": _rate(cur.by_class[5], prev.by_class[5], dt),
        "client_errors_per_s": _rate(cur.by_class[4], prev.by_class[4], dt),
        "error_rate_percent": round(100.0 * errors / requests, 3) if requests else 0.0,
        "bytes_in_per_s": _rate(cur.bytes_in, prev.bytes_in, dt),
        "bytes_out_per_s": _rate(cur.bytes_out, prev.bytes_out, dt),
        "latency_avg_ms": round(lat_sum / requests / 1e6, 3) if requests else None,
        "latency_p50_ms": _ms(p50),
        "latency_p95_ms": _ms(p95),
        "latency_p99_ms": _ms(p99),
        "publishes_per_s": _rate(cur.events[Event.PUBLISHES], prev.events[Event.PUBLISHES], dt),
        "downloads_per_s": _rate(cur.events[Event.DOWNLOADS], prev.events[Event.DOWNLOADS], dt),
        "unpublishes_per_s": _rate(
            cur.events[Event.UNPUBLISHES], prev.events[Event.UNPUBLISHES], dt
        ),
        "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "uplink_requests_per_s": _rate(answered, 0, dt),
        "uplink_errors_per_s": _rate(ev[Event.UPLINK_ERRORS], 0, dt),
        "uplink_stale_per_s": _rate(ev[Event.UPLINK_STALE], 0, dt),
        "uplink_latency_ms": round(ev[Event.UPLINK_LATENCY_NS] / answered / 1e6, 3)
        if answered
        else None,
        "ws_messages_per_s": round((ev[Event.WS_MESSAGES_IN] + ev[Event.WS_MESSAGES_OUT]) / dt, 3)
        if dt > 0
        else 0.0,
        "ws_heartbeat_ms": round(ev[Event.WS_HEARTBEAT_NS] / beats / 1e6, 3) if beats else None,
    }


def totals_fields(cur: Totals) -> dict[str, Any]:
    """Cumulative figures carried in every sample (the summary's totals)."""
    return {
        "requests_total": cur.requests,
        "errors_total": cur.by_class[5],
        "client_errors_total": cur.by_class[4],
        "bytes_in_total": cur.bytes_in,
        "bytes_out_total": cur.bytes_out,
        "publishes_total": cur.events[Event.PUBLISHES],
        "downloads_total": cur.events[Event.DOWNLOADS],
        "unpublishes_total": cur.events[Event.UNPUBLISHES],
        "cache_hits_total": cur.events[Event.CACHE_HITS],
        "cache_misses_total": cur.events[Event.CACHE_MISSES],
        "uplink_requests_total": cur.events[Event.UPLINK_REQUESTS],
        "uplink_errors_total": cur.events[Event.UPLINK_ERRORS],
        "uplink_stale_total": cur.events[Event.UPLINK_STALE],
        "active_requests": max(0, cur.gauges[Gauge.ACTIVE_REQUESTS]),
        "ws_connections": max(0, cur.gauges[Gauge.WS_CONNECTIONS]),
        "workers": cur.processes,
        "counters_started": round(cur.started, 3),
    }
