"""Package analytics: the per-worker buffer of counts and the read side, over real SQLite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from r13core.errors import InvalidValue
from r13core.storage.sqlite import SQLiteStorage
from r13core.storage.usage import Delta
from r13core.usage import MAX_DAYS, Analytics, UsageRecorder


class Clock:
    """A clock the test moves (``now`` is a datetime; calls give epoch seconds)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def storage(tmp_path: Path) -> SQLiteStorage:
    return SQLiteStorage(tmp_path / "registry.sqlite3")


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 28, 23, 59, 59, tzinfo=UTC))


def test_counts_wait_in_memory_until_a_flush(storage: SQLiteStorage, clock: Clock) -> None:
    rec = UsageRecorder(storage, clock=clock)
    for _ in range(5):
        rec.record("downloads", "a")
    rec.record("publishes", "a")
    assert rec.pending() == 6
    assert storage.usage_days("downloads", "2026-11-01", "2026-12-31") == []
    assert rec.flush() == 6
    assert rec.pending() == 0
    assert storage.usage_days("downloads", "2026-11-01", "2026-12-31") == [("2026-11-28", 5)]
    assert rec.flush() == 0


def test_a_count_lands_on_the_utc_day_it_happened(storage: SQLiteStorage, clock: Clock) -> None:
    rec = UsageRecorder(storage, clock=clock)
    rec.record("downloads", "a")
    clock.now += timedelta(seconds=2)  # past midnight UTC, before the flush
    rec.record("downloads", "a")
    rec.flush()
    got = storage.usage_days("downloads", "2026-11-01", "2026-12-31", package="a")
    assert got == [("2026-11-28", 1), ("2026-11-29", 1)]


class FailingOnce(SQLiteStorage):
    fail = True

    def add_usage(self, deltas: list[Delta]) -> None:
        if self.fail:
            self.fail = False
            raise OSError("disk full")
        super().add_usage(deltas)


def test_a_failed_flush_keeps_the_counts_for_the_next(tmp_path: Path, clock: Clock) -> None:
    storage = FailingOnce(tmp_path / "r.sqlite3")
    rec = UsageRecorder(storage, clock=clock)
    rec.record("downloads", "a", 3)
    with pytest.raises(OSError):
        rec.flush()
    rec.record("downloads", "a")
    assert rec.flush() == 4
    assert storage.usage_days("downloads", "2026-11-28", "2026-11-28") == [("2026-11-28", 4)]


def test_threads_counting_at_once_lose_nothing(storage: SQLiteStorage, clock: Clock) -> None:
    rec = UsageRecorder(storage, clock=clock)

    def count() -> None:
        for _ in range(1000):
            rec.record("downloads", "hot")

    threads = [threading.Thread(target=count) for _ in range(4)]
    for t in threads:
        t.start()
    flushed = 0
    while any(t.is_alive() for t in threads):
        flushed += rec.flush()  # flushes racing the counting
    for t in threads:
        t.join()
    flushed += rec.flush()
    assert flushed == 4000
    assert storage.usage_top("downloads", "2026-11-28", "2026-11-28", 1) == [("hot", 4000)]


def test_the_flusher_thread_writes_periodically(storage: SQLiteStorage, clock: Clock) -> None:
    rec = UsageRecorder(storage, interval=0.01, clock=clock)
    rec.start()
    try:
        rec.record("downloads", "a", 2)
        done = threading.Event()
        for _ in range(3000):
            if storage.usage_days("downloads", "2026-11-28", "2026-11-28"):
                done.set()
                break
            threading.Event().wait(0.01)
        assert done.is_set()
    finally:
        rec.stop()


def test_what_is_left_is_written_when_the_process_exits(tmp_path: Path) -> None:
    """A worker's last counts are not lost on a graceful exit (atexit), in a real process."""
    db = tmp_path / "registry.sqlite3"
    script = textwrap.dedent(
        f"""
        from r13core.storage.sqlite import SQLiteStorage
        from r13core.usage import UsageRecorder
        rec = UsageRecorder(SQLiteStorage({str(db)!r}), interval=3600)
        rec.start()
        for _ in range(7):
            rec.record("downloads", "leaving")
        raise SystemExit(0)  # as a gunicorn worker leaves
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    storage = SQLiteStorage(db)
    assert storage.usage_top("downloads", "2000-01-01", "2999-12-31", 5) == [("leaving", 7)]


def test_recorder_refuses_a_nonsense_interval(storage: SQLiteStorage) -> None:
    with pytest.raises(ValueError):
        UsageRecorder(storage, interval=0)


# -- reading --------------------------------------------------------------------------------


def test_a_series_has_every_day_of_the_range(storage: SQLiteStorage, clock: Clock) -> None:
    storage.add_usage([("2026-11-26", "a", "downloads", 4), ("2026-11-28", "a", "downloads", 1),
                       ("2026-11-28", "b", "downloads", 10)])  # fmt: skip
    an = Analytics(storage, clock=clock)
    one = an.series("downloads", package="a", first="2026-11-25", last="2026-11-28")
    assert one == {
        "kind": "downloads",
        "package": "a",
        "from": "2026-11-25",
        "to": "2026-11-28",
        "total": 5,
        "days": [
            {"day": "2026-11-25", "count": 0},
            {"day": "2026-11-26", "count": 4},
            {"day": "2026-11-27", "count": 0},
            {"day": "2026-11-28", "count": 1},
        ],
    }
    every = an.series("downloads", first="2026-11-28", last="2026-11-28")
    assert (every["package"], every["total"]) == (None, 11)


def test_the_default_range_is_the_last_30_days(storage: SQLiteStorage, clock: Clock) -> None:
    series = Analytics(storage, clock=clock).series("publishes")
    assert (series["from"], series["to"], len(series["days"])) == ("2026-10-30", "2026-11-28", 30)
    clock.now += timedelta(days=1)
    assert Analytics(storage, clock=clock).series("publishes")["to"] == "2026-11-29"


def test_top_of_a_range(storage: SQLiteStorage, clock: Clock) -> None:
    storage.add_usage([("2026-11-20", "a", "downloads", 1), ("2026-11-21", "b", "downloads", 2),
                       ("2026-10-01", "old", "downloads", 99)])  # fmt: skip
    top = Analytics(storage, clock=clock).top(limit=5)
    assert top["packages"] == [{"package": "b", "count": 2}, {"package": "a", "count": 1}]
    assert (top["kind"], top["from"], top["to"]) == ("downloads", "2026-10-30", "2026-11-28")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first": "2026-13-01"}, "from must be a date"),
        ({"last": "yesterday"}, "to must be a date"),
        ({"first": "2026-11-28\n"}, "from must be a date"),
        ({"first": "+2026-11-28"}, "from must be a date"),
        ({"first": "2026-11-29", "last": "2026-11-28"}, "is after to"),
        ({"first": "2000-01-01", "last": "2026-11-28"}, f"at most {MAX_DAYS} days"),
    ],
)
def test_bad_ranges_say_what_is_wrong(
    storage: SQLiteStorage, clock: Clock, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        Analytics(storage, clock=clock).series("downloads", **kwargs)


def test_bad_kind_and_limit_are_refused(storage: SQLiteStorage, clock: Clock) -> None:
    an = Analytics(storage, clock=clock)
    with pytest.raises(InvalidValue, match="kind must be one of"):
        an.series("stars")
    with pytest.raises(InvalidValue, match="kind must be one of"):
        an.top("stars")
    for limit in (0, 1001):
        with pytest.raises(InvalidValue, match="limit"):
            an.top(limit=limit)
