"""The audit concern (r13core/storage/audit.py) in PostgreSQL.

Table ``audit_log (id, at, actor, action, target, ip, detail, prev_hash, hash)``;
triggers refuse UPDATE, DELETE and TRUNCATE (migration 2), so r13 itself can
only append. Appends from every node are serialised by
``pg_advisory_xact_lock(LOCK_AUDIT, 0)``: each reads the last event and chains
to it inside its transaction, so two nodes never fork the chain.
"""

from __future__ import annotations

import json
from typing import Any

from r13core.storage.audit import AuditLink, AuditRecord, AuditStorage, chained_row
from r13core.storage.packages import JSONDict
from r13core.storage.postgres.connection import LOCK_AUDIT, PgDatabase, PgTxn, dumps


class PgAudit(PgDatabase, AuditStorage):
    """The audit log in PostgreSQL."""

    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int:
        """Append an event chained to the last one, under the audit lock."""
        with self.transaction() as txn:
            return append_in(txn, at, actor, action, target, ip, detail)

    def audit_links(self, *, after: int = 0, limit: int = 1000) -> list[AuditLink]:
        """Events after ``after``, oldest first, as stored."""
        rows = self.fetchall(
            "SELECT id, at, actor, action, target, ip, detail, prev_hash, hash FROM audit_log "
            "WHERE id > %s ORDER BY id LIMIT %s",
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
        where = ["id < %s"]
        params: list[Any] = [before if before is not None else 2**62]
        if action is not None:
            where.append("action = %s")
            params.append(action)
        if actor is not None:
            where.append("actor = %s")
            params.append(actor)
        params.append(limit)
        rows = self.fetchall(
            "SELECT id, at, actor, action, target, ip, detail FROM audit_log "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
            params,
        )
        return [
            AuditRecord(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]))
            for r in rows
        ]


def append_in(
    txn: PgTxn, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
) -> int:
    """Append one chained event in the caller's transaction, under the audit lock (held
    until it commits); its id."""
    txn.lock(LOCK_AUDIT)
    last = txn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    row = chained_row(last, at, actor, action, target, ip, dumps(detail))
    txn.execute(
        "INSERT INTO audit_log (id, at, actor, action, target, ip, detail, prev_hash, "
        "hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        row,
    )
    return int(row[0])
