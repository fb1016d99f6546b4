"""The advisories concern (r13core/storage/advisories.py) in SQLite.

Table ``advisories (id AUTOINCREMENT, package, data)`` indexed by package; ids
are never reused.
"""

from __future__ import annotations

import json

from r13core.storage.advisories import AdvisoryRecord, AdvisoryStorage
from r13core.storage.packages import JSONDict
from r13core.storage.sqlite.connection import SQLiteDatabase, chunks


class SQLiteAdvisories(SQLiteDatabase, AdvisoryStorage):
    """Advisories in the SQLite file."""

    def add_advisory(self, package: str, data: JSONDict) -> int:
        """Store an advisory; its id."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT INTO advisories (package, data) VALUES (?, ?)",
                (package, json.dumps(data)),
            )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def advisories(self, packages: list[str] | None = None) -> list[AdvisoryRecord]:
        """Advisories for ``packages`` (all when None)."""
        conn = self._conn()
        if packages is None:
            rows = conn.execute("SELECT id, package, data FROM advisories ORDER BY id").fetchall()
        else:
            rows = []
            for chunk, marks in chunks(packages):
                rows.extend(
                    conn.execute(
                        f"SELECT id, package, data FROM advisories WHERE package IN ({marks})",
                        chunk,
                    ).fetchall()
                )
            rows.sort(key=lambda r: r[0])
        return [AdvisoryRecord(int(r[0]), r[1], json.loads(r[2])) for r in rows]

    def remove_advisory(self, advisory_id: int) -> bool:
        """Delete an advisory."""
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM advisories WHERE id = ?", (advisory_id,))
        return cur.rowcount > 0
