"""The cluster's tables in PostgreSQL: one migration step of the PostgreSQL backend
(:data:`STATEMENTS`, appended to r13core/storage/postgres/migrations.py).

- ``r13_record``: the 13-byte record of truth, one row, with a version that every
  change moves on by one (the database orders concurrent changes);
- ``r13_events``: the live channel's events of every node, numbered in commit
  order (appends take a transaction-scoped advisory lock, so a higher id never
  commits before a lower one) and pruned after :data:`EVENTS_KEEP_SECONDS`;
- ``r13_nodes``: one row per node, its last heartbeat and latest sample;
- ``r13_rate_limits``: GCRA states when R13_RATE_LIMIT_SCOPE=cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the migrations list imports this module without loading psycopg
    import psycopg

EVENTS_KEEP_SECONDS: Final = 3600
"""Events older than this are deleted by the heartbeat (a node away longer resyncs whole)."""

STATEMENTS: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS r13_record (
        id smallint PRIMARY KEY CHECK (id = 1),
        raw bytea NOT NULL CHECK (length(raw) = 13),
        version bigint NOT NULL,
        updated timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS r13_events (
        id bigint PRIMARY KEY,
        origin text NOT NULL,
        ts double precision NOT NULL,
        topic text NOT NULL,
        data text NOT NULL,
        created timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE SEQUENCE IF NOT EXISTS r13_events_seq",
    "CREATE INDEX IF NOT EXISTS r13_events_created ON r13_events (created)",
    """CREATE TABLE IF NOT EXISTS r13_nodes (
        node_id text PRIMARY KEY,
        url text,
        pid integer,
        started timestamptz NOT NULL,
        heartbeat timestamptz NOT NULL,
        sample text
    )""",
    """CREATE TABLE IF NOT EXISTS r13_rate_limits (
        key text PRIMARY KEY,
        tat bigint NOT NULL,
        expires bigint NOT NULL,
        checked bigint NOT NULL,
        allowed boolean NOT NULL
    )""",
)


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the cluster's tables if they are missing (idempotent: the statements of the
    migration step, for tests of the cluster's parts on a bare database)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(1313001)")
        for statement in STATEMENTS:
            conn.execute(statement)
