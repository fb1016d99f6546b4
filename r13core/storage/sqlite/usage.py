"""The usage concern (r13core/storage/usage.py) in SQLite.

One table, ``package_usage (package, kind, day) -> count`` (migration 4 in
r13core/storage/sqlite/migrations.py). The primary key serves a package's
series; an index on ``(kind, day)`` serves the totals per day and the top of a
range.
"""

from __future__ import annotations

from collections.abc import Iterator

from r13core.storage.sqlite.connection import SQLiteDatabase
from r13core.storage.usage import Delta, UsageStorage


class SQLiteUsage(SQLiteDatabase, UsageStorage):
    """Per-package daily counts in the SQLite file."""

    def add_usage(self, deltas: list[Delta]) -> None:
        """Add the deltas in one transaction."""
        if not deltas:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO package_usage (day, package, kind, count) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (package, kind, day) DO UPDATE SET count = count + excluded.count",
                deltas,
            )

    def usage_days(
        self, kind: str, first: str, last: str, package: str | None = None
    ) -> list[tuple[str, int]]:
        """Daily counts of one package, or of all."""
        if package is None:
            rows: Iterator[tuple[str, int]] = self._conn().execute(
                "SELECT day, sum(count) FROM package_usage "
                "WHERE kind = ? AND day BETWEEN ? AND ? GROUP BY day ORDER BY day",
                (kind, first, last),
            )
        else:
            rows = self._conn().execute(
                "SELECT day, count FROM package_usage "
                "WHERE package = ? AND kind = ? AND day BETWEEN ? AND ? ORDER BY day",
                (package, kind, first, last),
            )
        return [(str(day), int(n)) for day, n in rows if n]

    def usage_top(self, kind: str, first: str, last: str, limit: int) -> list[tuple[str, int]]:
        """The packages with the most counts over the range."""
        rows = self._conn().execute(
            "SELECT package, sum(count) AS n FROM package_usage "
            "WHERE kind = ? AND day BETWEEN ? AND ? GROUP BY package HAVING n > 0 "
            "ORDER BY n DESC, package LIMIT ?",
            (kind, first, last, limit),
        )
        return [(str(p), int(n)) for p, n in rows]
