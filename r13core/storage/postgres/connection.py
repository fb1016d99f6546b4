"""One PostgreSQL database: its connection pool, the write-transaction helper, reads.

:class:`PgDatabase` holds a psycopg 3 :class:`~psycopg_pool.ConnectionPool`
opened lazily in each process that uses it (after gunicorn forks; an inherited
pool is dropped, never closed, since closing it would end the parent's
sessions), with ``open=True``. Connections are autocommit: a read is one
statement; a write is :meth:`PgDatabase.transaction`, an explicit
``BEGIN ... COMMIT`` (``ROLLBACK`` on any exception) after which the given
change signal is bumped if a row changed — so a process that sees the bump
reads the committed change, as with SQLite's helper
(r13core/storage/sqlite/connection.py).

Under gunicorn's gevent worker psycopg (3.1.14 and later) waits on the socket
through gevent's patched ``select``, so a slow query parks its greenlet and the
worker's other greenlets keep running; the pool's own threads are greenlets
there. Unlike SQLite, waiting on a lock (a row lock, an advisory lock) is a
socket wait too, so a write transaction may wait for another node's without
stopping the worker.

Each concern (r13core/storage/postgres/packages.py, identity.py, ...) is a
:class:`PgDatabase`; r13core/storage/postgres/__init__.py composes them into
:class:`~r13core.storage.postgres.PostgresStorage`. The schema is versioned
(r13core/storage/postgres/migrations.py): the first use in each process
migrates it (``auto_migrate``) or refuses to go on while a step is pending.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from r13core import pids
from r13core.datadir import make_private_dirs
from r13core.errors import SchemaPending, StorageUnavailable
from r13core.storage.backends import redact_url
from r13core.storage.postgres import migrations
from r13core.storage.postgres.signals import AUTH, PACKAGES, NotifyingSignal
from r13core.storage.signals import ChangeSignal, FileChangeSignal

Params = Sequence[Any] | dict[str, Any]

# pg_advisory_xact_lock(class, key) classes: one name space per kind of lock.
LOCK_PACKAGE: Final = 0x7231  # key: hashtext(package name); per-package write serialisation
LOCK_AUDIT: Final = 0x7232  # key: 0; the audit chain's appends
LOCK_BLOBS: Final = 0x7233  # key: 0; blob store hold (shared) / sweeping (exclusive)


def default_signal_dir(url: str) -> Path:
    """Where a process with no data dir keeps the node-local signal files of ``url``.

    One directory per user and database (by a hash of the password-free URL), so
    every process of this machine that opens the same database shares them.
    """
    digest = hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"r13-{os.getuid()}-pg-{digest}"


def dumps(value: object) -> str:
    """JSON text as stored: compact (TEXT, not JSONB: key order is kept)."""
    return json.dumps(value, separators=(",", ":"))


class PgTxn:
    """A write transaction in progress: :meth:`execute` counts the rows it changes."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.changed = 0

    def execute(self, sql: str, params: Params | None = None) -> psycopg.Cursor[Any]:
        """Run one statement; rows inserted, updated or deleted count as changes."""
        cur = self.conn.execute(sql, params)
        if cur.rowcount > 0 and not sql.lstrip()[:6].upper().startswith("SELECT"):
            self.changed += cur.rowcount
        return cur

    def mark_changed(self) -> None:
        """Count a change :meth:`execute` could not see (e.g. a function with side effects)."""
        self.changed += 1

    def lock(self, kind: int, key: str | int = 0) -> None:
        """``pg_advisory_xact_lock(kind, key)`` (a string key is hashed by ``hashtext``)."""
        if isinstance(key, str):
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (kind, key))
        else:
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (kind, key))


