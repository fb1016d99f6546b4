"""The packages concern (r13core/storage/packages.py) in SQLite.

Tables: ``packages (name, rev, doc, summary, layout)`` (``doc`` is the head, and
``package_versions (name, version, pos, manifest, time, attestations)`` the version
rows: r13core/storage/package_rows.py), ``tarballs (name, version,
sha512, size)`` indexed by sha512, ``used_versions`` (tombstones, never
deleted), ``renders (name, kind) -> rev, key, body, gzip, etag``, and the
``meta`` row ``seq``: the one rev counter of the store, bumped inside the
write transaction that saves a document.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from r13core.storage.hooks import HookEvent, HookRecord
from r13core.storage.package_rows import (
    ROWS,
    PackageHead,
    VersionRow,
    join,
    record_rows,
    row_values,
    rows_values,
    split,
    version_row,
)
from r13core.storage.packages import (
    JSONDict,
    PackageRecord,
    PackageStorage,
    RenderRecord,
    TarballRecord,
    WriteTxn,
)
from r13core.storage.signals import FileChangeSignal
from r13core.storage.sqlite import hooks as sqlite_hooks
from r13core.storage.sqlite.audit import append_in as append_audit_in
from r13core.storage.sqlite.connection import SQLiteDatabase, chunks, dumps

# The head and the version rows in ONE statement, so one snapshot: a commit between two
# statements (the connection is in autocommit between writes) can never tear a read.
_DOCUMENT: Final = (
    "SELECT 0, rev, doc, layout, NULL, NULL FROM packages WHERE name = ? "
    "UNION ALL SELECT 1, pos, version, manifest, time, attestations FROM package_versions "
    "WHERE name = ? ORDER BY 1, 2"
)


def _package(conn: sqlite3.Connection, name: str) -> PackageRecord | None:
    result = conn.execute(_DOCUMENT, (name, name)).fetchall()
    if not result or result[0][0] != 0:
        return None
    _, rev, doc, layout, _, _ = result[0]
    return PackageRecord(name, int(rev), join(int(layout), json.loads(doc), record_rows(result)))


def _head(conn: sqlite3.Connection, name: str) -> PackageHead | None:
    row = conn.execute("SELECT rev, layout, doc FROM packages WHERE name = ?", (name,)).fetchone()
    return None if row is None else PackageHead(name, int(row[0]), int(row[1]), json.loads(row[2]))


def _existing_versions(conn: sqlite3.Connection, name: str, versions: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk, marks in chunks(versions):
        rows = conn.execute(
            f"SELECT version FROM package_versions WHERE name = ? AND version IN ({marks})",
            [name, *chunk],
        )
        found.update(r[0] for r in rows)
    return found


def write_document(conn: sqlite3.Connection, name: str, doc: JSONDict, summary: JSONDict) -> int:
    """Store ``doc`` whole (head and every version row); its new rev. Also the migration's."""
    layout, top, rows = split(doc)
    rev = _save_head(conn, name, layout, top, summary)
    conn.execute("DELETE FROM package_versions WHERE name = ?", (name,))
    conn.executemany(
        "INSERT INTO package_versions (name, version, pos, manifest, time, attestations) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows_values(name, rows),
    )
    return rev


def _save_head(
    conn: sqlite3.Connection, name: str, layout: int, top: JSONDict, summary: JSONDict
) -> int:
    (rev,) = conn.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
    ).fetchone()
    conn.execute(
        "INSERT INTO packages (name, rev, doc, summary, layout) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET rev = excluded.rev, doc = excluded.doc, "
        "summary = excluded.summary, layout = excluded.layout",
        (name, rev, dumps(top), dumps(summary), layout),
    )
    conn.execute("DELETE FROM renders WHERE name = ?", (name,))
    return int(rev)


def _used_version(conn: sqlite3.Connection, name: str, version: str) -> str | None:
    row = conn.execute(
        "SELECT sha512 FROM used_versions WHERE name = ? AND version = ?", (name, version)
    ).fetchone()
    return None if row is None else str(row[0])


