"""The uplink cache concern (r13core/storage/uplink_cache.py) in SQLite.

Tables (migration 8 in r13core/storage/sqlite/migrations.py):
``uplink_packuments (name, kind) -> upstream_etag, fetched_ms, body, gzip, etag``,
``uplink_dists (name, version) -> url, integrity, shasum``,
``uplink_tarballs (name, version) -> sha512, size, fetched_ms`` (indexed by sha512:
the blob sweep and unpublish count these as references, r13core/storage/sqlite/packages.py),
``uplink_overrides (name) -> actor, created_ms``.
"""

from __future__ import annotations

from collections.abc import Iterator

from r13core.storage.sqlite.connection import SQLiteDatabase
from r13core.storage.uplink_cache import (
    CacheCounts,
    CachedPackument,
    CachedTarball,
    DistRecord,
    UplinkCacheStorage,
)


class SQLiteUplinkCache(SQLiteDatabase, UplinkCacheStorage):
    """The uplink cache in the SQLite file."""

    def cached_packument(self, name: str, kind: str) -> CachedPackument | None:
        """One indexed lookup."""
        row = (
            self._conn()
            .execute(
                "SELECT upstream_etag, fetched_ms, body, gzip, etag FROM uplink_packuments "
                "WHERE name = ? AND kind = ?",
                (name, kind),
            )
            .fetchone()
        )
        if row is None:
            return None
        return CachedPackument(
            name, kind, row[0], int(row[1]), bytes(row[2]), bytes(row[3]), str(row[4])
        )

    def save_packument(self, record: CachedPackument, dists: list[DistRecord]) -> None:
        """The packument and its dists in one transaction."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO uplink_packuments "
                "(name, kind, upstream_etag, fetched_ms, body, gzip, etag) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, kind) DO UPDATE SET "
                "upstream_etag = excluded.upstream_etag, fetched_ms = excluded.fetched_ms, "
                "body = excluded.body, gzip = excluded.gzip, etag = excluded.etag",
                (
                    record.name,
                    record.kind,
                    record.upstream_etag,
                    record.fetched_ms,
                    record.body,
                    record.gzip,
                    record.etag,
                ),
            )
            conn.executemany(
                "INSERT INTO uplink_dists (name, version, url, integrity, shasum) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, version) DO UPDATE SET "
                "url = excluded.url, integrity = excluded.integrity, shasum = excluded.shasum",
                [(d.name, d.version, d.url, d.integrity, d.shasum) for d in dists],
            )

    def touch_packument(self, name: str, kind: str, fetched_ms: int) -> bool:
        """Move ``fetched_ms`` forward (never back)."""
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE uplink_packuments SET fetched_ms = max(fetched_ms, ?) "
                "WHERE name = ? AND kind = ?",
                (fetched_ms, name, kind),
            )
            return cur.rowcount > 0

    def cached_dist(self, name: str, version: str) -> DistRecord | None:
        """One indexed lookup."""
        row = (
            self._conn()
            .execute(
                "SELECT url, integrity, shasum FROM uplink_dists WHERE name = ? AND version = ?",
                (name, version),
            )
            .fetchone()
        )
        return None if row is None else DistRecord(name, version, row[0], row[1], row[2])

    def cached_tarball(self, name: str, version: str) -> CachedTarball | None:
        """One indexed lookup."""
        row = (
            self._conn()
            .execute(
                "SELECT sha512, size, fetched_ms FROM uplink_tarballs "
                "WHERE name = ? AND version = ?",
                (name, version),
            )
            .fetchone()
        )
        if row is None:
            return None
        return CachedTarball(name, version, str(row[0]), int(row[1]), int(row[2]))

    def save_tarball(self, record: CachedTarball) -> None:
        """Upsert the row."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO uplink_tarballs (name, version, sha512, size, fetched_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, version) DO UPDATE SET "
                "sha512 = excluded.sha512, size = excluded.size, fetched_ms = excluded.fetched_ms",
                (record.name, record.version, record.sha512, record.size, record.fetched_ms),
            )

    def remove_tarball_entry(self, name: str, version: str) -> bool:
        """Delete the row."""
        with self._transaction() as conn:
            cur = conn.execute(
                "DELETE FROM uplink_tarballs WHERE name = ? AND version = ?", (name, version)
            )
            return cur.rowcount > 0

    def remove_packument(self, name: str, kind: str) -> bool:
        """Delete the row."""
        with self._transaction() as conn:
            cur = conn.execute(
                "DELETE FROM uplink_packuments WHERE name = ? AND kind = ?", (name, kind)
            )
            return cur.rowcount > 0

    def cached_packuments(self) -> Iterator[tuple[str, str, int, int]]:
        """Read at once (no cursor left open across a caller's writes)."""
        rows = (
            self._conn()
            .execute(
                "SELECT name, kind, fetched_ms, length(body) FROM uplink_packuments "
                "ORDER BY name, kind"
            )
            .fetchall()
        )
        for name, kind, fetched, size in rows:
            yield str(name), str(kind), int(fetched), int(size)

    def cached_tarballs(self) -> Iterator[CachedTarball]:
        """Read at once."""
        rows = (
            self._conn()
            .execute(
                "SELECT name, version, sha512, size, fetched_ms FROM uplink_tarballs "
                "ORDER BY name, version"
            )
            .fetchall()
        )
        for name, version, sha512, size, fetched in rows:
            yield CachedTarball(str(name), str(version), str(sha512), int(size), int(fetched))

    def cache_counts(self) -> CacheCounts:
        """Two aggregate queries."""
        conn = self._conn()
        p, pb, p_old = conn.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0), min(fetched_ms) "
            "FROM uplink_packuments"
        ).fetchone()
        t, tb, t_old = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0), min(fetched_ms) FROM uplink_tarballs"
        ).fetchone()
        olds = [int(x) for x in (p_old, t_old) if x is not None]
        return CacheCounts(int(p), int(pb), int(t), int(tb), min(olds) if olds else None)

    def add_upstream_override(self, name: str, actor: str, created_ms: int) -> bool:
        """Insert unless present."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO uplink_overrides (name, actor, created_ms) VALUES (?, ?, ?)",
                (name, actor, created_ms),
            )
            return cur.rowcount > 0

    def remove_upstream_override(self, name: str) -> bool:
        """Delete the row."""
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM uplink_overrides WHERE name = ?", (name,))
            return cur.rowcount > 0

    def upstream_overrides(self) -> list[tuple[str, str, int]]:
        """By name."""
        rows = self._conn().execute(
            "SELECT name, actor, created_ms FROM uplink_overrides ORDER BY name"
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
