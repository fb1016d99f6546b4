"""The events log: what happened, in order, for every worker of a data dir to see.

One file, ``<data>/run/events.jsonl``, one JSON object a line::

    {"seq": 41, "ts": 1764300000.123, "topic": "alert", "data": {...}}

``seq`` grows by one per event across every process of the data dir, so a
reader can say "the events after 41" to any worker and get the same answer.
Writers call :meth:`EventLog.append` (the monitor's alerts today; the live
channel's security, package and config events will come through the same
door); readers hold an :class:`EventCursor` per worker and ask it for what
came after the last event they saw.

Appending (:meth:`EventLog.append`), under an exclusive ``flock`` on
``<data>/run/events.lock`` (and a thread lock, since threads share the
descriptor that holds the flock):

1. the last ``seq`` is the 8 bytes of the lock file (little-endian; rebuilt
   from the log if the file is new) — the new ``seq`` is written there
   first, so a writer that dies later leaves a gap, never a reused number;
2. past ``max_bytes`` (1 MiB) the file is renamed to ``events.jsonl.1``
   (replacing the older one) and a new one starts;
3. the whole line goes out in one ``write(2)`` on an ``O_APPEND``
   descriptor. A line cut short by a crash (or a full disk) is ended by the
   next append's leading newline and skipped by readers as unparsable.

Reading (:class:`EventCursor`) needs no lock. A cursor remembers the inode of
the file it reads and its offset in it; :meth:`EventCursor.poll` costs one
``stat`` when nothing is new, reads only the new bytes when something is,
and follows a rotation by finishing the renamed file (now ``events.jsonl.1``)
before starting the new one. A cursor that fell more than a whole file
behind (two rotations, about 1 MiB of events, between polls) rescans both
files and counts the numbers it never saw in :attr:`EventCursor.missed`; the
live channel should then resend whole state rather than deltas.

Waiting is polling: :meth:`EventCursor.wait` polls every ``interval``
seconds (0.05 by default) until something arrives or the timeout passes,
sleeping through ``sleep`` (``time.sleep``, which gevent's monkey-patching
turns into a cooperative sleep in a gevent worker). The intended use is one
cursor per worker process that fans events out to that worker's WebSocket
connections, not one per connection: then a worker does 20 ``stat`` calls a
second when idle, whatever its number of clients. An inotify watch or a
shared-memory counter can replace the polling later without changing this
API. The flock is held for a few microseconds per append; a gevent worker
blocks on it without yielding, which is harmless at that length.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from r13core import locks, pids
from r13core.datadir import make_private_dirs, open_private

EVENTS_FILE: Final = "run/events.jsonl"
LOCK_FILE: Final = "run/events.lock"
EVENTS_MAX_BYTES: Final = 1 << 20  # then events.jsonl is rotated to events.jsonl.1
MAX_EVENT_BYTES: Final = 64 << 10  # one line, JSON included
POLL_INTERVAL: Final = 0.05
_TOPIC = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_CHUNK = 1 << 20
_SEQ_PREFIX = b'{"seq":'


@dataclass(frozen=True)
class EventRecord:
    """One event as written: its number, time (Unix seconds), topic and JSON data."""

    seq: int
    ts: float
    topic: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of the line."""
        return {"seq": self.seq, "ts": self.ts, "topic": self.topic, "data": self.data}


