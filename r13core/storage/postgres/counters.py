"""The counters concern (r13core/storage/counters.py) in PostgreSQL.

Table ``security_counters (kind, label) -> count``; a batch of deltas is one
upsert per row in one transaction, in a fixed order (two nodes' batches never
deadlock on each other's rows).
"""

from __future__ import annotations

from r13core.storage.counters import CountersStorage, CountRow
from r13core.storage.postgres.connection import PgDatabase


class PgCounters(PgDatabase, CountersStorage):
    """Shared counters in PostgreSQL."""

    def add_counters(self, deltas: list[CountRow]) -> None:
        """Add deltas in one transaction."""
        if not deltas:
            return
        with self.transaction() as txn, txn.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO security_counters (kind, label, count) VALUES (%s, %s, %s) "
                "ON CONFLICT (kind, label) DO UPDATE SET "
                "count = security_counters.count + excluded.count",
                sorted(deltas),
            )

    def counters(self) -> list[CountRow]:
        """Every counter."""
        rows = self.fetchall(
            'SELECT kind, label, count FROM security_counters ORDER BY kind COLLATE "C", '
            'label COLLATE "C"'
        )
        return [(r[0], r[1], int(r[2])) for r in rows]
