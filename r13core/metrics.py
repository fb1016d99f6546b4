"""Request metrics shared by every worker of a data dir.

:class:`Metrics` wraps ``csrc/metrics.c``: counters in one shared-memory
segment that every process opening the same data dir updates with atomic
adds, so the totals are exact across gunicorn workers and survive a worker's
SIGKILL. One call per request on the hot path (:meth:`Metrics.request_end`,
plus :meth:`Metrics.request_start` for the in-flight gauge).

Routes are named ``"<METHOD> <template>"`` (``"GET /-/ping"``); the segment
hands out their ids so every worker agrees. Id 0 (``"*"``) counts requests
that match no route, or that arrive when the route table is full.

:class:`PyMetrics` is the pure-Python twin (one process only): the oracle in
tests and the baseline in benches.
"""

from __future__ import annotations

import bisect
import enum
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Final

from r13core._ffi import NativeHandle, check, check_attach, ffi, lib

ROUTES: Final[int] = lib.R13_METRICS_ROUTES
BUCKETS: Final[int] = lib.R13_METRICS_BUCKETS
UNMATCHED: Final = "*"
# Methods counted by name; anything else is counted as OTHER so a client
# cannot fill the route table with made-up methods.
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class Event(enum.IntEnum):
    """Named event counters (indexes into the C core's event words)."""

    PUBLISHES = 0
    DOWNLOADS = 1
    CACHE_HITS = 2
    CACHE_MISSES = 3
    WS_MESSAGES_IN = 4
    WS_MESSAGES_OUT = 5
    WS_HEARTBEATS = 6
    WS_HEARTBEAT_NS = 7  # sum of heartbeat round trips, ns
    UNPUBLISHES = 8  # versions unpublished
    UPLINK_REQUESTS = 9  # requests that reached the upstream and got an answer
    UPLINK_ERRORS = 10  # upstream failures (timeouts, resets, 5xx, bad integrity, breaker open)
    UPLINK_LATENCY_NS = 11  # sum of the answered requests' latency, ns
    UPLINK_STALE = 12  # cached copies served because the upstream failed


class Gauge(enum.IntEnum):
    """Gauges kept per process and summed over live processes."""

    ACTIVE_REQUESTS = 0
    WS_CONNECTIONS = 1


def _bounds_ns() -> tuple[int, ...]:
    out = ffi.new("uint64_t[]", BUCKETS)
    check(lib.r13_metrics_bounds(out, BUCKETS), "reading the latency buckets")
    return tuple(int(b) for b in out)


_BOUNDS_NS: Final = _bounds_ns()
#: Upper bounds (inclusive) of the latency buckets in seconds; the last is +Inf.
LATENCY_BOUNDS: Final[tuple[float, ...]] = tuple(
    float("inf") if b == 2**64 - 1 else b / 1e9 for b in _BOUNDS_NS
)


