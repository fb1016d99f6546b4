"""Package analytics: downloads, publishes and unpublishes per package and day.

Writing a database row per download would put a transaction (and, with
SQLite's ``synchronous=FULL``, an fsync) on the hot path of every tarball
GET. Instead each worker process counts in memory (:class:`UsageRecorder`,
a dict increment under a lock) and writes the sums in one transaction every
``R13_USAGE_FLUSH_INTERVAL`` ms and when it exits; bench/bench_usage.py
measures both ways. A worker killed with SIGKILL loses at most one flush
interval of counts; a graceful stop loses none.

:class:`Analytics` answers what the dashboard charts: one package's daily
series, the totals per day, the top packages of a range, with every day of
the range present (zero-filled) so a chart needs no gap logic.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from r13core.errors import InvalidValue
from r13core.storage.usage import KINDS as KINDS  # for the web layer
from r13core.storage.usage import UsageStorage as UsageStorage  # for the web layer

log = logging.getLogger("r13.usage")

MAX_DAYS: Final = 3660  # about ten years in one answer
MAX_TOP: Final = 1000
DEFAULT_DAYS: Final = 30

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``; tests give their own)."""


def utc_day(t: float) -> date:
    """The UTC date of epoch time ``t`` (the day counts are kept in UTC)."""
    return datetime.fromtimestamp(t, UTC).date()


class UsageRecorder:
    """This process's counts not yet written, flushed in batches.

    :meth:`record` is the hot path: one dict update under an uncontended lock.
    :meth:`start` runs a daemon thread that flushes every ``interval`` seconds
    and registers a flush at interpreter exit (gunicorn workers exit through
    ``sys.exit``, so a graceful stop writes everything).
    """

    def __init__(
        self, storage: UsageStorage, *, interval: float = 5.0, clock: Clock = time.time
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.storage = storage
        self.interval = interval
        self.clock = clock
        # The current day's name, valid from _day_start until _day_end (epoch seconds):
        # formatting a date per download would cost more than the rest of record().
        self._day = ""
        self._day_start = self._day_end = 0.0
        self._pending: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _today(self, t: float) -> str:
        if not self._day_start <= t < self._day_end:
            day = utc_day(t)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            self._day, self._day_start, self._day_end = day.isoformat(), start, start + 86400
        return self._day

    def record(self, kind: str, package: str, n: int = 1) -> None:
        """Count ``n`` events of ``kind`` for ``package`` today (UTC)."""
        with self._lock:
            self._pending[(self._today(self.clock()), package, kind)] += n

    def pending(self) -> int:
        """How many events wait for the next flush."""
        with self._lock:
            return sum(self._pending.values())

    def flush(self) -> int:
        """Write what is pending in one transaction; how many events went.

        If the write fails the counts are put back, to be written next time.
        """
        with self._flush_lock:  # one flush at a time keeps a failed batch in order
            with self._lock:
                batch, self._pending = self._pending, Counter()
            if not batch:
                return 0
            deltas = [(day, pkg, kind, n) for (day, pkg, kind), n in sorted(batch.items())]
            try:
                self.storage.add_usage(deltas)
            except Exception:
                with self._lock:
                    self._pending.update(batch)
                raise
            return sum(batch.values())

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("writing the usage counts failed; kept for the next flush")

    def start(self) -> None:
        """Flush every ``interval`` seconds in a daemon thread, and at exit."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="r13-usage", daemon=True)
            self._thread.start()
            atexit.register(self.stop)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            atexit.unregister(self.stop)
        self._flush_quietly()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._flush_quietly()


# -- reading ------------------------------------------------------------------------------


def parse_day(value: str, field: str) -> date:
    """A ``YYYY-MM-DD`` date; InvalidValue naming ``field`` otherwise."""
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValue(f"{field} must be a date YYYY-MM-DD, not {value!r}") from None


@dataclass(frozen=True)
class DayRange:
    """An inclusive range of UTC days."""

    first: date
    last: date

    @property
    def days(self) -> list[str]:
        """Every day of the range, in order, as ``YYYY-MM-DD``."""
        n = (self.last - self.first).days + 1
        return [(self.first + timedelta(days=i)).isoformat() for i in range(n)]


class Analytics:
    """The read side of the usage counts, for the admin API and the dashboard."""

    def __init__(self, storage: UsageStorage, *, clock: Clock = time.time) -> None:
        self.storage = storage
        self.clock = clock

    def day_range(self, first: str | None, last: str | None) -> DayRange:
        """``first..last`` from optional ``YYYY-MM-DD`` strings.

        ``last`` defaults to today (UTC), ``first`` to 29 days before ``last``
        (30 days). InvalidValue for a malformed date, ``first`` after ``last``,
        or a range longer than :data:`MAX_DAYS`.
        """
        end = parse_day(last, "to") if last else utc_day(self.clock())
        start = parse_day(first, "from") if first else end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise InvalidValue(f"from ({start}) is after to ({end})")
        if (end - start).days + 1 > MAX_DAYS:
            raise InvalidValue(f"a range covers at most {MAX_DAYS} days")
        return DayRange(start, end)

    @staticmethod
    def check_kind(kind: str) -> str:
        """``kind`` if it is one of downloads, publishes, unpublishes; else InvalidValue."""
        if kind not in KINDS:
            raise InvalidValue(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        return kind

    def series(
        self,
        kind: str,
        *,
        package: str | None = None,
        first: str | None = None,
        last: str | None = None,
    ) -> dict[str, Any]:
        """Daily counts of ``kind`` for ``package`` (or all packages), every day present."""
        self.check_kind(kind)
        span = self.day_range(first, last)
        counts = dict(
            self.storage.usage_days(
                kind, span.first.isoformat(), span.last.isoformat(), package=package
            )
        )
        days = [{"day": d, "count": counts.get(d, 0)} for d in span.days]
        return {
            "kind": kind,
            "package": package,
            "from": span.first.isoformat(),
            "to": span.last.isoformat(),
            "total": sum(counts.values()),
            "days": days,
        }

    def top(
        self,
        kind: str = "downloads",
        *,
        first: str | None = None,
        last: str | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        """The ``limit`` packages with the most ``kind`` over the range, highest first."""
        self.check_kind(kind)
        if not 1 <= limit <= MAX_TOP:
            raise InvalidValue(f"limit must be 1..{MAX_TOP}")
        span = self.day_range(first, last)
        rows = self.storage.usage_top(kind, span.first.isoformat(), span.last.isoformat(), limit)
        return {
            "kind": kind,
            "from": span.first.isoformat(),
            "to": span.last.isoformat(),
            "packages": [{"package": p, "count": n} for p, n in rows],
        }
