"""A background sweeper: removes orphan tarball files now and then.

Orphans appear when a publish dies between writing its file and committing
its row, and when versions are unpublished. Every worker may run a
:class:`Sweeper`; a lock file in the data dir (``flock``, non-blocking) makes
sure only one process sweeps at a time, and the registry's age guard keeps
the files of publishes still in flight.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

log = logging.getLogger("r13.sweeper")


class Sweepable(Protocol):
    """What the sweeper needs: :meth:`r13core.registry.Registry.sweep`."""

    def sweep(self, *, min_age: float = 3600.0) -> int: ...


def sweep_once(registry: Sweepable, lock_path: Path, *, min_age: float) -> int | None:
    """Sweep unless another process is sweeping; the number removed, or None if skipped."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        try:
            return registry.sweep(min_age=min_age)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class Sweeper:
    """Calls ``registry.sweep(min_age=...)`` every ``interval`` seconds in a daemon thread."""

    def __init__(
        self,
        registry: Sweepable,
        data_dir: Path,
        *,
        interval: float = 3600.0,
        min_age: float = 3600.0,
    ) -> None:
        if interval <= 0 or min_age < 0:
            raise ValueError("interval must be > 0 and min_age >= 0")
        self._registry = registry
        self._lock_path = Path(data_dir) / "sweep.lock"
        self._interval = interval
        self._min_age = min_age
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.removed = 0

    def start(self) -> None:
        """Start the thread (call it in each worker after fork)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="r13-sweeper", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                removed = sweep_once(self._registry, self._lock_path, min_age=self._min_age)
            except Exception:  # keep sweeping later; never kill the worker
                log.exception("sweep failed")
                continue
            if removed:
                self.removed += removed
                log.info("swept %d orphan file(s)", removed)
