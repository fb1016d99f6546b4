"""The SQLite schema's data migrations: the steps that SQL alone cannot do.

Each function runs inside the migration's ``BEGIN IMMEDIATE`` transaction
(r13core/storage/sqlite.py ``_migrate``), so a crash leaves the database at the
previous version, and every process of the data dir sees the new one at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from r13core.storage.base import AUDIT_GENESIS, audit_hash

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


UPDATE_TRIGGER = """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
   BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"""
