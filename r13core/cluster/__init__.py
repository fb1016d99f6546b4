"""Several r13 nodes over one PostgreSQL: what passes between them (docs/cluster.md).

Cluster mode is on exactly when R13_DATABASE_URL is ``postgresql://``; with SQLite
nothing here is used. The parts, each in its own module:

- ``node.py`` — the node's id (R13_NODE_ID or one kept in the data dir);
- ``database.py`` — the cluster's own connections (one per process, one to listen);
- ``schema.py`` — its tables (the record's row, events, nodes, rate limits);
- ``record.py`` — the 13-byte record of truth in the database, each node's live copy;
- ``events.py`` — the live channel's events published to, and taken in from, every node;
- ``listener.py`` — the node's one LISTEN connection and the resync after each (re)connect;
- ``heartbeat.py`` — each node's heartbeat row and the cluster's view for ``/_api/cluster``;
- ``ratelimit.py`` — cluster-wide rate limits (R13_RATE_LIMIT_SCOPE=cluster).

r13core/services.py builds them (:class:`Cluster`); the storage's own change
signals (keys, users, blocks, packuments) are the PostgreSQL backend's
(r13core/storage/postgres/), which NOTIFY ``r13_signal``; the listener takes them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from r13core.cluster.database import ClusterDB
from r13core.cluster.node import node_id as node_id
from r13core.settings import Settings


@dataclass(frozen=True)
class Cluster:
    """This node's place in the cluster: who it is, where it says it is, the database."""

    db: ClusterDB
    node_id: str
    node_url: str
    stale_after_ms: int

    @classmethod
    def of(cls, settings: Settings) -> Cluster:
        """The cluster of ``settings`` (only when :attr:`Settings.clustered`)."""
        url = settings.storage.database_url
        if url is None or not settings.clustered:
            raise ValueError("not a node of a cluster: R13_DATABASE_URL is not postgresql://")
        return cls(
            db=ClusterDB(url),
            node_id=node_id(settings.data_dir, settings.cluster.node_id),
            node_url=settings.cluster.node_url or settings.server.public_url,
            stale_after_ms=settings.cluster.stale_after_ms,
        )


__all__ = ["Cluster", "ClusterDB", "node_id"]
