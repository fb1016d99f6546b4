"""What the events log costs (r13core/events.py): one append, and a tail that polls.

Run: .venv/bin/python -m pytest bench/bench_events.py --benchmark-only

- ``append``: one event, as the sampler writes an alert (flock, counter read and
  write, one O_APPEND write, unlock). Appends are rare (alerts, admin actions), so
  this only has to stay far below a request's cost.
- ``poll, nothing new``: what an idle live-channel loop pays per poll (one stat);
  at one poll per 50 ms per worker this is the whole idle cost of waiting.
- ``poll, 100 new events``: reading and parsing a burst.
- ``read_after``: a client reconnecting with the last number it saw, from a full log
  (both files, about 2 MiB): the scan a fresh cursor makes once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r13core.events import EventLog

ALERT = {
    "event": "raised",
    "id": "cpu-1764300000000",
    "rule": "cpu",
    "metric": "cpu_percent",
    "threshold": 80.0,
    "started": 1764300000.0,
    "ended": None,
    "peak": 93.5,
    "value": 91.2,
    "state": "active",
}


def test_append_one_event(benchmark: Any, tmp_path: Path) -> None:
    benchmark.group = "events log"
    log = EventLog(tmp_path)
    benchmark(log.append, "alert", ALERT)


def test_poll_with_nothing_new(benchmark: Any, tmp_path: Path) -> None:
    benchmark.group = "events log"
    log = EventLog(tmp_path)
    log.append("alert", ALERT)
    cursor = log.cursor()
    assert benchmark(cursor.poll) == []


def test_poll_a_burst_of_100_events(benchmark: Any, tmp_path: Path) -> None:
    benchmark.group = "events log"
    log = EventLog(tmp_path)
    cursor = log.cursor()

    def burst() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for _ in range(100):
            log.append("alert", ALERT)
        return (), {}

    got = benchmark.pedantic(cursor.poll, setup=burst, rounds=50, iterations=1)
    assert len(got) == 100


def test_read_after_from_a_full_log(
    benchmark: Any, tmp_path: Path, loops: Any, rounds: Any
) -> None:
    benchmark.group = "events log"
    log = EventLog(tmp_path)
    n = loops(8000)  # about two files' worth of 250-byte lines
    for _ in range(n):
        log.append("alert", ALERT)
    last = log.last_seq()
    got = benchmark.pedantic(log.read_after, args=(last - 10,), rounds=rounds(20), iterations=1)
    assert [e.seq for e in got] == list(range(last - 9, last + 1))