@dataclass(frozen=True)
class Totals:
    """Every counter but the per-route detail, at one instant."""

    started: float  # unix time the counters started from zero
    requests: int
    by_class: tuple[int, int, int, int, int, int]  # index 1..5 = 1xx..5xx
    bytes_in: int
    bytes_out: int
    latency_sum_ns: int
    latency: tuple[int, ...]  # per bucket, not cumulative
    events: tuple[int, ...]
    gauges: tuple[int, ...]
    processes: int
    routes: int

    def event(self, e: Event) -> int:
        """The value of event counter ``e``."""
        return self.events[e]

    def gauge(self, g: Gauge) -> int:
        """The value of gauge ``g`` summed over live processes."""
        return self.gauges[g]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (kept in the sampler's state file)."""
        return {
            "started": self.started,
            "requests": self.requests,
            "by_class": list(self.by_class),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "latency_sum_ns": self.latency_sum_ns,
            "latency": list(self.latency),
            "events": list(self.events),
            "gauges": list(self.gauges),
            "processes": self.processes,
            "routes": self.routes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Totals:
        """Inverse of :meth:`as_dict`."""
        c = d["by_class"]
        return cls(
            started=float(d["started"]),
            requests=int(d["requests"]),
            by_class=(c[0], c[1], c[2], c[3], c[4], c[5]),
            bytes_in=int(d["bytes_in"]),
            bytes_out=int(d["bytes_out"]),
            latency_sum_ns=int(d["latency_sum_ns"]),
            latency=tuple(d["latency"]),
            events=tuple(d["events"]),
            gauges=tuple(d["gauges"]),
            processes=int(d["processes"]),
            routes=int(d["routes"]),
        )


def route_key(method: str, template: str | None) -> str:
    """The route name counters are kept under (``"GET /-/ping"``, or ``"*"``)."""
    if template is None:
        return UNMATCHED
    return f"{method if method in METHODS else 'OTHER'} {template}"


class Metrics(NativeHandle):
    """The shared metrics of ``data_dir``; open it after fork. Thread-safe."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self._m = ffi.new("r13_metrics *")
        check_attach(
            lib.r13_metrics_open(self._m, os.fsencode(data_dir)),
            data_dir,
            "metrics",
            "the shared request metrics",
        )
        self._open = True
        self._ids: dict[str, int] = {UNMATCHED: 0}
        self._names: dict[int, str] = {0: UNMATCHED}
        self._lock = threading.Lock()
        self._end = lib.r13_metrics_request_end
        self._start = lib.r13_metrics_request_start

    # -- routes ---------------------------------------------------------------

    def route_id(self, name: str) -> int:
        """The id of route ``name`` (same in every process); 0 if the table is full."""
        rid = self._ids.get(name)
        if rid is not None:
            return rid
        raw = name.encode()
        out = ffi.new("uint32_t *")
        rc = lib.r13_metrics_route(self._m, raw, len(raw), out)
        if rc == lib.R13_EFULL:
            rid = 0
        else:
            check(rc, f"registering route {name!r}")
            rid = int(out[0])
        with self._lock:
            self._ids[name] = rid
        return rid

    def route_name(self, rid: int) -> str:
        """The name of route id ``rid`` (as registered by any process)."""
        name = self._names.get(rid)
        if name is None:
            buf = ffi.new("char[]", lib.R13_METRICS_ROUTE_NAME)
            check(lib.r13_metrics_route_name(self._m, rid, buf, len(buf)), f"route {rid}")
            name = ffi.string(buf).decode()
            with self._lock:
                self._names[rid] = name
        return name

    # -- the hot path -----------------------------------------------------------

    def request_start(self) -> None:
        """A request begins (raises the in-flight gauge)."""
        self._start(self._m)

    def request_end(
        self, route: int, status: int, bytes_in: int, bytes_out: int, latency_ns: int
    ) -> None:
        """A request (started with :meth:`request_start`) ended: count it."""
        if not 100 <= status <= 599:
            status = 599
        rc = self._end(self._m, route, status, bytes_in, bytes_out, latency_ns)
        if rc:
            check(rc, "counting a request")

    def count(self, event: Event, n: int = 1) -> None:
        """Add ``n`` to an event counter."""
        check(lib.r13_metrics_count(self._m, event, n), f"counting {event.name}")

    def gauge_add(self, gauge: Gauge, delta: int) -> None:
        """Add ``delta`` (may be negative) to this process's share of a gauge."""
        check(lib.r13_metrics_gauge_add(self._m, gauge, delta), f"gauge {gauge.name}")

    # -- reading ------------------------------------------------------------------

    def totals(self) -> Totals:
        """Copy every counter out (one C call)."""
        t = ffi.new("r13_metrics_totals *")
        check(lib.r13_metrics_totals_read(self._m, t), "reading metrics")
        c = t.by_class
        return Totals(
            started=t.started_ns / 1e9,
            requests=t.requests,
            by_class=(c[0], c[1], c[2], c[3], c[4], c[5]),
            bytes_in=t.bytes_in,
            bytes_out=t.bytes_out,
            latency_sum_ns=t.latency_sum_ns,
            latency=tuple(t.latency),
            events=tuple(t.events),
            gauges=tuple(t.gauges),
            processes=t.slots_used,
            routes=t.routes,
        )

    def requests_by_route(self) -> list[tuple[str, int, int]]:
        """Every non-zero counter as (route name, status, count)."""
        cap = 256
        n = ffi.new("size_t *")
        while True:
            cells = ffi.new("r13_metrics_cell[]", cap)
            rc = lib.r13_metrics_cells(self._m, cells, cap, n)
            if rc == lib.R13_EBUFSZ:
                cap = int(n[0]) + 64
                continue
            check(rc, "reading request counters")
            break
        return [
            (self.route_name(cells[i].route), cells[i].status, cells[i].count)
            for i in range(int(n[0]))
        ]

    def route_latency(self, rid: int) -> tuple[tuple[int, ...], int]:
        """(per-bucket counts, sum in ns) of route id ``rid``."""
        buckets = ffi.new("uint64_t[]", BUCKETS)
        total = ffi.new("uint64_t *")
        check(lib.r13_metrics_route_latency(self._m, rid, buckets, BUCKETS, total), "latency")
        return tuple(buckets), int(total[0])

    def route_ids(self) -> range:
        """Every route id handed out so far."""
        return range(self.totals().routes)

    def reap(self) -> int:
        """Free the gauge slots of dead processes; how many were freed."""
        out = ffi.new("uint32_t *")
        check(lib.r13_metrics_reap(self._m, out), "reaping metrics slots")
        return int(out[0])

    # -- life -----------------------------------------------------------------------

    def _release(self) -> None:
        lib.r13_metrics_close(self._m)


def bucket_of(latency_ns: int) -> int:
    """Index of the latency bucket ``latency_ns`` falls in (as the C core picks it)."""
    return bisect.bisect_left(_BOUNDS_NS, latency_ns)


@dataclass
class PyMetrics:
    """Pure-Python twin of :class:`Metrics` for one process (no sharing)."""

    started: float = 0.0
    _requests: dict[tuple[int, int], int] = field(default_factory=dict)
    _route_latency: dict[int, list[int]] = field(default_factory=dict)
    _route_sum: dict[int, int] = field(default_factory=dict)
    _ids: dict[str, int] = field(default_factory=lambda: {UNMATCHED: 0})
    _class: list[int] = field(default_factory=lambda: [0] * 6)
    _latency: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    _events: list[int] = field(default_factory=lambda: [0] * 16)
    _gauges: list[int] = field(default_factory=lambda: [0] * 4)
    _bytes: list[int] = field(default_factory=lambda: [0, 0, 0])  # in, out, latency sum
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def route_id(self, name: str) -> int:
        with self._lock:
            rid = self._ids.get(name)
            if rid is None:
                rid = len(self._ids) if len(self._ids) < ROUTES else 0
                if rid:
                    self._ids[name] = rid
            return rid

    def request_start(self) -> None:
        with self._lock:
            self._gauges[Gauge.ACTIVE_REQUESTS] += 1

    def request_end(
        self, route: int, status: int, bytes_in: int, bytes_out: int, latency_ns: int
    ) -> None:
        if not 100 <= status <= 599:
            status = 599
        b = bucket_of(latency_ns)
        with self._lock:
            key = (route, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._route_latency.setdefault(route, [0] * BUCKETS)[b] += 1
            self._route_sum[route] = self._route_sum.get(route, 0) + latency_ns
            self._class[status // 100] += 1
            self._latency[b] += 1
            self._bytes[0] += bytes_in
            self._bytes[1] += bytes_out
            self._bytes[2] += latency_ns
            self._gauges[Gauge.ACTIVE_REQUESTS] -= 1

    def count(self, event: Event, n: int = 1) -> None:
        with self._lock:
            self._events[event] += n

    def gauge_add(self, gauge: Gauge, delta: int) -> None:
        with self._lock:
            self._gauges[gauge] += delta

    def totals(self) -> Totals:
        with self._lock:
            c = self._class
            return Totals(
                started=self.started,
                requests=sum(c),
                by_class=(c[0], c[1], c[2], c[3], c[4], c[5]),
                bytes_in=self._bytes[0],
                bytes_out=self._bytes[1],
                latency_sum_ns=self._bytes[2],
                latency=tuple(self._latency),
                events=tuple(self._events),
                gauges=tuple(self._gauges),
                processes=1,
                routes=len(self._ids),
            )