def _parse(line: bytes) -> EventRecord | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    seq, ts, topic, data = obj.get("seq"), obj.get("ts"), obj.get("topic"), obj.get("data")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None
    if not isinstance(ts, int | float) or not isinstance(topic, str) or not isinstance(data, dict):
        return None
    return EventRecord(seq, float(ts), topic, data)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _records(path: Path) -> Iterator[EventRecord]:
    """Every readable record of a whole file (none if it is missing)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for line in data.split(b"\n"):
        record = _parse(line) if line else None
        if record is not None:
            yield record


class EventLog:
    """Append to and read the events log of ``data_dir`` (see the module docstring).

    ``max_bytes`` is the size past which the file is rotated; ``clock`` gives
    each event's ``ts``. Safe to share between threads; every process opens
    its own (a fork is noticed and the lock file reopened).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        max_bytes: int = EVENTS_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        data = Path(data_dir)
        self.path = data / EVENTS_FILE
        self.rotated = self.path.with_name(self.path.name + ".1")
        self.lock_path = data / LOCK_FILE
        self.max_bytes = max_bytes
        self.clock = clock
        self._thread_lock = threading.Lock()
        self._fd = -1
        self._fd_pid = 0
        # (inode, size) of the log right after this process's last append: when the
        # file still looks like that, it ends with a newline without reading it.
        self._after_mine: tuple[int, int] | None = None

    # -- writing ------------------------------------------------------------------------

    def _lock_fd(self) -> int:
        if self._fd_pid != pids.current():  # first use, or a forked child: its own description
            if self._fd >= 0:
                os.close(self._fd)
            make_private_dirs(self.lock_path.parent)
            self._fd = open_private(self.lock_path)
            self._fd_pid = pids.current()
        return self._fd

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """Hold the append lock (the thread lock, then the flock); the lock file's fd."""
        with self._thread_lock:
            fd = self._lock_fd()
            locks.flock(fd, fcntl.LOCK_EX)  # other processes' appends: on the hub
            try:
                yield fd
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _read_counter(self, fd: int) -> int:
        raw = os.pread(fd, 8, 0)
        if len(raw) == 8:
            return int.from_bytes(raw, "little")
        # A new (or damaged) counter: carry on from the highest number in the log.
        last = max((r.seq for p in (self.rotated, self.path) for r in _records(p)), default=0)
        os.pwrite(fd, last.to_bytes(8, "little"), 0)
        return last

    def append(self, topic: str, data: Mapping[str, Any]) -> EventRecord:
        """Write one event; the record as written (with its ``seq``).

        ValueError for a topic that is not a short lower-case name
        (``[a-z][a-z0-9_.-]{0,31}``) or a line over :data:`MAX_EVENT_BYTES`;
        TypeError for data JSON cannot encode; OSError if the file cannot be
        written (nothing is then written, but the number may be used up).
        """
        if not _TOPIC.fullmatch(topic):
            raise ValueError(f"event topic {topic!r} is not a short lower-case name")
        body = dict(data)
        with self._locked() as fd:
            seq = self._read_counter(fd) + 1
            record = EventRecord(seq, round(self.clock(), 6), topic, body)
            line = json.dumps(record.as_dict(), separators=(",", ":")).encode() + b"\n"
            if len(line) > MAX_EVENT_BYTES:
                raise ValueError(f"an event is at most {MAX_EVENT_BYTES} bytes ({len(line)})")
            os.pwrite(fd, seq.to_bytes(8, "little"), 0)
            self._write_line(line)
        return record

    def _write_line(self, line: bytes) -> None:
        current = _stat(self.path)
        if current is not None and current.st_size > self.max_bytes:
            os.replace(self.path, self.rotated)
        fd = open_private(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            st = os.fstat(fd)
            unknown_end = st.st_size and self._after_mine != (st.st_ino, st.st_size)
            if unknown_end and os.pread(fd, 1, st.st_size - 1) != b"\n":
                line = b"\n" + line  # end a line a crashed writer left unfinished
            os.write(fd, line)
            self._after_mine = (st.st_ino, st.st_size + len(line))
        finally:
            os.close(fd)

    def nudge(self) -> None:
        """Make the log grow by an empty line, which readers skip: whoever watches the
        file (the live channel's hubs, through inotify) wakes now. For a change that
        is visible elsewhere already (the 13-byte record in shared memory) and whose
        own event comes later, after its audit commit (r13core/config_changes.py)."""
        with self._locked():
            self._write_line(b"\n")

    def last_seq(self) -> int:
        """The number of the last event appended (0 before the first)."""
        with self._locked() as fd:
            return self._read_counter(fd)

    # -- reading ------------------------------------------------------------------------

    def cursor(self, after: int | None = None) -> EventCursor:
        """A reader of the events after ``after`` (None: after the last one now).

        A number from the future (a log that was reset, or another data dir's)
        counts as "now".
        """
        return EventCursor(self, after)

    def read_after(self, seq: int, limit: int = 1000) -> list[EventRecord]:
        """Up to ``limit`` events after ``seq``, oldest first (scans both files once)."""
        return self.cursor(seq).poll(limit)

    def close(self) -> None:
        """Close this process's lock file (reopened by the next call)."""
        with self._thread_lock:
            if self._fd >= 0 and self._fd_pid == pids.current():
                os.close(self._fd)
            self._fd, self._fd_pid = -1, 0


class EventCursor:
    """Where one reader is in the events log; :meth:`poll` returns what is new.

    :attr:`seq` is the number of the last event delivered (or the starting
    point); :attr:`missed` counts numbers skipped over — events lost to
    rotation before this cursor read them, or numbers a writer that died
    mid-append used up. Not thread-safe: one cursor per reading loop.
    """

    def __init__(self, log: EventLog, after: int | None = None) -> None:
        self.log = log
        self.missed = 0
        self._ino: int | None = None  # the file being read (None: find it on the next poll)
        self._offset = 0
        with log._locked() as fd:  # a position no append can slip past
            last = log._read_counter(fd)
            if after is None or after >= last:
                st = _stat(log.path)
                if st is not None:
                    self._ino, self._offset = st.st_ino, st.st_size
                after = last
        self.seq = max(0, after)

    def poll(self, limit: int = 1000) -> list[EventRecord]:
        """Up to ``limit`` events after :attr:`seq`, oldest first; [] when nothing is new."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        out: list[EventRecord] = []
        for _ in range(8):  # each turn moves on by a file; rotations racing us cost a turn
            current = _stat(self.log.path)
            if self._ino is not None and current is not None and current.st_ino == self._ino:
                if current.st_size < self._offset:  # truncated in place (copytruncate)
                    self._offset = 0
                if current.st_size == self._offset or self._read(self.log.path, limit, out):
                    return out
                continue  # rotated while we read: look again
            old = _stat(self.log.rotated)
            if self._ino is not None and old is not None and old.st_ino == self._ino:
                # Our file was rotated: finish it, then start the new one.
                if not self._read(self.log.rotated, limit, out) or len(out) >= limit:
                    return out
                if current is None:
                    return out  # no new file yet; it is found from here next time
                self._ino, self._offset = current.st_ino, 0
                continue
            # First poll of a cursor that starts in the past, or one that lost its file:
            # read both files from the start (the sequence numbers filter what was seen).
            start = old if old is not None else current
            if start is None:
                self._ino = None
                return out
            self._ino, self._offset = start.st_ino, 0
        return out

    def _read(self, path: Path, limit: int, out: list[EventRecord]) -> bool:
        """Read ``path`` from the offset into ``out``; False if it is not our file any more."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            if os.fstat(fd).st_ino != self._ino:
                return False
            while len(out) < limit:
                chunk = os.pread(fd, _CHUNK, self._offset)
                end = chunk.rfind(b"\n")
                if end < 0:
                    if len(chunk) == _CHUNK:  # no line is this long: garbage, skip it
                        self._offset += len(chunk)
                        continue
                    return True  # nothing, or only a line still being written
                pos = 0
                while pos <= end and len(out) < limit:
                    nl = chunk.index(b"\n", pos)
                    if nl > pos and not self._seen(chunk, pos):
                        self._take(_parse(chunk[pos:nl]), out)
                    pos = nl + 1
                self._offset += pos
            return True
        finally:
            os.close(fd)

    def _seen(self, chunk: bytes, pos: int) -> bool:
        """Whether the line at ``pos`` is one this cursor is past, from its prefix alone.

        Lines start ``{"seq":<n>,`` (as :meth:`EventLog.append` writes them), so a
        rescan skips what was delivered without parsing it; any other line is parsed.
        """
        if not chunk.startswith(_SEQ_PREFIX, pos):
            return False
        start = pos + len(_SEQ_PREFIX)
        comma = chunk.find(b",", start, start + 21)
        digits = chunk[start:comma] if comma > start else b""
        return digits.isdigit() and int(digits) <= self.seq

    def _take(self, record: EventRecord | None, out: list[EventRecord]) -> None:
        if record is None or record.seq <= self.seq:
            return
        if record.seq > self.seq + 1:
            self.missed += record.seq - self.seq - 1
        self.seq = record.seq
        out.append(record)

    def wait(
        self,
        timeout: float,
        *,
        limit: int = 1000,
        interval: float = POLL_INTERVAL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[EventRecord]:
        """:meth:`poll` every ``interval`` s until something is new or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.poll(limit)
            left = deadline - time.monotonic()
            if events or left <= 0:
                return events
            sleep(min(interval, left))
