"""The node's one LISTEN connection: what the other nodes changed, brought into this node.

One worker of the node listens (a :class:`~r13core.locks.LeaderJob` over
``<data>/.r13-cluster.lock``: if it dies, another worker of the node takes over
within the election's poll). It listens on three channels:

- ``r13_signal`` (the storage's change signals, payload: the signal's name —
  ``auth_changes`` for keys, users and blocks, ``package_changes`` for packuments
  and caches): it bumps this node's local copy of that signal
  (``storage.signals()[name].local.bump()``), so every worker of the node drops
  what it cached, as a change made on this node would have made it;
- ``r13_record`` (r13core/cluster/record.py): a newer record is written into
  this node's live record, and the events log is nudged so every live channel
  hub of the node sends it at once;
- ``r13_event`` (r13core/cluster/events.py): another node's event is appended to
  this node's events log, with its origin.

NOTIFY is never replayed: a notification sent while this node had no connection
is lost. So on every (re)connect, after LISTEN and before waiting, the node
RESYNCS from the database: it bumps every local signal (every cache of the node
flushes), reloads the record from its row, and takes in the events after the
last id it took in (:class:`~r13core.cluster.events.Position`). A connection that
fails is retried every :attr:`ClusterListener.retry` s; a quiet one is checked
with ``SELECT 1`` every ``keepalive`` s, so a dead server is noticed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import psycopg

from r13core.cluster import events as cluster_events
from r13core.cluster import record as cluster_record
from r13core.cluster.database import ClusterDB
from r13core.cluster.events import ClusterEventLog, Position
from r13core.cluster.record import SharedRecord
from r13core.errors import InvalidValue
from r13core.locks import LeaderJob

log = logging.getLogger("r13.cluster")

SIGNAL_CHANNEL: Final = "r13_signal"
LOCK_FILE: Final = ".r13-cluster.lock"
CHANNELS: Final = (SIGNAL_CHANNEL, cluster_record.CHANNEL, cluster_events.CHANNEL)
CATCH_UP_BATCH: Final = 1000


class _Bumpable(Protocol):
    def bump(self) -> None: ...


class NodeSignal(Protocol):
    """A storage change signal of a cluster: ``local`` is this node's own counter."""

    @property
    def local(self) -> _Bumpable: ...


class ClusterListener(LeaderJob):
    """The per-node listener (see the module docstring)."""

    def __init__(
        self,
        db: ClusterDB,
        data_dir: str | os.PathLike[str],
        node_id: str,
        *,
        events: ClusterEventLog,
        record: SharedRecord,
        signals: Callable[[], Mapping[str, NodeSignal]],
        retry: float = 0.5,
        keepalive: float = 5.0,
        poll: float = 0.2,
    ) -> None:
        super().__init__(Path(data_dir) / LOCK_FILE, name="r13-cluster-listener", poll=poll)
        self.db = db
        self.node_id = node_id
        self.events = events
        self.record = record
        self.signals = signals
        self.retry = retry
        self.keepalive = keepalive
        self.position = Position(data_dir)
        self.resyncs = 0
        """How many times this process resynced (each (re)connect)."""
        self.connected = threading.Event()
        self._pos = 0

    # -- the loop -------------------------------------------------------------------------

    def lead(self, stop: threading.Event) -> None:
        """Listen until ``stop``, reconnecting (and resyncing) after every failure."""
        while not stop.is_set():
            try:
                self.listen(stop)
            except (psycopg.Error, OSError) as exc:
                log.warning("cluster listener lost its connection (%s); retrying", exc)
            finally:
                self.connected.clear()
            stop.wait(self.retry)

    def listen(self, stop: threading.Event) -> None:
        """One connection's life: LISTEN, resync, then take notifications until ``stop``."""
        with self.db.connect(application_name=f"r13-listener:{self.node_id}"[:63]) as conn:
            for channel in CHANNELS:
                conn.execute(f"LISTEN {channel}")
            self.resync(conn)
            self.connected.set()
            checked = time.monotonic()
            while not stop.is_set():
                # Taken out of the generator before acting: it holds the connection,
                # and a long event is read on it.
                notes = list(conn.notifies(timeout=0.25, stop_after=1))
                for note in notes:
                    self.handle(conn, note.channel, note.payload)
                if time.monotonic() - checked >= self.keepalive:
                    conn.execute("SELECT 1")
                    checked = time.monotonic()

    # -- resync ---------------------------------------------------------------------------

    def resync(self, conn: psycopg.Connection[Any]) -> None:
        """Bring this node up to the database: signals, the record, missed events."""
        for name, signal in self.signals().items():
            try:
                signal.local.bump()
            except OSError as exc:
                log.warning("cannot bump signal %s: %s", name, exc)
        row = conn.execute("SELECT version, raw FROM r13_record WHERE id = 1").fetchone()
        if row is not None and self.record.apply(int(row[0]), bytes(row[1])):
            self.events.nudge()
        known = self.position.get()
        if known is None:  # this node's first listen: from now, not the whole history
            got = conn.execute("SELECT coalesce(max(id), 0) FROM r13_events").fetchone()
            self._pos = int(got[0]) if got else 0
            self.position.set(self._pos)
        else:
            self._pos = known
            while True:
                rows = conn.execute(
                    "SELECT id, origin, topic, data FROM r13_events WHERE id > %s "
                    "ORDER BY id LIMIT %s",
                    (self._pos, CATCH_UP_BATCH),
                ).fetchall()
                for id_, origin, topic, data in rows:
                    self._deliver(int(id_), origin, topic, json.loads(data))
                if len(rows) < CATCH_UP_BATCH:
                    break
        self.resyncs += 1
        log.info("cluster listener of node %s resynced (pid %d)", self.node_id, os.getpid())

    # -- one notification -------------------------------------------------------------------

    def handle(self, conn: psycopg.Connection[Any], channel: str, payload: str) -> None:
        """Act on one notification (bad payloads are logged and dropped)."""
        try:
            if channel == SIGNAL_CHANNEL:
                signal = self.signals().get(payload)
                if signal is None:
                    log.warning("notification for an unknown signal %r", payload[:64])
                else:
                    signal.local.bump()
            elif channel == cluster_record.CHANNEL:
                version, raw = cluster_record.parse_payload(payload)
                if self.record.apply(version, raw):
                    self.events.nudge()
            elif channel == cluster_events.CHANNEL:
                self._event(conn, json.loads(payload))
        except (InvalidValue, ValueError, KeyError, TypeError) as exc:
            log.warning("bad %s notification dropped: %s", channel, exc)

    def _event(self, conn: psycopg.Connection[Any], note: dict[str, Any]) -> None:
        id_ = int(note["id"])
        if id_ <= self._pos:
            return
        if "data" in note:
            topic, data = note["topic"], note["data"]
            origin = note["origin"]
        else:  # too long for a notification: read it
            row = conn.execute(
                "SELECT origin, topic, data FROM r13_events WHERE id = %s", (id_,)
            ).fetchone()
            if row is None:
                return
            origin, topic, data = row[0], row[1], json.loads(row[2])
        self._deliver(id_, origin, topic, data)

    def _deliver(self, id_: int, origin: str, topic: str, data: Any) -> None:
        if origin != self.node_id and isinstance(data, dict):
            try:
                self.events.import_remote(origin, topic, data)
            except (OSError, ValueError) as exc:
                log.warning("event %d from node %s not taken in: %s", id_, origin, exc)
        self._pos = id_
        self.position.set(id_)
