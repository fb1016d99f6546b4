"""Cluster-wide rate limits (R13_RATE_LIMIT_SCOPE=cluster): GCRA in one SQL statement.

By default each node limits with its own shared-memory table (r13core/ratelimit.py),
like nginx's ``limit_req`` per instance: behind a balancer spreading a client over
N nodes, the client gets up to N times the limit. With ``cluster`` scope every
check is one statement against ``r13_rate_limits`` (an upsert that decides and
records atomically on the key's row, with the database's clock), so the limit holds
across nodes — at the cost of a round trip to the database per check
(bench/cluster_ratelimit.py measures it; bench/RESULTS.md has the figure).

The algorithm is the C limiter's (GCRA): each key has a theoretical arrival time
``tat``; a request of ``cost`` moves it by ``cost * window / capacity`` and is
admitted while ``tat - now`` stays within the window. Refusals change nothing.
Rows whose ``tat`` is past are full buckets and are deleted by the heartbeat.
"""

from __future__ import annotations

from typing import Final

from r13core.cluster.database import ClusterDB
from r13core.errors import InvalidValue
from r13core.ratelimit import (
    MAX_KEY_BYTES,
    MAX_WINDOW_MS,
    PACK_SECOND,
    Decision,
    LimiterStats,
    pack,
)

_CHECK: Final = """
WITH c AS (SELECT (extract(epoch FROM clock_timestamp()) * 1e9)::bigint AS now)
INSERT INTO r13_rate_limits AS r (key, tat, expires, checked, allowed)
SELECT %(key)s::text, c.now + %(inc)s::bigint, c.now + %(inc)s::bigint, c.now, true FROM c
ON CONFLICT (key) DO UPDATE SET
    allowed = greatest(r.tat, excluded.checked) + %(inc)s::bigint - excluded.checked
              <= %(window)s::bigint,
    tat = CASE WHEN greatest(r.tat, excluded.checked) + %(inc)s::bigint - excluded.checked
                    <= %(window)s::bigint
               THEN greatest(r.tat, excluded.checked) + %(inc)s::bigint ELSE r.tat END,
    expires = CASE WHEN greatest(r.tat, excluded.checked) + %(inc)s::bigint - excluded.checked
                        <= %(window)s::bigint
                   THEN greatest(r.tat, excluded.checked) + %(inc)s::bigint ELSE r.tat END,
    checked = excluded.checked
RETURNING allowed, tat, checked
"""


def _text_key(key: str | bytes) -> str:
    """The key as the table stores it; InvalidValue unless it is 1..MAX_KEY_BYTES bytes."""
    text = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
    if not text or len(text.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
        raise InvalidValue(f"a rate-limit key is 1..{MAX_KEY_BYTES} bytes")
    return text


class ClusterRateLimiter:
    """The :class:`r13core.ratelimit.RateLimiter` interface over the cluster's database."""

    def __init__(self, db: ClusterDB, slots: int) -> None:
        self.db = db
        self.slots = slots

    def check(
        self,
        key: str | bytes,
        capacity: int,
        window_ms: int,
        cost: int = 1,
        now_ns: int | None = None,
    ) -> Decision:
        """Count one request of ``cost`` for ``key`` (``now_ns`` is ignored: the database's
        clock decides, so every node counts on the same one)."""
        text = _text_key(key)
        if capacity < 1 or not 1 <= cost <= capacity or not 1 <= window_ms <= MAX_WINDOW_MS:
            raise InvalidValue("rate limit check: bad capacity, cost or window")
        window = window_ms * 1_000_000
        interval = window // capacity
        params = {"key": text, "inc": interval * cost, "window": window}
        with self.db.use() as conn:
            row = conn.execute(_CHECK, params).fetchone()
        assert row is not None
        allowed, tat, now = bool(row[0]), int(row[1]), int(row[2])
        ahead = max(0, tat - now)
        remaining = max(0, (window - ahead) // interval) if interval else capacity
        retry = 0 if allowed else max(1, tat + interval * cost - window - now)
        return Decision(allowed, int(remaining), ahead, retry)

    def limit(self, capacity: int, window_ms: int, cost: int = 1) -> ClusterLimit:
        """One limit for many checks, as :meth:`r13core.ratelimit.RateLimiter.limit`."""
        if capacity < 1 or not 1 <= cost <= capacity or not 1 <= window_ms <= MAX_WINDOW_MS:
            raise InvalidValue("rate limit: bad capacity, cost or window")
        return ClusterLimit(self, capacity, window_ms, cost)

    def reset(self, key: str | bytes) -> None:
        """Forget ``key`` (its bucket is full again)."""
        text = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
        with self.db.use() as conn:
            conn.execute("DELETE FROM r13_rate_limits WHERE key = %s", (text,))

    def stats(self, now_ns: int | None = None) -> LimiterStats:
        """Rows held, and rows whose bucket is not full now."""
        with self.db.use() as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE tat > "
                "(extract(epoch FROM clock_timestamp()) * 1e9)::bigint) FROM r13_rate_limits"
            ).fetchone()
        assert row is not None
        return LimiterStats(slots=self.slots, used=int(row[0]), busy=int(row[1]))

    def close(self) -> None:
        """Nothing of its own to release (the connection belongs to the process)."""


class ClusterLimit:
    """:class:`r13core.ratelimit.Limit`'s interface over the cluster's database (one
    statement per limit checked; ``now_ns`` ignored: the database's clock decides)."""

    __slots__ = ("capacity", "cost", "limiter", "window_ms")

    def __init__(
        self, limiter: ClusterRateLimiter, capacity: int, window_ms: int, cost: int
    ) -> None:
        self.limiter = limiter
        self.capacity, self.window_ms, self.cost = capacity, window_ms, cost

    def check(self, key: str | bytes, now_ns: int | None = None) -> Decision:
        """The decision for ``key`` under this limit."""
        return self.limiter.check(key, self.capacity, self.window_ms, self.cost)

    def take(self, key: str | bytes, now_ns: int = 0) -> int:
        """:meth:`check`, packed (r13core/ratelimit.py ``pack``)."""
        return pack(self.check(key))

    def take_with(
        self, key: str | bytes, then: ClusterLimit, then_key: str | bytes, now_ns: int = 0
    ) -> int:
        """This limit, then (when it admits) ``then``: the tighter decision, packed. A bad
        ``then_key`` is refused before this limit counts anything (as the C limiter does)."""
        _text_key(then_key)
        first = self.check(key)
        if not first.allowed:
            return pack(first)
        second = then.check(then_key)
        if not second.allowed or second.remaining < first.remaining:
            return pack(second) | PACK_SECOND
        return pack(first)