class _Txn(WriteTxn):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def package(self, name: str) -> PackageRecord | None:
        return _package(self._c, name)

    def save_package(self, name: str, doc: JSONDict, *, summary: JSONDict | None = None) -> int:
        return write_document(self._c, name, doc, summary or {})

    def head(self, name: str) -> PackageHead | None:
        return _head(self._c, name)

    def version(self, name: str, version: str) -> VersionRow | None:
        row = self._c.execute(
            "SELECT manifest, time, attestations FROM package_versions "
            "WHERE name = ? AND version = ?",
            (name, version),
        ).fetchone()
        if row is None:
            return None
        return version_row(version, row[0], row[1], row[2])

    def existing_versions(self, name: str, versions: Iterable[str]) -> set[str]:
        return _existing_versions(self._c, name, versions)

    def add_version(self, name: str, row: VersionRow) -> None:
        # The next place after the package's last version: one step down the (name, pos) index.
        (pos,) = self._c.execute(
            "SELECT coalesce(max(pos) + 1, 0) FROM package_versions WHERE name = ?", (name,)
        ).fetchone()
        self._c.execute(
            "INSERT INTO package_versions (name, version, pos, manifest, time, attestations) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row_values(name, int(pos), row),
        )

    def save_head(self, name: str, top: JSONDict, *, summary: JSONDict) -> int:
        return _save_head(self._c, name, ROWS, top, summary)

    def delete_package(self, name: str) -> None:
        for table in ("packages", "package_versions", "tarballs", "renders"):
            self._c.execute(f"DELETE FROM {table} WHERE name = ?", (name,))

    def used_version(self, name: str, version: str) -> str | None:
        return _used_version(self._c, name, version)

    def mark_used(self, name: str, version: str, sha512: str) -> None:
        self._c.execute(
            "INSERT OR IGNORE INTO used_versions (name, version, sha512) VALUES (?, ?, ?)",
            (name, version, sha512),
        )

    def add_tarball(self, record: TarballRecord) -> None:
        self._c.execute(
            "INSERT OR REPLACE INTO tarballs (name, version, sha512, size) VALUES (?, ?, ?, ?)",
            (record.name, record.version, record.sha512, record.size),
        )

    def remove_tarball(self, name: str, version: str) -> None:
        self._c.execute("DELETE FROM tarballs WHERE name = ? AND version = ?", (name, version))

    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int | None:
        return append_audit_in(self._c, at, actor, action, target, ip, detail)

    def any_hooks(self) -> bool:
        return sqlite_hooks.any_hooks(self._c)

    def hooks_for(self, name: str, owners: Sequence[str]) -> list[HookRecord]:
        return sqlite_hooks.hooks_for(self._c, name, owners)

    def enqueue_hooks(
        self, deliveries: Sequence[tuple[HookRecord, HookEvent]], now_ms: int
    ) -> None:
        sqlite_hooks.enqueue(self._c, [(h.id, e) for h, e in deliveries], now_ms)


