"""The events log (r13core/events.py): append, rotate, tail — with real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from r13core.events import EVENTS_FILE, LOCK_FILE, EventLog, EventRecord

PROCESSES = 4
EACH = 150


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_append_numbers_events_and_writes_one_line_each(tmp_path: Path) -> None:
    log = EventLog(tmp_path, clock=lambda: 1000.5)
    first = log.append("alert", {"rule": "cpu"})
    second = log.append("package", {"name": "widget"})
    assert first == EventRecord(1, 1000.5, "alert", {"rule": "cpu"})
    assert second.seq == 2 and log.last_seq() == 2
    assert lines(tmp_path / EVENTS_FILE) == [first.as_dict(), second.as_dict()]
    assert os.stat(tmp_path / EVENTS_FILE).st_mode & 0o777 == 0o600


def test_a_refused_event_writes_nothing_and_uses_no_number(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append("alert", {})
    with pytest.raises(ValueError, match="topic"):
        log.append("Bad Topic", {})
    with pytest.raises(ValueError, match="at most"):
        log.append("alert", {"x": "y" * 70_000})
    with pytest.raises(TypeError):
        log.append("alert", {"x": object()})
    assert log.append("alert", {}).seq == 2
    assert len(lines(tmp_path / EVENTS_FILE)) == 2


def test_the_file_is_rotated_past_its_size_keeping_one_old_file(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_bytes=300)
    for i in range(30):
        log.append("alert", {"i": i})
    current, old = tmp_path / EVENTS_FILE, tmp_path / (EVENTS_FILE + ".1")
    assert old.exists() and current.stat().st_size <= 300 + 80
    kept = [e["seq"] for e in lines(old) + lines(current)]
    assert kept == list(range(kept[0], 31))  # the newest events, in order, no gap
    assert kept[0] > 1  # older files are dropped


def test_numbering_goes_on_when_the_counter_file_is_lost(tmp_path: Path) -> None:
    EventLog(tmp_path).append("alert", {})
    EventLog(tmp_path).append("alert", {})
    (tmp_path / LOCK_FILE).unlink()
    assert EventLog(tmp_path).append("alert", {}).seq == 3


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append("alert", {"n": 1})
    cursor = log.cursor()
    with open(tmp_path / EVENTS_FILE, "ab") as f:
        f.write(b'{"seq": 2, "ts": 1, "topic": "al')  # a writer died mid-line
    assert cursor.poll() == []  # an unfinished line is not read
    after = EventLog(tmp_path).append("alert", {"n": 3})
    assert [e.data for e in cursor.poll()] == [{"n": 3}]
    assert after.seq == 2  # numbers come from the counter, not from a broken line
    text = (tmp_path / EVENTS_FILE).read_text().splitlines()
    assert json.loads(text[-1])["data"] == {"n": 3}
    assert text[-2] == '{"seq": 2, "ts": 1, "topic": "al'  # ended, not merged into the next


def test_a_cursor_from_now_sees_only_what_comes_next(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append("alert", {"n": 1})
    cursor = log.cursor()
    assert cursor.poll() == [] and cursor.seq == 1
    log.append("alert", {"n": 2})
    log.append("alert", {"n": 3})
    assert [e.seq for e in cursor.poll(limit=1)] == [2]
    assert [e.seq for e in cursor.poll()] == [3]
    assert cursor.poll() == [] and cursor.missed == 0


def test_events_after_a_number_come_from_both_files(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_bytes=400)
    for i in range(12):
        log.append("alert", {"i": i})
    assert (tmp_path / (EVENTS_FILE + ".1")).exists()
    assert [e.seq for e in log.read_after(3)] == list(range(4, 13))
    assert [e.seq for e in log.read_after(3, limit=2)] == [4, 5]
    assert log.read_after(12) == [] and log.read_after(99) == []


def test_a_tail_follows_a_rotation_without_losing_an_event(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_bytes=500)
    log.append("alert", {"i": 0})
    cursor = log.cursor(after=0)
    seen = [e.seq for e in cursor.poll()]
    rotated = tmp_path / (EVENTS_FILE + ".1")
    i = 1
    while not rotated.exists():  # up to and past one rotation, never two
        log.append("alert", {"i": i})
        i += 1
    log.append("alert", {"i": i})
    seen += [e.seq for e in cursor.poll()]
    assert seen == list(range(1, i + 2)) and cursor.missed == 0


def test_a_tail_that_fell_two_files_behind_counts_what_it_missed(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_bytes=300)
    cursor = log.cursor()
    for i in range(40):
        log.append("alert", {"i": i})
    got = [e.seq for e in cursor.poll()]
    assert got == list(range(got[0], 41)) and got[0] > 1
    assert cursor.missed == got[0] - 1 and cursor.seq == 40


def test_wait_returns_as_soon_as_an_event_arrives(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    cursor = log.cursor()
    assert cursor.wait(0) == []
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # another worker appends while this one sleeps
        naps.append(seconds)
        if len(naps) == 3:
            log.append("alert", {"late": True})

    got = cursor.wait(600, interval=0.01, sleep=sleep)
    assert [e.data for e in got] == [{"late": True}] and naps == [0.01] * 3


def test_wait_in_another_thread_wakes_for_an_append(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    cursor = log.cursor()
    result: list[EventRecord] = []
    waiter = threading.Thread(target=lambda: result.extend(cursor.wait(120, interval=0.005)))
    waiter.start()
    log.append("security", {"ip": "192.0.2.1"})
    waiter.join(120)
    assert [e.topic for e in result] == ["security"]


def _append_many(data_dir: str, who: int, max_bytes: int, log: EventLog | None) -> None:
    # With a log made in the parent, the child must not share its lock description.
    log = log or EventLog(data_dir, max_bytes=max_bytes)
    for n in range(EACH):
        log.append("package", {"who": who, "n": n})


def _run_writers(tmp_path: Path, max_bytes: int, shared: EventLog | None = None) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_append_many, args=(str(tmp_path), who, max_bytes, shared))
        for who in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0


def test_concurrent_appends_from_processes_get_unique_numbers_in_order(tmp_path: Path) -> None:
    shared = EventLog(tmp_path)
    shared.append("package", {"who": -1, "n": 0})  # the parent's lock file is open
    _run_writers(tmp_path, 1 << 20, shared)
    events = lines(tmp_path / EVENTS_FILE)
    total = PROCESSES * EACH + 1
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    for who in range(PROCESSES):  # each writer's events in its own order
        mine = [e["data"]["n"] for e in events if e["data"]["who"] == who]
        assert mine == list(range(EACH))


def test_a_tail_during_concurrent_appends_and_rotations_sees_every_number_once(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path, max_bytes=4000)
    cursor = log.cursor(after=0)
    seen: list[int] = []
    done = threading.Event()

    def tail() -> None:
        while not done.is_set():
            seen.extend(e.seq for e in cursor.poll())
        seen.extend(e.seq for e in cursor.poll())

    reader = threading.Thread(target=tail)
    reader.start()
    try:
        _run_writers(tmp_path, 4000)
    finally:
        done.set()
        reader.join(120)
    total = PROCESSES * EACH
    assert (tmp_path / (EVENTS_FILE + ".1")).exists()  # it did rotate, several times
    assert seen == sorted(set(seen)) and seen[-1] == total
    assert len(seen) + cursor.missed == total


def test_only_the_events_module_opens_the_events_log() -> None:
    root = Path(__file__).resolve().parents[1]
    openers = sorted(
        path.relative_to(root).as_posix()
        for folder in ("r13core", "app")
        for path in (root / folder).rglob("*.py")
        if "events.jsonl" in path.read_text()
    )
    assert openers == ["r13core/events.py"]


def test_a_nudge_grows_the_log_but_is_no_event(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append("alert", {"n": 1})
    cursor = log.cursor(0)
    size = (tmp_path / EVENTS_FILE).stat().st_size
    log.nudge()
    assert (tmp_path / EVENTS_FILE).stat().st_size > size  # a watcher of the file wakes
    log.append("alert", {"n": 2})
    assert [(e.seq, e.data["n"]) for e in cursor.poll()] == [(1, 1), (2, 2)]
