"""The cluster's connections to PostgreSQL: one per process for its writes, one to listen.

A node borrows the PostgreSQL storage's pool (r13core/storage/postgres/connection.py)
for the cluster's few statements (the record's row, events, heartbeats,
cluster-wide rate limits); without one (tests of the parts alone) they go
through one autocommit connection per process and OS thread
(:func:`r13core.cooperative.thread_local`: a gevent worker's greenlets share it,
taking turns on a lock that is gevent's once the worker is patched). psycopg waits
on gevent's hub when gevent has patched the process, so a statement never stops
the worker. A connection that fails is dropped and the next use opens a new one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from r13core import cooperative, pids
from r13core.errors import StorageUnavailable

CONNECT_TIMEOUT = 5
"""Seconds a new connection may take before the attempt fails."""


Pooled = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
"""A pool's "lend me an autocommit connection" (the PostgreSQL storage's ``connection``)."""


class ClusterDB:
    """Connections to the cluster's database at ``url`` (see the module docstring).

    ``pooled``: the storage's pool to borrow from instead of a connection of its
    own per process (the storage applies the migrations, the cluster's tables
    included, on its first connection).
    """

    def __init__(self, url: str, *, pooled: Pooled | None = None) -> None:
        self.url = url
        self.pooled = pooled
        self._local = cooperative.thread_local()

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new autocommit connection of the caller's own (the listener's)."""
        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **kwargs)

    @contextlib.contextmanager
    def use(self) -> Iterator[psycopg.Connection[Any]]:
        """This process's connection (or one from the pool), held alone while the block runs.

        StorageUnavailable (503 over HTTP) when the server cannot be reached.
        """
        try:
            with self._use() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageUnavailable(f"the cluster's database cannot be reached: {first}") from None

    @contextlib.contextmanager
    def _use(self) -> Iterator[psycopg.Connection[Any]]:
        if self.pooled is not None:
            with self.pooled() as pooled:
                yield pooled
            return
        slot = self._local
        if getattr(slot, "pid", None) != pids.current():
            slot.pid, slot.conn, slot.lock = pids.current(), None, threading.Lock()
        with slot.lock:
            conn: psycopg.Connection[Any] | None = slot.conn
            if conn is None or conn.closed:
                conn = slot.conn = self.connect()
            try:
                yield conn
            except psycopg.OperationalError:
                slot.conn = None  # a broken connection: the next use opens a new one
                with contextlib.suppress(Exception):
                    conn.close()
                raise

    def close(self) -> None:
        """Close this process's connection (reopened by the next use)."""
        slot = self._local
        conn = getattr(slot, "conn", None) if getattr(slot, "pid", None) == pids.current() else None
        if conn is not None:
            slot.conn = None
            conn.close()
