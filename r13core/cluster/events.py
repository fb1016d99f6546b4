"""Live-channel events across nodes: each node's events log (r13core/events.py) fed by all.

:class:`ClusterEventLog` is the events log of a node of a cluster. An event
appended on this node goes into its own log first (its live clients see it at
once, as on a single machine), then into the ``r13_events`` table with this
node as its origin, in one statement that also NOTIFYs ``r13_event`` at commit
(the whole event when it fits in :data:`MAX_NOTIFY_BYTES`, else its id; PostgreSQL
refuses payloads of 8000 bytes or more). The node's listener
(r13core/cluster/listener.py) receives the other nodes' events and appends them
to this node's log with ``"node": <origin>`` added to their data — through the
plain :class:`~r13core.events.EventLog`, so an imported event is never published
again (no echo).

Ids are given under a transaction-scoped advisory lock, so a higher id never
commits before a lower one: "the events after id N" is an exact question, and a
node that lost its connection catches up with it (``pos`` below) when it is back.
Topics in :data:`NODE_TOPICS` (the sampler's ``metrics``) stay on their node: each
node's samples reach the cluster through its heartbeat row instead.

Publishing must never fail the change it reports: a database error is logged
and the event stays on this node only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from r13core.cluster.database import ClusterDB
from r13core.events import EventLog, EventRecord

log = logging.getLogger("r13.cluster")

CHANNEL: Final = "r13_event"
NODE_TOPICS: Final = frozenset({"metrics"})
"""Topics that stay on the node that wrote them."""
MAX_NOTIFY_BYTES: Final = 7000
"""An event whose JSON is longer travels by id (the listener reads it from the table)."""
POSITION_FILE: Final = "run/cluster-events.pos"
_ADVISORY_KEY: Final = 1313002

_INSERT: Final = """
WITH lock AS (SELECT pg_advisory_xact_lock(%(key)s)),
ins AS (
    INSERT INTO r13_events (id, origin, ts, topic, data)
    SELECT nextval('r13_events_seq'), %(origin)s::text, %(ts)s::float8, %(topic)s::text,
           %(data)s::text FROM lock
    RETURNING id
)
SELECT id, pg_notify(%(channel)s::text, CASE WHEN %(inline)s::bool
    THEN json_build_object('id', id, 'origin', %(origin)s::text, 'ts', %(ts)s::float8,
                           'topic', %(topic)s::text, 'data', %(data)s::json)::text
    ELSE json_build_object('id', id, 'origin', %(origin)s::text)::text END)
FROM ins
"""


class ClusterEventLog(EventLog):
    """This node's events log, publishing what it appends to every other node."""

    def __init__(self, data_dir: str | os.PathLike[str], db: ClusterDB, node_id: str) -> None:
        super().__init__(data_dir)
        self.db = db
        self.node_id = node_id

    def append(self, topic: str, data: Mapping[str, Any]) -> EventRecord:
        """Append here, then publish to the cluster (unless a node-only topic)."""
        record = super().append(topic, data)
        if topic not in NODE_TOPICS:
            try:
                self.publish(record)
            except Exception as exc:  # the event stands here; the change is not undone
                log.warning(
                    "event %d (%s) not published to the cluster: %s", record.seq, topic, exc
                )
        return record

    def publish(self, record: EventRecord) -> int:
        """Insert ``record`` into the cluster's events and NOTIFY; its cluster id."""
        text = json.dumps(record.data, separators=(",", ":"), ensure_ascii=False)
        params = {
            "key": _ADVISORY_KEY,
            "origin": self.node_id,
            "ts": record.ts,
            "topic": record.topic,
            "data": text,
            "channel": CHANNEL,
            "inline": len(text.encode()) <= MAX_NOTIFY_BYTES,
        }
        with self.db.use() as conn:
            row = conn.execute(_INSERT, params).fetchone()
        assert row is not None
        return int(row[0])

    def import_remote(self, origin: str, topic: str, data: Mapping[str, Any]) -> EventRecord:
        """Append another node's event to this node's log, marked with its origin."""
        return EventLog.append(self, topic, {**data, "node": origin})


class Position:
    """The id of the last cluster event this node took in (``<data>/run/cluster-events.pos``),
    kept in a file so a worker that takes over the listener goes on from there."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / POSITION_FILE

    def get(self) -> int | None:
        """The last id taken in, None before this node ever listened."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return int.from_bytes(raw, "little") if len(raw) == 8 else None

    def set(self, seq: int) -> None:
        """Remember ``seq`` (one 8-byte write; the whole file replaced atomically)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, seq.to_bytes(8, "little"))
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
