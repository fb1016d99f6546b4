"""The circuit breaker in front of the upstream, shared by every worker of a data dir.

Verdaccio's ``max_fails``/``fail_timeout``, kept in one 32-byte file
(``<data>/run/uplink-breaker``) that every gunicorn worker reads and updates
under ``flock``, so a failing upstream is noticed once for the whole server,
not once per worker, and the probe that tests it again is one request for the
whole server too. (A file, not the C core's shared memory: the breaker is
consulted only when r13 is about to go upstream — a miss or a revalidation,
which costs milliseconds anyway — and a few microseconds of pread/pwrite under
a lock are nothing beside that; a file also keeps the state across a restart.)

States:

* **closed** — requests go upstream; ``max_fails`` failures in a row open it;
* **open** — nothing goes upstream until ``fail_timeout`` has passed (clients get
  the cached copy, or a 502 at once instead of waiting for timeouts);
* **half-open** — after that, exactly one request (the probe) is let through;
  every other request is refused as while open. The probe's success closes the
  breaker; its failure opens it for another ``fail_timeout``. A probe that never
  reports (its worker died) is given up after ``probe_timeout``, and another
  request becomes the probe.

The clock is a parameter (unix milliseconds), so tests drive it.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from r13core import locks, pids
from r13core.datadir import make_private_dirs, open_private

_FORMAT: Final = struct.Struct("<IIqqq")
"""version, failures in a row, open until (ms; 0: closed), probe until (ms), last change (ms)."""
_VERSION: Final = 1
BREAKER_FILE: Final = "run/uplink-breaker"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class BreakerState:
    """What the breaker says now: ``closed``, ``open`` or ``half-open``."""

    state: str
    failures: int
    retry_in_ms: int
    changed_ms: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "state": self.state,
            "failures": self.failures,
            "retry_in_ms": self.retry_in_ms,
            "changed_ms": self.changed_ms,
        }


class CircuitBreaker:
    """The breaker of ``<data_dir>/run/uplink-breaker`` (created closed if absent)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_fails: int = 3,
        fail_timeout_ms: int = 30_000,
        probe_timeout_ms: int | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.path = Path(data_dir) / BREAKER_FILE
        make_private_dirs(self.path.parent)
        self.max_fails = max_fails
        self.fail_timeout_ms = fail_timeout_ms
        self.probe_timeout_ms = probe_timeout_ms if probe_timeout_ms is not None else 60_000
        self.clock = clock
        self._fd = -1
        self._pid = -1
        self._lock = threading.Lock()

    def _file(self) -> int:
        if self._pid != pids.current():
            self._fd = open_private(self.path)
            self._pid = pids.current()
        return self._fd

    @contextmanager
    def _locked(self) -> Iterator[list[int]]:
        """The record, read under the file lock; written back if the caller changed it."""
        with self._lock:
            fd = self._file()
            locks.flock(fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(fd, _FORMAT.size, 0)
                if len(raw) == _FORMAT.size and _FORMAT.unpack(raw)[0] == _VERSION:
                    record = list(_FORMAT.unpack(raw))
                else:
                    record = [_VERSION, 0, 0, 0, 0]
                before = list(record)
                yield record
                if record != before:
                    os.pwrite(fd, _FORMAT.pack(*record), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def allow(self) -> bool:
        """Whether this request may go upstream now (True at most once per probe window)."""
        now = self.clock()
        with self._locked() as r:
            open_until, probe_until = r[2], r[3]
            if open_until == 0:
                return True
            if now < open_until or now < probe_until:
                return False
            r[3] = now + self.probe_timeout_ms  # this request is the probe
            return True

    def success(self) -> None:
        """The upstream answered (any answer but a failure): close the breaker."""
        now = self.clock()
        with self._locked() as r:
            if r[1] or r[2]:
                r[1], r[2], r[3], r[4] = 0, 0, 0, now

    def failure(self) -> None:
        """The upstream failed: count it; open on the ``max_fails``-th, or on a failed probe."""
        now = self.clock()
        with self._locked() as r:
            r[1] = min(r[1] + 1, 2**31)
            if r[2] != 0 or r[1] >= self.max_fails:
                r[2], r[3], r[4] = now + self.fail_timeout_ms, 0, now

    def state(self) -> BreakerState:
        """The state now (a read; never claims the probe)."""
        now = self.clock()
        with self._locked() as r:
            failures, open_until, changed = r[1], r[2], r[4]
        if open_until == 0:
            return BreakerState("closed", failures, 0, changed)
        if now < open_until:
            return BreakerState("open", failures, open_until - now, changed)
        return BreakerState("half-open", failures, 0, changed)

    def reset(self) -> None:
        """Close the breaker (an admin knows the upstream is back)."""
        now = self.clock()
        with self._locked() as r:
            r[1], r[2], r[3], r[4] = 0, 0, 0, now

    def close(self) -> None:
        """Release this process's descriptor."""
        if self._pid == pids.current() and self._fd >= 0:
            os.close(self._fd)
        self._fd, self._pid = -1, -1


__all__ = ["BREAKER_FILE", "BreakerState", "CircuitBreaker"]
