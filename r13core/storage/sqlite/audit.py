"""The audit concern (r13core/storage/audit.py) in SQLite.

Table ``audit_log (id, at, actor, action, target, ip, detail, prev_hash, hash)``;
triggers refuse UPDATE and DELETE (migrations 3 and 7), so r13 itself can only
append. Each append reads the last event and chains to it inside one
``BEGIN IMMEDIATE`` transaction, so two writers never fork the chain.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from r13core.storage.audit import AuditLink, AuditRecord, AuditStorage, chained_row
from r13core.storage.packages import JSONDict
from r13core.storage.sqlite.connection import SQLiteDatabase, dumps


class SQLiteAudit(SQLiteDatabase, AuditStorage):
    """The audit log in the SQLite file."""

    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int:
        """Append an event chained to the last one (triggers refuse UPDATE and DELETE)."""
        with self._transaction() as conn:
            return append_in(conn, at, actor, action, target, ip, detail)

    def audit_links(self, *, after: int = 0, limit: int = 1000) -> list[AuditLink]:
        """Events after ``after``, oldest first, as stored."""
        rows = self._conn().execute(
            "SELECT id, at, actor, action, target, ip, detail, prev_hash, hash FROM audit_log "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [
            AuditLink(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8])
            for r in rows
        ]

    def audit_events(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Newest first, paged by id."""
        where = ["id < ?"]
        params: list[Any] = [before if before is not None else 2**62]
        if action is not None:
            where.append("action = ?")
            params.append(action)
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        params.append(limit)
        rows = self._conn().execute(
            "SELECT id, at, actor, action, target, ip, detail FROM audit_log "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            params,
        )
        return [
            AuditRecord(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]))
            for r in rows
        ]


def append_in(
    conn: sqlite3.Connection,
    at: float,
    actor: str,
    action: str,
    target: str,
    ip: str,
    detail: JSONDict,
) -> int:
    """Append one chained event in the caller's write transaction (``BEGIN IMMEDIATE``:
    the last event read here is the last one there is); its id."""
    last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    row = chained_row(last, at, actor, action, target, ip, dumps(detail))
    conn.execute(
        "INSERT INTO audit_log (id, at, actor, action, target, ip, detail, prev_hash, "
        "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )
    return int(row[0])
