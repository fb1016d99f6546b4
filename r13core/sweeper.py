"""Orphan removal: once at start-up when alone, then periodically in one worker.

Orphans appear when a publish dies between writing its file and committing
its row, and when the prompt deletion of an unpublished version's file did
not happen (the process died right after the commit). Two sweeps remove them
(:meth:`r13core.registry.Registry.sweep` does the work):

* :func:`startup_sweep` — ``r13 serve`` calls it before gunicorn starts. If it
  gets the data dir's instance lock exclusively (no other server process of
  the data dir is alive, :class:`r13core.locks.InstanceLock`), no publish can
  be in flight, so every file no committed row refers to goes, whatever its
  age, and so do the temp files other writers of the data dir leave when
  killed mid-write (``*.tmp``: the monitor's state, the record's Python twin,
  the admin key's first write). Otherwise it leaves the job to the running
  server's sweeper.
* :class:`Sweeper` — every worker runs one; the one holding
  ``<data>/.r13-sweeper.lock`` (:class:`r13core.locks.LeaderJob`) sweeps every
  ``interval`` seconds, keeping files younger than ``min_age`` seconds (a
  publish in flight). If its worker dies, another takes over.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Final, Protocol

from r13core.locks import InstanceLock, LeaderJob, every

log = logging.getLogger("r13.sweeper")

LOCK_FILE: Final = ".r13-sweeper.lock"
# Where writers of the data dir put their temp files (each renamed into place when done).
TEMP_FILES: Final = ("*.tmp", ".*.tmp", "run/*.tmp", "run/.*.tmp")


class Sweepable(Protocol):
    """What the sweeper needs: :meth:`r13core.registry.Registry.sweep`."""

    def sweep(self, *, min_age: float = 3600.0, alone: bool = False) -> int: ...


def startup_sweep(registry: Sweepable, instance: InstanceLock) -> int | None:
    """Sweep every orphan if ``instance`` can be locked exclusively; None if others run.

    On success the lock is left held **shared** (the caller keeps it while it
    serves, so a later ``r13 serve`` on the same data dir does not sweep under it).
    """
    if not instance.try_exclusive():
        return None
    try:
        return registry.sweep(alone=True) + remove_temp_files(instance.path.parent)
    finally:
        instance.shared()  # downgrade: we are one of the running processes now


def remove_temp_files(data_dir: Path) -> int:
    """Remove the data dir's temp files (:data:`TEMP_FILES`); only safe when alone."""
    removed = 0
    for pattern in TEMP_FILES:
        for path in Path(data_dir).glob(pattern):
            try:
                if not path.is_dir():
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


class Sweeper(LeaderJob):
    """The periodic sweep, led by one process of the data dir (see the module docstring)."""

    def __init__(
        self,
        registry: Sweepable,
        data_dir: str | Path,
        *,
        interval: float = 3600.0,
        min_age: float = 3600.0,
        poll: float = 0.2,
    ) -> None:
        if interval <= 0 or min_age < 0:
            raise ValueError("interval must be > 0 and min_age >= 0")
        super().__init__(Path(data_dir) / LOCK_FILE, name="r13-sweeper", poll=poll)
        self._registry = registry
        self._interval = interval
        self._min_age = min_age
        self.removed = 0
        self.sweeps = 0

    def sweep_now(self) -> int:
        """One sweep with the age guard (what each period does)."""
        removed = self._registry.sweep(min_age=self._min_age)
        self.sweeps += 1
        self.removed += removed
        if removed:
            log.info("swept %d orphan file(s)", removed)
        return removed

    def lead(self, stop: threading.Event) -> None:
        """Sweep every ``interval`` seconds until ``stop`` (a failed sweep is retried next time)."""
        every(stop, self._interval, self.sweep_now, what="sweep")
