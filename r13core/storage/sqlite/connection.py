"""One SQLite file: its connections and the one write-transaction helper.

Connections are opened lazily, one per (process, OS thread): gunicorn forks
workers after the app may have been built, and a SQLite connection must not
cross a fork, so a pid change opens a fresh one; gthread workers run several
threads, each with its own connection. Under the gevent worker every greenlet
of the worker shares its one OS thread's connection (r13core/cooperative.py):
not one per client connection (an open SQLite connection holds three
descriptors; a worker holds up to R13_WORKER_CONNECTIONS clients). WAL mode
with ``synchronous=FULL``: a committed change survives a power cut.

Every write goes through :meth:`SQLiteDatabase._transaction`, which starts with
``BEGIN IMMEDIATE`` so two writers never both read-then-upgrade. Writers of one
process first take the process's write gate, a ``threading.RLock`` (a gevent
lock when gevent has patched the worker): a second writer waits there, on the
hub, never inside SQLite, whose busy handler sleeps in C and would stop every
greenlet of the worker until the first writer (which it keeps from running)
gives up at the busy timeout. Writers of other processes are waited for by
SQLite's busy handler under threads, and by non-blocking attempts with a
cooperative sleep between them under gevent. The rule that makes the shared
connection and the gate safe: nothing inside a write transaction may yield to
the hub (no socket I/O, no sleep, no wait on a lock another greenlet may hold).
Request bodies are read, tarballs written and fsynced, before the transaction
begins; listeners and the audit event run after it commits.
tests/test_gevent_safety.py runs the writes under a greenlet switch tracer.

Each concern's SQLite class (r13core/storage/sqlite/packages.py, identity.py,
...) is a :class:`SQLiteDatabase`; r13core/storage/sqlite/__init__.py composes
them into one :class:`~r13core.storage.sqlite.SQLiteStorage`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from r13core import cooperative, pids
from r13core.datadir import FILE_MODE, narrow_file
from r13core.storage.signals import ChangeSignal
from r13core.storage.sqlite.migrations import latest, migrate, refuse_pending, user_version

log = logging.getLogger("r13.storage")

# SQLite's default limit of host parameters per statement is 999 (older builds).
_CHUNK: Final = 500


def dumps(value: object) -> str:
    """JSON text as stored: compact."""
    return json.dumps(value, separators=(",", ":"))


def chunks(values: Iterable[str]) -> Iterator[tuple[list[str], str]]:
    """Sorted distinct ``values`` in slices small enough for ``IN (...)``, with their marks."""
    wanted = sorted(set(values))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        yield chunk, ",".join("?" * len(chunk))


@contextmanager
def immediate(
    conn: sqlite3.Connection, begin: Callable[[], object] | None = None
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on ``conn``; ``ROLLBACK`` on any exception.

    ``begin`` replaces the plain ``BEGIN IMMEDIATE`` (the cooperative one under gevent).
    """
    if begin is None:
        conn.execute("BEGIN IMMEDIATE")
    else:
        begin()
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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 30_000,
        auto_migrate: bool = True,
    ) -> None:
        self.path = Path(path)
        self.auto_migrate = auto_migrate
        self._busy_timeout_ms = busy_timeout_ms
        self._local: Any = None
        self._local_pid = -1
        self._migrated_pid = -1
        self._lock = threading.Lock()
        self._gate: Any = None
        self._writer: int | None = None

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

    def _per_process(self) -> None:
        """The connection holder and the write gate of this process, made after fork.

        Made in the process that uses them, so they are gevent's when gevent has
        patched it (a lock made before patching would block the hub), and never a
        lock some thread of the parent held at fork.
        """
        with self._lock:
            if self._local_pid != pids.current():
                self._local = cooperative.thread_local()
                self._gate = threading.RLock()
                self._writer = None
                self._local_pid = pids.current()

    @property
    def writer(self) -> int | None:
        """``threading.get_ident()`` of the greenlet or thread inside a write transaction."""
        return self._writer

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (opened, and the file migrated, on first use)."""
        pid = pids.current()
        if self._local_pid != pid:
            self._per_process()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == pid:
            writer = self._writer
            if writer is not None and writer != threading.get_ident() and conn.in_transaction:
                return self._stray_reader()
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
                        if self.auto_migrate:
                            migrate(conn)
                        else:
                            refuse_pending(conn)
                    self._migrated_pid = pid
        self._local.conn = conn
        self._local.pid = pid
        return conn

    def _stray_reader(self) -> sqlite3.Connection:
        """A connection of its own for a greenlet that runs while another is mid-transaction.

        That only happens if something yielded inside a write transaction (a bug: see
        the module's docstring). The shared connection would show this greenlet the
        other's uncommitted rows; a fresh one (closed when dropped) sees committed data.
        """
        log.error("a greenlet yielded inside a write transaction of %s", self.path)
        timeout = self._busy_timeout_ms / 1000
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _while_busy(
        self, step: Callable[[], object], first_pause: float = 0.005, longest: float = 0.1
    ) -> None:
        """Run ``step``, again while SQLite answers "locked"/"busy", up to the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        pause = first_pause
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)  # under gevent, a turn of the hub
            pause = min(pause * 2, longest)

    def _begin_cooperatively(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE`` that waits for another process's writer on the hub.

        With the busy timeout at 0, SQLite answers "busy" at once instead of sleeping
        in C; the retries sleep cooperatively (no transaction is open meanwhile). The
        timeout is 0 only for the attempt itself and restored before each sleep: the
        connection is shared by every greenlet of the worker, and one that runs during
        the sleep (a packument read) must not meet a 0 timeout and fail with "database
        is locked" at once (tests/test_gevent_safety.py).
        """
        timeout = f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}"

        def attempt() -> None:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                conn.execute(timeout)

        self._while_busy(attempt, 0.001, 0.02)

    @contextmanager
    def _transaction(self, changes: ChangeSignal | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (see :func:`immediate`).

        Taken under the process's write gate (see the module's docstring). ``changes``
        is bumped once the commit has succeeded, if the transaction changed any row
        (never for a rollback), so a process that sees the bump reads the committed
        change.
        """
        if self._local_pid != pids.current():
            self._per_process()
        with self._gate:  # first: the shared connection is ours once we hold it
            conn = self._conn()
            begin = (lambda: self._begin_cooperatively(conn)) if cooperative.patched() else None
            before = conn.total_changes
            outer = self._writer
            self._writer = threading.get_ident()
            try:
                with immediate(conn, begin):
                    yield conn
            finally:
                self._writer = outer
        if changes is not None and conn.total_changes != before:
            changes.bump()

    def schema_version(self) -> tuple[int, int]:
        """(the file's schema version, the version this code knows); nothing is migrated."""
        if not self.path.exists():
            return 0, latest()
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000)
        try:
            return user_version(conn), latest()
        finally:
            conn.close()

    def migrate(self) -> list[int]:
        """Apply pending migrations now (one ``BEGIN IMMEDIATE``); the versions applied."""
        self._private_files()
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
        )
        try:
            self._while_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            with immediate(conn):
                return migrate(conn)
        finally:
            conn.close()

    def pragma(self, name: str) -> Any:
        """Read a PRAGMA on this thread's connection (for tests and diagnostics)."""
        if not name.replace("_", "").isalpha():
            raise ValueError(name)
        return self._conn().execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        if self._local_pid != pids.current():
            return  # nothing opened in this process
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == pids.current():
            conn.close()
        self._local.conn = None