class PgDatabase:
    """The PostgreSQL database at ``url``; ``data_dir`` holds this node's signal files.

    ``pool_size``: at most that many connections per process. ``auto_migrate``:
    migrate on first use in each process (else :class:`SchemaPending` while a step
    is missing). A database newer than the code is always refused
    (:class:`~r13core.errors.SchemaTooNew`).
    """

    def __init__(
        self,
        url: str,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        pool_size: int = 10,
        auto_migrate: bool = True,
        connect_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.display_url = redact_url(url)
        self.signal_dir = (
            Path(data_dir).absolute() if data_dir is not None else default_signal_dir(url)
        )
        self.pool_size = pool_size
        self.auto_migrate = auto_migrate
        self.connect_timeout = connect_timeout
        self._pool_obj: ConnectionPool | None = None
        self._pool_pid = -1
        self._lock = threading.Lock()
        self._auth_signal = self._signal(AUTH)
        # Typed as the identity protocol declares it; the same object as signals()["auth"].
        self.auth_changes: ChangeSignal | None = self._auth_signal
        self.package_changes: NotifyingSignal = self._signal(PACKAGES)

    def _signal(self, name: str) -> NotifyingSignal:
        make_private_dirs(self.signal_dir)
        local = FileChangeSignal(self.signal_dir / f"pg-{name}gen")
        return NotifyingSignal(name, local, self.notify)

    def signals(self) -> dict[str, NotifyingSignal]:
        """Every change signal by its NOTIFY name (the cluster listener bumps ``.local``)."""
        return {AUTH: self._auth_signal, PACKAGES: self.package_changes}

    # -- connections -----------------------------------------------------------------

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A new connection of its own, outside the pool (e.g. for LISTEN); the caller closes it."""
        try:
            return psycopg.connect(
                self.url, autocommit=autocommit, connect_timeout=int(self.connect_timeout)
            )
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(
                f"cannot connect to PostgreSQL at {self.display_url}: {_first_line(exc)}"
            ) from None

    def _pool(self) -> ConnectionPool:
        pid = pids.current()
        pool = self._pool_obj
        if pool is not None and self._pool_pid == pid:
            return pool
        with self._lock:
            if self._pool_obj is None or self._pool_pid != pid:
                # An inherited pool is dropped, not closed: its sockets are the parent's.
                self._pool_obj = None
                self._ensure_schema()
                self._pool_obj = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=max(1, self.pool_size),
                    kwargs={"autocommit": True},
                    timeout=self.connect_timeout,
                    open=True,
                    name=f"r13-{pid}",
                )
                self._pool_pid = pid
            return self._pool_obj

    def _ensure_schema(self) -> None:
        with self.connect() as conn:
            if self.auto_migrate:
                migrations.migrate(conn)
                return
            version = migrations.current_version(conn)
            migrations.check_not_newer(version)
            if version < migrations.latest():
                raise SchemaPending(
                    f"the PostgreSQL database is at schema version {version}, this r13 needs "
                    f"{migrations.latest()}: run `r13 db migrate` (R13_AUTO_MIGRATE=0)"
                )

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection for the block (returned to the pool after)."""
        try:
            with self._pool().connection() as conn:
                yield conn
        except PoolTimeout:
            raise StorageUnavailable(
                f"no PostgreSQL connection to {self.display_url} within {self.connect_timeout:g} s"
            ) from None
        except psycopg.OperationalError as exc:
            # The server went away mid-session, or a deadlock or lock timeout rolled the
            # transaction back: nothing was committed; the client may retry (503).
            raise StorageUnavailable(
                f"PostgreSQL at {self.display_url}: {_first_line(exc)}"
            ) from exc

    @contextmanager
    def transaction(self, changes: ChangeSignal | None = None) -> Iterator[PgTxn]:
        """``BEGIN`` ... ``COMMIT`` on a pooled connection; ``ROLLBACK`` on any exception.

        ``changes`` is bumped (and so NOTIFYed) after the commit if a statement
        changed a row; never for a rollback.
        """
        with self.connection() as conn, conn.transaction():
            txn = PgTxn(conn)
            yield txn
        if changes is not None and txn.changed:
            changes.bump()

    # The SQLite helper's name, for code written against both.
    _transaction = transaction

    def fetchone(self, sql: str, params: Params | None = None) -> Any:
        """The first row of one autocommit statement, or None."""
        with self.connection() as conn:
            return conn.execute(sql, params).fetchone()

    def fetchall(self, sql: str, params: Params | None = None) -> list[Any]:
        """Every row of one autocommit statement."""
        with self.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Params | None = None) -> int:
        """One autocommit statement; the rows it changed."""
        with self.connection() as conn:
            return conn.execute(sql, params).rowcount

    def notify(self, channel: str, payload: str) -> None:
        """``SELECT pg_notify(channel, payload)`` (autocommit: sent at once)."""
        self.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    # -- schema ------------------------------------------------------------------------

    def schema_version(self) -> tuple[int, int]:
        """(the database's version, the version this code knows)."""
        with self.connect() as conn:
            return migrations.current_version(conn), migrations.latest()

    def migrate(self) -> list[int]:
        """Apply pending migrations now (under the lock); the versions applied."""
        with self.connect() as conn:
            return migrations.migrate(conn)

    def close(self) -> None:
        """Close this process's pool (an inherited one is left alone)."""
        with self._lock:
            pool, self._pool_obj = self._pool_obj, None
            if pool is not None and self._pool_pid == pids.current():
                pool.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
