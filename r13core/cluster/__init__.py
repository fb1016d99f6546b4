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

r13core/services.py builds them (:class:`r13core.cluster.node.Cluster`); the storage's own change
signals (keys, users, blocks, packuments) are the PostgreSQL backend's
(r13core/storage/postgres/), which NOTIFY ``r13_signal``; the listener takes them in.
"""
