"""Single flight: concurrent misses for the same thing make one upstream request.

Within a worker, :class:`SingleFlight` lets the first caller for a key (the
leader) do the work while later callers for the same key wait for its result
(``threading`` primitives, which are gevent's in a gevent worker: the waiters
wait on the hub). Across the workers of a data dir, :func:`across_workers`
takes one of a few striped ``flock`` files for the key, waiting on the hub
(r13core/locks.py): the leader of each worker queues there, and each one that
gets in after the first finds the cache already filled. So with the cache on,
N clients missing the same package across every worker make one upstream
request; with the cache off (nothing to find) it is one per worker.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from r13core import locks, pids
from r13core.datadir import make_private_dirs, open_private

T = TypeVar("T")
STRIPES: Final = 64
FLIGHT_DIR: Final = "run/uplink-flight"


class _Call(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight(Generic[T]):
    """One call per key at a time in this process; the others share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Any, _Call[T]] = {}
        self._pid = pids.current()

    def do(self, key: Any, work: Callable[[], T]) -> tuple[T, bool]:
        """``(work(), False)`` for the leader; ``(its result, True)`` for those who waited.

        The leader's exception is raised in every waiter too.
        """
        with self._lock:
            if self._pid != pids.current():  # a fork: nothing of the parent's is in flight here
                self._calls, self._pid = {}, pids.current()
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.value, True  # type: ignore[return-value]
        try:
            call.value = work()
            return call.value, False
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                self._calls.pop(key, None)
            call.done.set()

    def waiters(self, key: Any) -> int:
        """How many callers wait for the call in flight for ``key`` (0 if none)."""
        with self._lock:
            call = self._calls.get(key)
            return 0 if call is None else call.waiters

    def in_flight(self) -> int:
        """How many keys are being fetched now (for tests and the monitor)."""
        with self._lock:
            return len(self._calls)


@contextmanager
def across_workers(data_dir: Path, key: str) -> Iterator[None]:
    """Hold the striped lock file of ``key`` (exclusive; waits on the hub under gevent)."""
    stripe = int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "little") % STRIPES
    folder = Path(data_dir) / FLIGHT_DIR
    make_private_dirs(folder)
    fd = open_private(folder / f"{stripe:02d}.lock")
    try:
        locks.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the description drops the lock


__all__ = ["FLIGHT_DIR", "STRIPES", "SingleFlight", "across_workers"]
