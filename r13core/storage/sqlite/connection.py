"""One SQLite file: its connections and the one write-transaction helper.

Connections are opened lazily, one per (process, thread): gunicorn forks
workers after the app may have been built, and a SQLite connection must not
cross a fork, so a pid change opens a fresh one; gthread workers run several
threads, each with its own connection. WAL mode with ``synchronous=FULL``: a
committed change survives a power cut. Every write goes through
:meth:`SQLiteDatabase._transaction`, which starts with ``BEGIN IMMEDIATE`` so
two writers never both read-then-upgrade (SQLite serialises writers itself;
``busy_timeout`` makes one wait for the other instead of failing at once).

Each concern's SQLite class (r13core/storage/sqlite/packages.py, identity.py,
...) is a :class:`SQLiteDatabase`; r13core/storage/sqlite/__init__.py composes
them into one :class:`~r13core.storage.sqlite.SQLiteStorage`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from r13core.datadir import FILE_MODE, narrow_file
from r13core.storage.packages import JSONDict
from r13core.storage.signals import ChangeSignal
from r13core.storage.sqlite.migrations import migrate

# SQLite's default limit of host parameters per statement is 999 (older builds).
_CHUNK: Final = 500


def dumps(value: JSONDict) -> str:
    """JSON text as stored: compact."""
    return json.dumps(value, separators=(",", ":"))


def chunks(values: Iterable[str]) -> Iterator[tuple[list[str], str]]:
    """Sorted distinct ``values`` in slices small enough for ``IN (...)``, with their marks."""
    wanted = sorted(set(values))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        yield chunk, ",".join("?" * len(chunk))


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on ``conn``; ``ROLLBACK`` on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (e.g. on a full disk or an I/O error).
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SQLiteDatabase:
    """The file at ``path`` (created and migrated on first use, see migrations.py)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._migrated_pid = -1
        self._lock = threading.Lock()

    def _private_files(self) -> None:
        """The database is created 0600, so SQLite makes its -wal and -shm 0600 too.

        SQLite gives those the database file's mode; an existing install's 0644
        files are narrowed. (Never open+close them here: closing any descriptor of
        a file drops this process's POSIX locks on it, SQLite's included.)
        """
        with suppress(FileExistsError):
            os.close(
                os.open(
                    self.path,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    FILE_MODE,
                )
            )
        for suffix in ("", "-wal", "-shm"):
            narrow_file(str(self.path) + suffix)

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (opened, and the file migrated, on first use)."""
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == pid:
            return conn
        # New thread, or a forked child holding its parent's connection: never reuse
        # (and never close) an inherited one; open our own.
        self._private_files()
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if self._migrated_pid != pid:
            with self._lock:
                if self._migrated_pid != pid:
                    # WAL is kept in the file: set once per process, not per connection.
                    # Switching needs a lock that SQLite's busy handler does not always
                    # wait for (a new file, another process's first connection), so retry.
                    self._while_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                    with immediate(conn):
                        migrate(conn)
                    self._migrated_pid = pid
        self._local.conn = conn
        self._local.pid = pid
        return conn

    def _while_busy(self, step: Callable[[], object]) -> None:
        """Run ``step``, again while SQLite answers "locked"/"busy", up to the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        pause = 0.005
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    @contextmanager
    def _transaction(self, changes: ChangeSignal | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (see :func:`immediate`).

        ``changes`` is bumped once the commit has succeeded, if the transaction
        changed any row (never for a rollback), so a process that sees the bump
        reads the committed change.
        """
        conn = self._conn()
        before = conn.total_changes
        with immediate(conn):
            yield conn
        if changes is not None and conn.total_changes != before:
            changes.bump()

    def pragma(self, name: str) -> Any:
        """Read a PRAGMA on this thread's connection (for tests and diagnostics)."""
        if not name.replace("_", "").isalpha():
            raise ValueError(name)
        return self._conn().execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None
