"""The counters concern (r13core/storage/counters.py) in SQLite.

Table ``security_counters (kind, label) -> count``; a batch of deltas is one
upsert per row in one transaction.
"""

from __future__ import annotations

from r13core.storage.counters import CountersStorage, CountRow
from r13core.storage.sqlite.connection import SQLiteDatabase


class SQLiteCounters(SQLiteDatabase, CountersStorage):
    """Shared counters in the SQLite file."""

    def add_counters(self, deltas: list[CountRow]) -> None:
        """Add deltas in one transaction."""
        if not deltas:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO security_counters (kind, label, count) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, label) DO UPDATE SET count = count + excluded.count",
                deltas,
            )

    def counters(self) -> list[CountRow]:
        """Every counter."""
        rows = self._conn().execute(
            "SELECT kind, label, count FROM security_counters ORDER BY kind, label"
        )
        return [(r[0], r[1], int(r[2])) for r in rows]
