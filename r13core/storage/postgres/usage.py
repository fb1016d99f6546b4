"""The usage concern (r13core/storage/usage.py) in PostgreSQL.

One table, ``package_usage (package, kind, day) -> count``: the primary key
serves a package's series, an index on ``(kind, day)`` the totals per day and
the top of a range. Batches upsert in a fixed order (no deadlock between nodes).
"""

from __future__ import annotations

from r13core.storage.postgres.connection import PgDatabase
from r13core.storage.usage import Delta, UsageStorage


class PgUsage(PgDatabase, UsageStorage):
    """Per-package daily counts in PostgreSQL."""

    def add_usage(self, deltas: list[Delta]) -> None:
        """Add the deltas in one transaction."""
        if not deltas:
            return
        with self.transaction() as txn, txn.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO package_usage (day, package, kind, count) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (package, kind, day) DO UPDATE SET "
                "count = package_usage.count + excluded.count",
                sorted(deltas),
            )

    def usage_days(
        self, kind: str, first: str, last: str, package: str | None = None
    ) -> list[tuple[str, int]]:
        """Daily counts of one package, or of all."""
        if package is None:
            rows = self.fetchall(
                "SELECT day, sum(count) FROM package_usage "
                'WHERE kind = %s AND day BETWEEN %s AND %s GROUP BY day ORDER BY day COLLATE "C"',
                (kind, first, last),
            )
        else:
            rows = self.fetchall(
                "SELECT day, count FROM package_usage WHERE package = %s AND kind = %s "
                'AND day BETWEEN %s AND %s ORDER BY day COLLATE "C"',
                (package, kind, first, last),
            )
        return [(str(day), int(n)) for day, n in rows if n]

    def usage_top(self, kind: str, first: str, last: str, limit: int) -> list[tuple[str, int]]:
        """The packages with the most counts over the range."""
        rows = self.fetchall(
            "SELECT package, sum(count) AS n FROM package_usage "
            "WHERE kind = %s AND day BETWEEN %s AND %s GROUP BY package HAVING sum(count) > 0 "
            'ORDER BY n DESC, package COLLATE "C" LIMIT %s',
            (kind, first, last, limit),
        )
        return [(str(p), int(n)) for p, n in rows]
