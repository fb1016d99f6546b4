"""The PostgreSQL schema: versioned migrations, applied once however many nodes start at once.

:data:`MIGRATIONS` is an ordered list of :class:`Step`; a database's version is
the number of steps applied, recorded one row per step in ``r13_schema``
(version, description, applied_at). :func:`migrate` runs in ONE transaction
that first takes ``pg_advisory_xact_lock(`` :data:`MIGRATION_LOCK` ``)``: when
several nodes start together, one migrates and the others wait, then find
nothing left to do. A crash or an error rolls the whole run back: the database
stays at its previous version. A database whose version is above
``len(MIGRATIONS)`` (written by a newer r13) is refused with
:class:`~r13core.errors.SchemaTooNew`, naming both versions; nothing is touched.

How to add a step (tables of a new concern, a new column, a data fix):

* APPEND a ``Step("what it does", sql)`` at the END of :data:`MIGRATIONS`; never
  edit, reorder or remove a step already released — existing databases have it.
  Its version is its position (1-based).
* ``sql`` is a string of statements separated by ``;`` (no ``;`` inside a
  statement: give a tuple of whole statements then, e.g. for a function body),
  or a callable taking the open :class:`psycopg.Connection` (inside the
  migration's transaction) for what SQL alone cannot do.
* No ``CREATE INDEX CONCURRENTLY`` or ``VACUUM``: every step runs inside the one
  transaction.
* The SQLite backend has its own list (r13core/storage/sqlite/migrations.py);
  a concern stored in both gets a step in each.

``r13 db status`` / ``r13 db migrate`` (app/cli/db_cmd.py) show and apply them;
``r13 serve`` applies them at start unless R13_AUTO_MIGRATE=0 (docs/storage.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from r13core.cluster.schema import STATEMENTS as CLUSTER_STATEMENTS
from r13core.errors import SchemaTooNew
from r13core.storage.package_rows import compact, rows_values, split

MIGRATION_LOCK: Final = 0x7231335F4D494752  # "r13_MIGR": the advisory lock every migrator takes


@dataclass(frozen=True)
class Step:
    """One migration: what it does, and the SQL (or a callable of the connection) that does it."""

    description: str
    sql: str | tuple[str, ...] | Callable[[Any], None]


_AUDIT_APPEND_ONLY: Final = (
    """CREATE FUNCTION r13_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION r13_audit_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION r13_audit_append_only()""",
)

_BASE: Final = """
CREATE SEQUENCE package_rev;
CREATE TABLE packages (
    name TEXT PRIMARY KEY,
    rev BIGINT NOT NULL,
    doc TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE tarballs (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha512 TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX tarballs_sha512 ON tarballs (sha512);
CREATE TABLE used_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha512 TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE renders (
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    rev BIGINT NOT NULL,
    key TEXT NOT NULL,
    body BYTEA NOT NULL,
    gzip BYTEA NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (name, kind)
);
CREATE TABLE advisories (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    package TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX advisories_package ON advisories (package);
CREATE TABLE principal_names (
    folded TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    permission INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    owner TEXT,
    rate_limit INTEGER,
    cidr TEXT NOT NULL DEFAULT '[]',
    packages TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    last_used DOUBLE PRECISION,
    use_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_owner ON api_keys (owner);
CREATE TABLE ip_blocks (
    ip TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    kind TEXT NOT NULL DEFAULT 'manual'
);
CREATE TABLE web_logins (
    id TEXT PRIMARY KEY,
    done_hash TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    username TEXT
);
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    ip TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE TABLE security_counters (
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (kind, label)
);
CREATE TABLE package_usage (
    package TEXT NOT NULL,
    kind TEXT NOT NULL,
    day TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (package, kind, day)
);
CREATE INDEX package_usage_kind_day ON package_usage (kind, day);
CREATE TABLE uplink_packuments (
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    upstream_etag TEXT,
    fetched_ms BIGINT NOT NULL,
    body BYTEA NOT NULL,
    gzip BYTEA NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (name, kind)
);
CREATE TABLE uplink_dists (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    url TEXT NOT NULL,
    integrity TEXT NOT NULL,
    shasum TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE uplink_tarballs (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha512 TEXT NOT NULL,
    size BIGINT NOT NULL,
    fetched_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX uplink_tarballs_sha512 ON uplink_tarballs (sha512);
CREATE TABLE uplink_overrides (
    name TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE blobs (
    sha512 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    chunks INTEGER NOT NULL,
    touched DOUBLE PRECISION NOT NULL
);
CREATE TABLE blob_chunks (
    sha512 TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (sha512, seq)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL
"""

_HOOKS: Final = """
CREATE TABLE hooks (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    last_delivery_ms BIGINT,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX hooks_target ON hooks (type, name);
CREATE INDEX hooks_owner ON hooks (owner, created_ms);
CREATE TABLE hook_events (
    id BIGSERIAL PRIMARY KEY,
    package TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE hook_deliveries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    hook_id TEXT NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL REFERENCES hook_events (id),
    package TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    next_ms BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    done_ms BIGINT
);
CREATE INDEX hook_deliveries_due ON hook_deliveries (next_ms) WHERE state = 'pending';
CREATE INDEX hook_deliveries_order ON hook_deliveries (hook_id, package, seq)
    WHERE state = 'pending';
CREATE INDEX hook_deliveries_hook ON hook_deliveries (hook_id, seq);
CREATE INDEX hook_deliveries_done ON hook_deliveries (done_ms) WHERE done_ms IS NOT NULL;
CREATE INDEX hook_deliveries_event ON hook_deliveries (event_id);
CREATE TABLE hook_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    hook_id TEXT NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    status INTEGER,
    error TEXT,
    duration_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX hook_attempts_hook ON hook_attempts (hook_id, id);
CREATE INDEX hook_attempts_delivery ON hook_attempts (delivery_id)
"""


def _version_rows(conn: Any) -> None:
    """One row per version (r13core/storage/package_rows.py): existing documents split,
    each keeping its rev (its document, as read, is the same: cached renders stay valid)."""
    conn.execute("ALTER TABLE packages ADD COLUMN layout SMALLINT NOT NULL DEFAULT 0")
    conn.execute(
        """CREATE TABLE package_versions (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            pos INTEGER NOT NULL,
            manifest TEXT NOT NULL,
            time TEXT NOT NULL,
            attestations TEXT,
            PRIMARY KEY (name, version)
        )"""
    )
    conn.execute("CREATE UNIQUE INDEX package_versions_pos ON package_versions (name, pos)")
    for name, doc in conn.execute("SELECT name, doc FROM packages").fetchall():
        layout, top, rows = split(json.loads(doc))
        conn.execute(
            "UPDATE packages SET doc = %s, layout = %s WHERE name = %s",
            (compact(top), layout, name),
        )
        if rows:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO package_versions "
                    "(name, version, pos, manifest, time, attestations) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    rows_values(name, rows),
                )


# The ordered list; a database's version is how many of these it has had. APPEND ONLY.
MIGRATIONS: Final[list[Step]] = [
    Step(
        "the whole schema: packages, identity, audit, advisories, counters, usage, "
        "uplink cache, blobs",
        _BASE,
    ),
    Step("the audit log is append-only (triggers)", _AUDIT_APPEND_ONLY),
    Step(
        "the cluster: the record's row, events of every node, heartbeats, rate limits",
        CLUSTER_STATEMENTS,
    ),
    Step(
        "webhooks (r13core/storage/hooks.py): hooks, event bodies, the durable delivery "
        "queue, the delivery log",
        _HOOKS,
    ),
    Step(
        "a package's versions as rows beside a small head, so a publish's cost does not "
        "grow with the package (r13core/storage/package_rows.py)",
        _version_rows,
    ),
]


def latest() -> int:
    """The version this code migrates to: the number of steps it knows."""
    return len(MIGRATIONS)


_CREATE_TABLE: Final = """CREATE TABLE IF NOT EXISTS r13_schema (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


def current_version(conn: Any) -> int:
    """The database's version (0 for an empty database), read without a lock."""
    row = conn.execute("SELECT to_regclass('r13_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM r13_schema").fetchone()
    return int(version)


def check_not_newer(version: int) -> None:
    """SchemaTooNew if ``version`` is above what this code knows."""
    if version > latest():
        raise SchemaTooNew(
            f"the PostgreSQL database is at schema version {version}, newer than this r13 "
            f"knows (version {latest()}): upgrade r13 before using this database"
        )


def migrate(conn: Any) -> list[int]:
    """Apply the missing steps in one transaction under the migration lock; the versions applied.

    ``conn`` is an autocommit :class:`psycopg.Connection`; SchemaTooNew (and
    nothing touched) if the database is newer than this code.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(_CREATE_TABLE)
        version = current_version(conn)
        check_not_newer(version)
        for number, step in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            if callable(step.sql):
                step.sql(conn)
            else:
                statements = step.sql.split(";") if isinstance(step.sql, str) else step.sql
                for statement in statements:
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(
                "INSERT INTO r13_schema (version, description) VALUES (%s, %s)",
                (number, step.description),
            )
            applied.append(number)
    return applied