class SQLitePackages(SQLiteDatabase, PackageStorage):
    """Package state in the SQLite file; every committed package change bumps
    ``<db>-pkggen`` (:attr:`package_changes`), which the uplink's proxy policy caches by."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 30_000,
        auto_migrate: bool = True,
    ) -> None:
        super().__init__(path, busy_timeout_ms=busy_timeout_ms, auto_migrate=auto_migrate)
        self.package_changes = FileChangeSignal(Path(f"{self.path}-pkggen"))

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception); a commit
        that changed anything bumps :attr:`package_changes`."""
        with self._transaction(self.package_changes) as conn:
            yield _Txn(conn)

    def packages_version(self) -> object:
        """The package-change signal's counter (one 8-byte load from a shared mapping)."""
        return self.package_changes.version()

    def package(self, name: str) -> PackageRecord | None:
        """The committed package, or None."""
        return _package(self._conn(), name)

    def head(self, name: str) -> PackageHead | None:
        """The committed head row, or None."""
        return _head(self._conn(), name)

    def existing_versions(self, name: str, versions: Iterable[str]) -> set[str]:
        """Those of ``versions`` the committed package has."""
        return _existing_versions(self._conn(), name, versions)

    def package_rev(self, name: str) -> int | None:
        """The package's rev, or None (without reading the document)."""
        row = self._conn().execute("SELECT rev FROM packages WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def packages(self) -> Iterator[PackageRecord]:
        """Every package, by name."""
        conn = self._conn()
        for (name,) in conn.execute("SELECT name FROM packages ORDER BY name").fetchall():
            record = _package(conn, name)
            if record is not None:  # not deleted since the list was read
                yield record

    def summaries(self) -> Iterator[tuple[str, JSONDict]]:
        """(name, search summary) of every package, by name."""
        rows = self._conn().execute("SELECT name, summary FROM packages ORDER BY name").fetchall()
        for name, summary in rows:
            yield name, json.loads(summary)

    def tarball(self, name: str, version: str) -> TarballRecord | None:
        """The tarball row, or None."""
        row = (
            self._conn()
            .execute(
                "SELECT sha512, size FROM tarballs WHERE name = ? AND version = ?",
                (name, version),
            )
            .fetchone()
        )
        return None if row is None else TarballRecord(name, version, row[0], int(row[1]))

    def used_version(self, name: str, version: str) -> str | None:
        """The sha512 of the first publish of ``name@version``, or None."""
        return _used_version(self._conn(), name, version)

    def name_in_use(self, name: str) -> bool:
        """A package row, or a tombstone of one of its versions (two indexed lookups)."""
        conn = self._conn()
        return (
            conn.execute("SELECT 1 FROM packages WHERE name = ?", (name,)).fetchone() is not None
            or conn.execute(
                "SELECT 1 FROM used_versions WHERE name = ? LIMIT 1", (name,)
            ).fetchone()
            is not None
        )

    def scope_in_use(self, scope: str) -> bool:
        """A range scan of the name index: ``'@s/' <= name < '@s0'`` ('0' follows '/')."""
        low, high = scope + "/", scope + "0"
        conn = self._conn()
        for table in ("packages", "used_versions"):
            row = conn.execute(
                f"SELECT 1 FROM {table} WHERE name >= ? AND name < ? LIMIT 1", (low, high)
            ).fetchone()
            if row is not None:
                return True
        return False

    def blob_refs(self) -> set[str]:
        """Every referenced blob: local tarballs' and the uplink cache's."""
        return {
            r[0]
            for r in self._conn().execute(
                "SELECT sha512 FROM tarballs UNION SELECT sha512 FROM uplink_tarballs"
            )
        }

    def blobs_in_use(self, hashes: Iterable[str]) -> set[str]:
        """Those of ``hashes`` some tarball row (local or cached) refers to (indexed lookups)."""
        found: set[str] = set()
        conn = self._conn()
        for chunk, marks in chunks(hashes):
            rows = conn.execute(
                f"SELECT sha512 FROM tarballs WHERE sha512 IN ({marks}) "
                f"UNION SELECT sha512 FROM uplink_tarballs WHERE sha512 IN ({marks})",
                chunk + chunk,
            )
            found.update(r[0] for r in rows)
        return found

    def counts(self) -> tuple[int, int]:
        """(packages, versions)."""
        conn = self._conn()
        (packages,) = conn.execute("SELECT count(*) FROM packages").fetchone()
        (versions,) = conn.execute("SELECT count(*) FROM tarballs").fetchone()
        return int(packages), int(versions)

    # -- render cache -----------------------------------------------------------

    def render(self, name: str, kind: str) -> RenderRecord | None:
        """The cached render, or None."""
        row = (
            self._conn()
            .execute(
                "SELECT rev, key, body, gzip, etag FROM renders WHERE name = ? AND kind = ?",
                (name, kind),
            )
            .fetchone()
        )
        if row is None:
            return None
        return RenderRecord(int(row[0]), row[1], bytes(row[2]), bytes(row[3]), row[4])

    def save_render(self, name: str, kind: str, record: RenderRecord) -> bool:
        """Cache a render if its rev is still current (one statement: no race with a write).

        A write like any other (under the write gate, with the cooperative BEGIN): a bare
        statement on the worker's shared connection would wait for another process's
        writer in SQLite's busy handler, in C, stopping every greenlet of the worker.
        """
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR REPLACE INTO renders (name, kind, rev, key, body, gzip, etag) "
                "SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM packages WHERE name = ? AND rev = ?)",
                (
                    name,
                    kind,
                    record.rev,
                    record.key,
                    record.body,
                    record.gzip,
                    record.etag,
                    name,
                    record.rev,
                ),
            )
        return cur.rowcount > 0
