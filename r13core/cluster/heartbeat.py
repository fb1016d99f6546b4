"""Heartbeats: each node's row in ``r13_nodes``, written by its sampler's leader each tick.

A row holds the node's id, advertised URL, pid of the worker that samples, when it
started, its last heartbeat (the database's clock, so nodes' clocks need not
agree) and a summary of its latest sample (:data:`SAMPLE_FIGURES`).
:func:`cluster_view` lists every node with its age and ``alive``/``stale``
(older than R13_NODE_STALE_AFTER), plus the cluster's total of the figures that
add up. The heartbeat also prunes the events table (r13core/cluster/schema.py).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Final

from r13core.cluster.database import ClusterDB
from r13core.cluster.schema import EVENTS_KEEP_SECONDS

log = logging.getLogger("r13.cluster")

SAMPLE_FIGURES: Final = (
    "ts",
    "requests_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "error_rate_percent",
    "cpu_percent",
    "memory_rss_bytes",
    "publishes_per_s",
    "downloads_per_s",
    "ws_connections",
    "active_requests",
    "requests_total",
    "workers",
)
SUMMED: Final = (
    "requests_per_s",
    "cpu_percent",
    "memory_rss_bytes",
    "publishes_per_s",
    "downloads_per_s",
    "ws_connections",
    "active_requests",
    "requests_total",
    "workers",
)
"""Figures whose cluster total is the sum over alive nodes."""
PRUNE_EVERY: Final = 60
"""Beats between two prunes of old events (and expired cluster rate-limit rows)."""


def summarize(sample: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The figures of ``sample`` a heartbeat carries."""
    if sample is None:
        return None
    return {k: sample.get(k) for k in SAMPLE_FIGURES}


class Heartbeat:
    """Writes this node's row (call :meth:`beat` each sampler tick)."""

    def __init__(self, db: ClusterDB, node_id: str, url: str) -> None:
        self.db = db
        self.node_id = node_id
        self.url = url
        self.started = time.time()
        self._beats = 0
        self._last: dict[str, Any] | None = None

    def beat(self, sample: Mapping[str, Any] | None) -> None:
        """Upsert the row with the latest sample (the previous one kept while METRICS is off)."""
        if sample is not None:
            self._last = summarize(sample)
            started = sample.get("server_started")  # the gunicorn master's start
            if isinstance(started, int | float) and not isinstance(started, bool):
                self.started = float(started)
        text = json.dumps(self._last) if self._last is not None else None
        with self.db.use() as conn:
            conn.execute(
                "INSERT INTO r13_nodes (node_id, url, pid, started, heartbeat, sample) "
                "VALUES (%s, %s, %s, to_timestamp(%s), now(), %s) "
                "ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, pid = excluded.pid, "
                "started = excluded.started, heartbeat = now(), sample = excluded.sample",
                (self.node_id, self.url, os.getpid(), self.started, text),
            )
            if self._beats % PRUNE_EVERY == 0:
                conn.execute(
                    "DELETE FROM r13_events WHERE created < now() - make_interval(secs => %s)",
                    (EVENTS_KEEP_SECONDS,),
                )
                conn.execute(
                    "DELETE FROM r13_rate_limits WHERE expires < "
                    "(extract(epoch FROM clock_timestamp()) * 1e9)::bigint"
                )
        self._beats += 1


def cluster_view(db: ClusterDB, this_node: str, stale_after_ms: int) -> dict[str, Any]:
    """``GET /_api/cluster``: every node with its last heartbeat, alive or stale, and totals."""
    with db.use() as conn:
        rows = conn.execute(
            "SELECT node_id, url, pid, extract(epoch FROM started), "
            "extract(epoch FROM heartbeat), "
            "extract(epoch FROM clock_timestamp() - heartbeat) * 1000, sample "
            "FROM r13_nodes ORDER BY node_id"
        ).fetchall()
    nodes = []
    total: dict[str, float] = dict.fromkeys(SUMMED, 0)
    for node, url, pid, started, beat, age_ms, sample in rows:
        alive = float(age_ms) <= stale_after_ms
        figures = json.loads(sample) if sample else None
        nodes.append(
            {
                "node": node,
                "url": url,
                "pid": pid,
                "self": node == this_node,
                "started": round(float(started), 3),
                "heartbeat": round(float(beat), 3),
                "age_ms": round(max(0.0, float(age_ms)), 1),
                "state": "alive" if alive else "stale",
                "sample": figures,
            }
        )
        if alive and figures:
            for key in SUMMED:
                value = figures.get(key)
                if isinstance(value, int | float):
                    total[key] += value
    alive_count = sum(1 for n in nodes if n["state"] == "alive")
    return {
        "clustered": True,
        "node": this_node,
        "stale_after_ms": stale_after_ms,
        "nodes": nodes,
        "total": {"nodes": len(nodes), "alive": alive_count, **total},
    }
