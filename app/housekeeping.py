"""A running server's upkeep in each worker: the instance lock, the sweep, automatic
backups, leader jobs.

Started by ``create_app`` only in a real server (``root_pid`` given),
after fork. The worker holds the data dir's instance lock shared for its whole
life (so a second ``r13 serve`` on the same data dir never runs its
alone-only start-up sweep under it, :mod:`r13core.locks`), and runs a
:class:`r13core.sweeper.Sweeper`, which sweeps only while this worker leads,
with R13_BACKUP_EVERY an :class:`r13core.backup.auto.AutoBackups` election (one
process of the data dir, one node of a PostgreSQL cluster, makes the backups), and
the other leader jobs it is given (the webhooks' delivery worker,
r13core/hooks/worker.py), each run by one worker of the data dir.
Stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import sys
from collections.abc import Sequence

from r13core.backup.auto import AutoBackups, auto_backups
from r13core.locks import InstanceLock, LeaderJob
from r13core.settings import Settings
from r13core.sweeper import Sweepable, Sweeper


class Housekeeping:
    """The instance lock and the sweeper of one worker."""

    def __init__(
        self, settings: Settings, registry: Sweepable, *, jobs: Sequence[LeaderJob] = ()
    ) -> None:
        self.jobs = tuple(jobs)
        self.instance = InstanceLock(settings.data_dir)
        self.sweeper = Sweeper(
            registry,
            settings.data_dir,
            interval=settings.housekeeping.sweep_interval_ms / 1000,
            min_age=settings.housekeeping.sweep_min_age_ms / 1000,
        )
        self.backups: AutoBackups | None = auto_backups(settings)

    def start(self) -> None:
        """Hold the instance lock shared and start the sweeper's election."""
        self.instance.shared()
        self.sweeper.start()
        if self.backups is not None:
            _log_backups()
            self.backups.start()
        for job in self.jobs:
            job.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the sweeper and the jobs, and drop the lock."""
        for job in self.jobs:
            job.stop()
        self.sweeper.stop()
        if self.backups is not None:
            self.backups.stop()
        self.instance.release()


def _log_backups() -> None:
    """Automatic backups (and their failures) go to the server's log (its stderr), once."""
    logger = logging.getLogger("r13.backup")
    if any(getattr(h, "_r13_backups", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [r13.backup] %(message)s"))
    handler._r13_backups = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
