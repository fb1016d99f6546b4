"""Automatic backups: every R13_BACKUP_EVERY, by one process, the newest R13_BACKUP_KEEP kept.

Every worker of a server runs an :class:`AutoBackups` election
(:class:`r13core.locks.LeaderJob` on ``<data>/.r13-autobackup.lock``); the leader
makes the backups. With PostgreSQL, several nodes share one database, so the
leader of each node also needs the cluster's backup lock, a PostgreSQL advisory
lock held on a connection of its own (r13core/backup/postgres.py): one node
backs up; if it dies, its connection drops, the lock with it, and another
node's leader takes over.

A backup is made by a child process (``python -m r13core.backup``) so that the
copy never competes with requests for the worker's hub or its GIL; the leader
waits for it (cooperatively under gevent). The child writes
``<dir>/r13-backup-<UTC time>``, audited as ``backup.create`` by ``r13``, then
removes the oldest backups beyond the count to keep (``backup.prune``) and
what killed backups left (``.r13-backup-*.partial-*``). The schedule follows
the newest backup in the directory: a server that starts after more than an
interval without one backs up at once.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from r13core.backup.create import backend_of
from r13core.backup.manifest import MANIFEST
from r13core.locks import LeaderJob
from r13core.settings import Settings

log = logging.getLogger("r13.backup")

LOCK_FILE: Final = ".r13-autobackup.lock"
PREFIX: Final = "r13-backup-"
_NAME: Final = re.compile(r"r13-backup-(\d{8}T\d{6}\.\d{3}Z)")
_PARTIAL: Final = re.compile(r"\.r13-backup-.*\.partial-[0-9a-f]+")
_STAMP: Final = "%Y%m%dT%H%M%S.%fZ"


def backup_name(ts: float) -> str:
    """``r13-backup-20261128T120000.123Z``: sortable, UTC, to the millisecond."""
    stamp = datetime.fromtimestamp(ts, UTC).strftime(_STAMP)
    return PREFIX + stamp[:-4] + "Z"  # microseconds -> milliseconds


def backups_in(directory: Path) -> list[tuple[float, Path]]:
    """Complete automatic backups in ``directory`` (with a manifest), oldest first."""
    found = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        m = _NAME.fullmatch(path.name)
        if m is None or not (path / MANIFEST).is_file():
            continue
        ts = datetime.strptime(m.group(1)[:-1] + "000Z", _STAMP).replace(tzinfo=UTC)
        found.append((ts.timestamp(), path))
    return sorted(found)


def prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` backups and any partial one; what went.

    Call it holding the data dir's backup lock (no backup is being written then).
    """
    gone = []
    for _ts, path in backups_in(directory)[: max(0, len(backups_in(directory)) - keep)]:
        shutil.rmtree(path)
        gone.append(path)
    for path in directory.iterdir() if directory.is_dir() else ():
        if _PARTIAL.fullmatch(path.name):
            shutil.rmtree(path, ignore_errors=True)
    return gone


class ClusterLock(Protocol):
    """One holder across every node (PostgreSQL: an advisory lock on its own connection)."""

    def try_acquire(self) -> bool:
        """Take it if free (or already ours and still held); whether we hold it."""
        ...

    def release(self) -> None: ...


def run_child(env: Mapping[str, str]) -> dict[str, Any]:
    """Make one automatic backup in a child process; its JSON report."""
    out = subprocess.run(
        [sys.executable, "-m", "r13core.backup"],
        env=dict(env),
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(
            "automatic backup failed: " + out.stderr.decode(errors="replace").strip()[-2000:]
        )
    report: dict[str, Any] = json.loads(out.stdout)
    return report


class AutoBackups(LeaderJob):
    """The election and the schedule of automatic backups (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        directory: Path,
        *,
        interval: float,
        run: Callable[[], dict[str, Any]],
        cluster: ClusterLock | None = None,
        poll: float = 0.2,
        cluster_poll: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        super().__init__(Path(data_dir) / LOCK_FILE, name="r13-autobackup", poll=poll)
        self.directory = Path(directory)
        self._interval = interval
        self._run = run
        self._cluster = cluster
        self._cluster_poll = cluster_poll
        self._clock = clock
        self.made = 0
        self.in_charge = False
        """Whether this process makes the backups now (it leads, and holds the cluster's lock)."""

    def due_in(self) -> float:
        """Seconds until the next backup: an interval after the newest one (0: now)."""
        newest = backups_in(self.directory)
        if not newest:
            return 0.0
        return max(0.0, newest[-1][0] + self._interval - self._clock())

    def backup_now(self) -> dict[str, Any]:
        """One backup (and prune) in a child process; logged."""
        report = self._run()
        self.made += 1
        log.info("automatic backup %s: %s tarball(s), %s bytes; removed %s old one(s)",
                 report.get("path"), report.get("tarballs"), report.get("bytes"),
                 len(report.get("pruned", [])))  # fmt: skip
        return report

    def lead(self, stop: threading.Event) -> None:
        """Back up whenever one is due, while this process (and node) leads."""
        try:
            while self._cluster is not None and not self._cluster.try_acquire():
                if stop.wait(self._cluster_poll):
                    return
            self.in_charge = True
            while not stop.wait(self.due_in()):
                if self._cluster is not None and not self._cluster.try_acquire():
                    log.warning("lost the cluster's backup lock; another node backs up")
                    return
                try:
                    self.backup_now()
                except Exception:
                    log.exception("automatic backup failed")
                    if stop.wait(min(self._interval, 60.0)):
                        return
        finally:
            self.in_charge = False
            if self._cluster is not None:
                self._cluster.release()


def auto_backups(settings: Settings) -> AutoBackups | None:
    """The automatic backups ``settings`` ask for (R13_BACKUP_EVERY), or None."""
    every = settings.backup.every_ms
    if not every:
        return None
    cluster: ClusterLock | None = None
    if backend_of(settings.storage.url) == "postgresql":
        from r13core.backup.postgres import AdvisoryLock

        cluster = AdvisoryLock(settings.storage.url)
    env = settings.environment()
    return AutoBackups(
        settings.data_dir,
        settings.backup.directory_for(settings.data_dir),
        interval=every / 1000,
        run=lambda: run_child(env),
        cluster=cluster,
    )
