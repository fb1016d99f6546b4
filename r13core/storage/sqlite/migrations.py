"""The SQLite schema: numbered migrations applied in order when a file is first opened.

``PRAGMA user_version`` says how many a file has had; :func:`migrate` applies the
rest inside one ``BEGIN IMMEDIATE`` transaction (r13core/storage/sqlite/connection.py
does it once per process), so a crash leaves the file at its previous version
and every process of the data dir sees the new one at once. The list only ever
grows at its end: existing databases must open. Most steps are SQL; the
functions below do what SQL alone cannot (each runs inside that transaction).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any, Final

from r13core.errors import SchemaPending, SchemaTooNew
from r13core.storage.audit import AUDIT_GENESIS, audit_hash
from r13core.storage.package_rows import compact, rows_values, split

KEY_PRINCIPAL = "key:"  # r13core.keys.KEY_PRINCIPAL (storage does not import keys)


def principals(conn: sqlite3.Connection) -> None:
    """Users and keys get one name space; bare keys become ``key:<id>`` in package documents.

    * ``principal_names`` records every name a user or key has had (ignoring case),
      so a user can never be created with a key's id, nor a key with a user's name,
      nor a stranger with a removed user's name. Keys are entered first: where a
      user and a key already share a name, the key keeps it.
    * Maintainers and ``_npmUser`` entries written for a bare key (its plain id)
      are renamed ``key:<id>``, the name a bare key acts under from now on. When a
      user has the same name as a bare key, the entry is the key's if the key is
      older than the user (the user came later, as the review's attack did), else
      the user's.
    * Approved web logins kept their token in clear until collected: those rows
      go and their keys are revoked (npm has to log in again).
    """
    conn.execute(
        "CREATE TABLE principal_names (name TEXT PRIMARY KEY COLLATE NOCASE, "
        "kind TEXT NOT NULL, created REAL NOT NULL)"
    )
    conn.execute(
        "INSERT OR IGNORE INTO principal_names (name, kind, created) "
        "SELECT id, 'key', created FROM api_keys ORDER BY created, id"
    )
    conn.execute(
        "INSERT OR IGNORE INTO principal_names (name, kind, created) "
        "SELECT name, 'user', created FROM users ORDER BY created, name"
    )
    users = {
        name: float(created) for name, created in conn.execute("SELECT name, created FROM users")
    }
    bare: dict[str, float] = {}
    for key_id, created in conn.execute("SELECT id, created FROM api_keys WHERE owner IS NULL"):
        if key_id not in users or float(created) <= users[key_id]:
            bare[key_id] = float(created)
    if bare:
        _rename_bare_keys(conn, set(bare))
    rows = conn.execute("SELECT token FROM web_logins WHERE token IS NOT NULL").fetchall()
    for (token,) in rows:
        digest = hashlib.sha256(str(token).encode()).hexdigest()
        conn.execute("UPDATE api_keys SET revoked = 1 WHERE secret_hash = ?", (digest,))
    conn.execute("DELETE FROM web_logins WHERE token IS NOT NULL")


def _rename(person: Any, bare: set[str]) -> bool:
    if isinstance(person, dict) and person.get("name") in bare:
        person["name"] = KEY_PRINCIPAL + person["name"]
        return True
    return False


def _rename_bare_keys(conn: sqlite3.Connection, bare: set[str]) -> None:
    rows = conn.execute("SELECT name, doc FROM packages").fetchall()
    for name, text in rows:
        doc = json.loads(text)
        changed = False
        for person in doc.get("maintainers") or []:
            changed |= _rename(person, bare)
        for manifest in (doc.get("versions") or {}).values():
            if not isinstance(manifest, dict):
                continue
            changed |= _rename(manifest.get("_npmUser"), bare)
            for person in manifest.get("maintainers") or []:
                changed |= _rename(person, bare)
        if not changed:
            continue
        (rev,) = conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
        # The search summary is rebuilt from the document until the next change saves one.
        conn.execute(
            "UPDATE packages SET rev = ?, doc = ?, summary = '{}' WHERE name = ?",
            (rev, json.dumps(doc, separators=(",", ":")), name),
        )
        conn.execute("DELETE FROM renders WHERE name = ?", (name,))


def audit_chain(conn: sqlite3.Connection) -> None:
    """Chain the audit log: each event stores the previous event's hash and its own.

    Events written before this migration are chained here, in id order (the
    update trigger is lifted for this one transaction and put back).
    """
    conn.execute("ALTER TABLE audit_log ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE audit_log ADD COLUMN hash TEXT NOT NULL DEFAULT ''")
    conn.execute("DROP TRIGGER audit_log_no_update")
    prev = AUDIT_GENESIS
    rows = conn.execute(
        "SELECT id, at, actor, action, target, ip, detail FROM audit_log ORDER BY id"
    ).fetchall()
    for event_id, at, actor, action, target, ip, detail in rows:
        digest = audit_hash(prev, int(event_id), float(at), actor, action, target, ip, detail)
        conn.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, event_id)
        )
        prev = digest
    conn.execute(UPDATE_TRIGGER)


def version_rows(conn: sqlite3.Connection) -> None:
    """One row per version (r13core/storage/package_rows.py): existing documents split.

    Each package keeps its rev (its document, as read, is the same), so renders cached
    for it stay valid.
    """
    conn.execute("ALTER TABLE packages ADD COLUMN layout INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        """CREATE TABLE package_versions (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            pos INTEGER NOT NULL,
            manifest TEXT NOT NULL,
            time TEXT NOT NULL,
            attestations TEXT,
            PRIMARY KEY (name, version)
        ) WITHOUT ROWID"""
    )
    conn.execute("CREATE UNIQUE INDEX package_versions_pos ON package_versions (name, pos)")
    for name, doc in conn.execute("SELECT name, doc FROM packages").fetchall():
        layout, top, rows = split(json.loads(doc))
        conn.execute(
            "UPDATE packages SET doc = ?, layout = ? WHERE name = ?",
            (compact(top), layout, name),
        )
        conn.executemany(
            "INSERT INTO package_versions (name, version, pos, manifest, time, attestations) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows_values(name, rows),
        )


UPDATE_TRIGGER = """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
   BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"""


# A migration is a script, a tuple of whole statements, or a function of the
# connection (below) for what SQL cannot do alone.
Migration = str | tuple[str, ...] | Callable[[sqlite3.Connection], None]
_MIGRATIONS: Final[tuple[Migration, ...]] = (
    # 1: the first schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta (key, value) VALUES ('seq', 0);
    CREATE TABLE packages (
        name TEXT PRIMARY KEY,
        rev INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE TABLE tarballs (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        sha512 TEXT NOT NULL,
        size INTEGER NOT NULL,
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
        rev INTEGER NOT NULL,
        key TEXT NOT NULL,
        body BLOB NOT NULL,
        gzip BLOB NOT NULL,
        etag TEXT NOT NULL,
        PRIMARY KEY (name, kind)
    );
    CREATE TABLE advisories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        package TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX advisories_package ON advisories (package);
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL UNIQUE,
        permission INTEGER NOT NULL,
        created REAL NOT NULL,
        expires REAL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: a search summary per package, so search never parses whole documents.
    """
    ALTER TABLE packages ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
    """,
    # 3: identity: users, key owners/limits/scopes/usage, IP blocks, the append-only
    # audit log, shared security counters, pending web logins. A tuple: the triggers
    # hold semicolons, so each statement is given whole.
    (
        "ALTER TABLE api_keys ADD COLUMN owner TEXT",
        "ALTER TABLE api_keys ADD COLUMN rate_limit INTEGER",
        "ALTER TABLE api_keys ADD COLUMN cidr TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE api_keys ADD COLUMN packages TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE api_keys ADD COLUMN description TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE api_keys ADD COLUMN last_used REAL",
        "ALTER TABLE api_keys ADD COLUMN use_count INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX api_keys_owner ON api_keys (owner)",
        """CREATE TABLE users (
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            email TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL
        )""",
        """CREATE TABLE ip_blocks (
            ip TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL
        )""",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            ip TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX audit_log_action ON audit_log (action, id)",
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TABLE security_counters (
            kind TEXT NOT NULL,
            label TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (kind, label)
        )""",
        """CREATE TABLE web_logins (
            id TEXT PRIMARY KEY,
            done_hash TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            username TEXT,
            token TEXT
        )""",
    ),
    # 4: per-package daily usage counts (r13core/storage/sqlite/usage.py). The primary
    # key serves a package's series; the index the totals per day and a range's top.
    (
        """CREATE TABLE package_usage (
            package TEXT NOT NULL,
            kind TEXT NOT NULL,
            day TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (package, kind, day)
        ) WITHOUT ROWID""",
        "CREATE INDEX package_usage_kind_day ON package_usage (kind, day)",
    ),
    # 5: blocks have a kind: 'manual' (an admin's, refuses everything) or 'auto' (from
    # strikes; a request with a valid key passes). Older automatic blocks are the
    # ones whose reason r13 wrote ("too many ...").
    (
        "ALTER TABLE ip_blocks ADD COLUMN kind TEXT NOT NULL DEFAULT 'manual'",
        "UPDATE ip_blocks SET kind = 'auto' WHERE reason LIKE 'too many %'",
    ),
    # 6: one name space for users and keys; bare keys named key:<id> in documents;
    # no web-login token kept in clear.
    principals,
    # 7: the audit log becomes a hash chain.
    audit_chain,
    # 8: the uplink cache (r13core/storage/uplink_cache.py): proxied packuments by name
    # and kind with the upstream's ETag and fetch time, each version's upstream tarball
    # URL and integrity, verified tarballs (blobs shared with local ones), and the
    # admin overrides for publishing a name the upstream has.
    (
        """CREATE TABLE uplink_packuments (
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            upstream_etag TEXT,
            fetched_ms INTEGER NOT NULL,
            body BLOB NOT NULL,
            gzip BLOB NOT NULL,
            etag TEXT NOT NULL,
            PRIMARY KEY (name, kind)
        )""",
        """CREATE TABLE uplink_dists (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            url TEXT NOT NULL,
            integrity TEXT NOT NULL,
            shasum TEXT NOT NULL,
            PRIMARY KEY (name, version)
        ) WITHOUT ROWID""",
        """CREATE TABLE uplink_tarballs (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            sha512 TEXT NOT NULL,
            size INTEGER NOT NULL,
            fetched_ms INTEGER NOT NULL,
            PRIMARY KEY (name, version)
        ) WITHOUT ROWID""",
        "CREATE INDEX uplink_tarballs_sha512 ON uplink_tarballs (sha512)",
        """CREATE TABLE uplink_overrides (
            name TEXT PRIMARY KEY,
            actor TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 9: webhooks (r13core/storage/hooks.py): the hooks, each event's body once, the
    # durable delivery queue (one row per event and hook, written by the package
    # change's own transaction) and the delivery log (one row per attempt).
    (
        """CREATE TABLE hooks (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            last_delivery_ms INTEGER,
            last_status INTEGER,
            last_error TEXT
        )""",
        "CREATE INDEX hooks_target ON hooks (type, name)",
        "CREATE INDEX hooks_owner ON hooks (owner, created_ms)",
        """CREATE TABLE hook_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            package TEXT NOT NULL,
            event TEXT NOT NULL,
            body TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE hook_deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            hook_id TEXT NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
            event_id INTEGER NOT NULL REFERENCES hook_events (id),
            package TEXT NOT NULL,
            event TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL,
            next_ms INTEGER NOT NULL,
            claimed_by TEXT,
            claimed_until INTEGER NOT NULL DEFAULT 0,
            last_status INTEGER,
            last_error TEXT,
            done_ms INTEGER
        )""",
        "CREATE INDEX hook_deliveries_due ON hook_deliveries (next_ms) WHERE state = 'pending'",
        "CREATE INDEX hook_deliveries_order ON hook_deliveries (hook_id, package, seq) "
        "WHERE state = 'pending'",
        "CREATE INDEX hook_deliveries_hook ON hook_deliveries (hook_id, seq)",
        "CREATE INDEX hook_deliveries_done ON hook_deliveries (done_ms) WHERE done_ms IS NOT NULL",
        "CREATE INDEX hook_deliveries_event ON hook_deliveries (event_id)",
        """CREATE TABLE hook_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            delivery_id TEXT NOT NULL,
            hook_id TEXT NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            at_ms INTEGER NOT NULL,
            status INTEGER,
            error TEXT,
            duration_ms REAL NOT NULL
        )""",
        "CREATE INDEX hook_attempts_hook ON hook_attempts (hook_id, id)",
        "CREATE INDEX hook_attempts_delivery ON hook_attempts (delivery_id)",
    ),
    # 10: a package's versions as rows beside a small head (a publish's cost does not
    # grow with the package: r13core/storage/package_rows.py).
    version_rows,
)


def latest() -> int:
    """The schema version this code migrates to: the number of migrations it knows."""
    return len(_MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    """The file's schema version (``PRAGMA user_version``)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def check_not_newer(version: int) -> None:
    """SchemaTooNew if ``version`` is above what this code knows."""
    if version > latest():
        raise SchemaTooNew(
            f"the SQLite database is at schema version {version}, newer than this r13 "
            f"knows (version {latest()}): upgrade r13 before using this database"
        )


def refuse_pending(conn: sqlite3.Connection) -> None:
    """SchemaPending (or SchemaTooNew) unless the file is at :func:`latest` (R13_AUTO_MIGRATE=0)."""
    version = user_version(conn)
    check_not_newer(version)
    if version < latest():
        raise SchemaPending(
            f"the SQLite database is at schema version {version}, this r13 needs "
            f"{latest()}: run `r13 db migrate` (R13_AUTO_MIGRATE=0)"
        )


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the migrations this file lacks, in order; call it inside ``BEGIN IMMEDIATE``.

    ``PRAGMA user_version`` counts those applied, and moves with them; the
    versions applied are returned. A file newer than this code is refused
    (SchemaTooNew), untouched.
    """
    version = user_version(conn)
    check_not_newer(version)
    applied: list[int] = []
    for number, script in enumerate(_MIGRATIONS, start=1):
        if number <= version:
            continue
        if callable(script):
            script(conn)
        else:
            statements = script.split(";") if isinstance(script, str) else script
            for statement in statements:
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        applied.append(number)
    return applied
