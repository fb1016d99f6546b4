"""The uplink cache concern (r13core/storage/uplink_cache.py) in PostgreSQL.

Tables (migration 1): ``uplink_packuments (name, kind)``, ``uplink_dists
(name, version)``, ``uplink_tarballs (name, version)`` indexed by sha512 (the
blob sweep counts these as references, r13core/storage/postgres/packages.py),
``uplink_overrides (name)``. The same shapes as SQLite's
(r13core/storage/sqlite/uplink_cache.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from r13core.storage.postgres.connection import PgDatabase
from r13core.storage.uplink_cache import (
    CacheCounts,
    CachedPackument,
    CachedTarball,
    DistRecord,
    UplinkCacheStorage,
)


class PgUplinkCache(PgDatabase, UplinkCacheStorage):
    """The uplink cache in PostgreSQL."""

    def cached_packument(self, name: str, kind: str) -> CachedPackument | None:
        """One indexed lookup."""
        row = self.fetchone(
            "SELECT upstream_etag, fetched_ms, body, gzip, etag FROM uplink_packuments "
            "WHERE name = %s AND kind = %s",
            (name, kind),
        )
        if row is None:
            return None
        return CachedPackument(
            name, kind, row[0], int(row[1]), bytes(row[2]), bytes(row[3]), str(row[4])
        )

    def save_packument(self, record: CachedPackument, dists: list[DistRecord]) -> None:
        """The packument and its dists in one transaction."""
        with self.transaction() as txn:
            txn.execute(
                "INSERT INTO uplink_packuments "
                "(name, kind, upstream_etag, fetched_ms, body, gzip, etag) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name, kind) DO UPDATE SET "
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
            if dists:
                ordered = sorted(dists, key=lambda d: (d.name, d.version))
                with txn.conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO uplink_dists (name, version, url, integrity, shasum) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name, version) DO UPDATE SET "
                        "url = excluded.url, integrity = excluded.integrity, "
                        "shasum = excluded.shasum",
                        [(d.name, d.version, d.url, d.integrity, d.shasum) for d in ordered],
                    )

    def touch_packument(self, name: str, kind: str, fetched_ms: int) -> bool:
        """Move ``fetched_ms`` forward (never back)."""
        return (
            self.execute(
                "UPDATE uplink_packuments SET fetched_ms = greatest(fetched_ms, %s) "
                "WHERE name = %s AND kind = %s",
                (fetched_ms, name, kind),
            )
            > 0
        )

    def cached_dist(self, name: str, version: str) -> DistRecord | None:
        """One indexed lookup."""
        row = self.fetchone(
            "SELECT url, integrity, shasum FROM uplink_dists WHERE name = %s AND version = %s",
            (name, version),
        )
        return None if row is None else DistRecord(name, version, row[0], row[1], row[2])

    def cached_tarball(self, name: str, version: str) -> CachedTarball | None:
        """One indexed lookup."""
        row = self.fetchone(
            "SELECT sha512, size, fetched_ms FROM uplink_tarballs WHERE name = %s AND version = %s",
            (name, version),
        )
        if row is None:
            return None
        return CachedTarball(name, version, str(row[0]), int(row[1]), int(row[2]))

    def save_tarball(self, record: CachedTarball) -> None:
        """Upsert the row."""
        self.execute(
            "INSERT INTO uplink_tarballs (name, version, sha512, size, fetched_ms) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name, version) DO UPDATE SET "
            "sha512 = excluded.sha512, size = excluded.size, fetched_ms = excluded.fetched_ms",
            (record.name, record.version, record.sha512, record.size, record.fetched_ms),
        )

    def remove_tarball_entry(self, name: str, version: str) -> bool:
        """Delete the row."""
        return (
            self.execute(
                "DELETE FROM uplink_tarballs WHERE name = %s AND version = %s", (name, version)
            )
            > 0
        )

    def remove_packument(self, name: str, kind: str) -> bool:
        """Delete the row."""
        return (
            self.execute(
                "DELETE FROM uplink_packuments WHERE name = %s AND kind = %s", (name, kind)
            )
            > 0
        )

    def cached_packuments(self) -> Iterator[tuple[str, str, int, int]]:
        """Read at once (no cursor left open across a caller's writes)."""
        rows = self.fetchall(
            "SELECT name, kind, fetched_ms, length(body) FROM uplink_packuments "
            'ORDER BY name COLLATE "C", kind COLLATE "C"'
        )
        for name, kind, fetched, size in rows:
            yield str(name), str(kind), int(fetched), int(size)

    def cached_tarballs(self) -> Iterator[CachedTarball]:
        """Read at once."""
        rows = self.fetchall(
            "SELECT name, version, sha512, size, fetched_ms FROM uplink_tarballs "
            'ORDER BY name COLLATE "C", version COLLATE "C"'
        )
        for name, version, sha512, size, fetched in rows:
            yield CachedTarball(str(name), str(version), str(sha512), int(size), int(fetched))

    def cache_counts(self) -> CacheCounts:
        """One aggregate query over both tables."""
        p, pb, p_old, t, tb, t_old = self.fetchone(
            "SELECT (SELECT count(*) FROM uplink_packuments), "
            "(SELECT coalesce(sum(length(body)), 0) FROM uplink_packuments), "
            "(SELECT min(fetched_ms) FROM uplink_packuments), "
            "(SELECT count(*) FROM uplink_tarballs), "
            "(SELECT coalesce(sum(size), 0) FROM uplink_tarballs), "
            "(SELECT min(fetched_ms) FROM uplink_tarballs)"
        )
        olds = [int(x) for x in (p_old, t_old) if x is not None]
        return CacheCounts(int(p), int(pb), int(t), int(tb), min(olds) if olds else None)

    def add_upstream_override(self, name: str, actor: str, created_ms: int) -> bool:
        """Insert unless present."""
        return (
            self.execute(
                "INSERT INTO uplink_overrides (name, actor, created_ms) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (name, actor, created_ms),
            )
            > 0
        )

    def remove_upstream_override(self, name: str) -> bool:
        """Delete the row."""
        return self.execute("DELETE FROM uplink_overrides WHERE name = %s", (name,)) > 0

    def upstream_overrides(self) -> list[tuple[str, str, int]]:
        """By name."""
        rows = self.fetchall(
            'SELECT name, actor, created_ms FROM uplink_overrides ORDER BY name COLLATE "C"'
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
