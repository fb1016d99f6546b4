"""The packages concern (r13core/storage/packages.py) in PostgreSQL.

Tables (migrations 1 and 5, r13core/storage/postgres/migrations.py): ``packages (name,
rev, doc, summary, layout)`` (``doc`` is the head) and ``package_versions (name, version,
pos, manifest, time, attestations)`` (r13core/storage/package_rows.py), ``tarballs``
indexed by sha512, ``used_versions`` (tombstones), ``renders``;
revs come from the sequence ``package_rev`` (only grows, shared by every node).

Per-package write serialisation across nodes: the first thing a write
transaction does with a package (read it, save it, delete it) is
``pg_advisory_xact_lock(LOCK_PACKAGE, hashtext(name))``, held until the commit.
A second writer of the same package, on any node, waits there and then reads
the first one's committed document (READ COMMITTED takes a new snapshot per
statement), so its read-check-apply-write (r13core/registry/changes.py) sees
every version the first added: both versions land, or the second gets the
conflict its check raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

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
from r13core.storage.postgres import hooks as pg_hooks
from r13core.storage.postgres.audit import append_in as append_audit_in
from r13core.storage.postgres.connection import LOCK_PACKAGE, PgDatabase, PgTxn, dumps

# The head and the version rows in ONE statement, so one snapshot (READ COMMITTED takes a
# new one per statement): a commit in between can never tear a read.
_DOCUMENT: Final = (
    "SELECT 0, rev, doc, layout::text, NULL, NULL FROM packages WHERE name = %s "
    "UNION ALL SELECT 1, pos, version, manifest, time, attestations FROM package_versions "
    "WHERE name = %s ORDER BY 1, 2"
)
_HEAD: Final = "SELECT rev, layout, doc FROM packages WHERE name = %s"
_EXISTING: Final = "SELECT version FROM package_versions WHERE name = %s AND version = ANY(%s)"
_INSERT_VERSION: Final = (
    "INSERT INTO package_versions (name, version, pos, manifest, time, attestations) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)


def _record(name: str, result: list[Any]) -> PackageRecord | None:
    if not result or result[0][0] != 0:
        return None
    _, rev, doc, layout, _, _ = result[0]
    return PackageRecord(name, int(rev), join(int(layout), json.loads(doc), record_rows(result)))


def _head(name: str, row: Any) -> PackageHead | None:
    return None if row is None else PackageHead(name, int(row[0]), int(row[1]), json.loads(row[2]))


class _Txn(WriteTxn):
    def __init__(self, txn: PgTxn) -> None:
        self._t = txn
        self._locked: set[str] = set()

    def _lock(self, name: str) -> None:
        if name not in self._locked:
            self._t.lock(LOCK_PACKAGE, name)
            self._locked.add(name)

    def package(self, name: str) -> PackageRecord | None:
        self._lock(name)
        return _record(name, self._t.execute(_DOCUMENT, (name, name)).fetchall())

    def _save_head(self, name: str, layout: int, top: JSONDict, summary: JSONDict) -> int:
        self._lock(name)
        row = self._t.execute(
            "INSERT INTO packages (name, rev, doc, summary, layout) "
            "VALUES (%s, nextval('package_rev'), %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
            "rev = excluded.rev, doc = excluded.doc, summary = excluded.summary, "
            "layout = excluded.layout RETURNING rev",
            (name, dumps(top), dumps(summary), layout),
        ).fetchone()
        assert row is not None  # RETURNING always gives the row
        self._t.execute("DELETE FROM renders WHERE name = %s", (name,))
        return int(row[0])

    def save_package(self, name: str, doc: JSONDict, *, summary: JSONDict | None = None) -> int:
        layout, top, rows = split(doc)
        rev = self._save_head(name, layout, top, summary or {})
        self._t.execute("DELETE FROM package_versions WHERE name = %s", (name,))
        if rows:
            with self._t.conn.cursor() as cur:
                cur.executemany(_INSERT_VERSION, rows_values(name, rows))
        return rev

    def head(self, name: str) -> PackageHead | None:
        self._lock(name)
        return _head(name, self._t.execute(_HEAD, (name,)).fetchone())

    def version(self, name: str, version: str) -> VersionRow | None:
        row = self._t.execute(
            "SELECT manifest, time, attestations FROM package_versions "
            "WHERE name = %s AND version = %s",
            (name, version),
        ).fetchone()
        if row is None:
            return None
        return version_row(version, row[0], row[1], row[2])

    def existing_versions(self, name: str, versions: Iterable[str]) -> set[str]:
        wanted = sorted(set(versions))
        if not wanted:
            return set()
        return {r[0] for r in self._t.execute(_EXISTING, (name, wanted)).fetchall()}

    def add_version(self, name: str, row: VersionRow) -> None:
        self._lock(name)
        found = self._t.execute(
            "SELECT coalesce(max(pos) + 1, 0) FROM package_versions WHERE name = %s", (name,)
        ).fetchone()
        assert found is not None  # an aggregate always gives one row
        self._t.execute(_INSERT_VERSION, row_values(name, int(found[0]), row))

    def save_head(self, name: str, top: JSONDict, *, summary: JSONDict) -> int:
        return self._save_head(name, ROWS, top, summary)

    def delete_package(self, name: str) -> None:
        self._lock(name)
        for table in ("packages", "package_versions", "tarballs", "renders"):
            self._t.execute(f"DELETE FROM {table} WHERE name = %s", (name,))

    def used_version(self, name: str, version: str) -> str | None:
        row = self._t.execute(
            "SELECT sha512 FROM used_versions WHERE name = %s AND version = %s", (name, version)
        ).fetchone()
        return None if row is None else str(row[0])

    def mark_used(self, name: str, version: str, sha512: str) -> None:
        self._t.execute(
            "INSERT INTO used_versions (name, version, sha512) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (name, version, sha512),
        )

    def add_tarball(self, record: TarballRecord) -> None:
        self._t.execute(
            "INSERT INTO tarballs (name, version, sha512, size) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name, version) DO UPDATE SET sha512 = excluded.sha512, "
            "size = excluded.size",
            (record.name, record.version, record.sha512, record.size),
        )

    def remove_tarball(self, name: str, version: str) -> None:
        self._t.execute("DELETE FROM tarballs WHERE name = %s AND version = %s", (name, version))

    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int | None:
        return append_audit_in(self._t, at, actor, action, target, ip, detail)

    def any_hooks(self) -> bool:
        return pg_hooks.any_hooks(self._t)

    def hooks_for(self, name: str, owners: Sequence[str]) -> list[HookRecord]:
        return pg_hooks.hooks_for(self._t, name, owners)

    def enqueue_hooks(
        self, deliveries: Sequence[tuple[HookRecord, HookEvent]], now_ms: int
    ) -> None:
        # Under the package's advisory lock (taken by the change's first read): one
        # package's deliveries are numbered in the order their changes commit.
        pg_hooks.enqueue(self._t, [(h.id, e) for h, e in deliveries], now_ms)


class PgPackages(PgDatabase, PackageStorage):
    """Package state in PostgreSQL; committed changes bump :attr:`package_changes`."""

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """One transaction (per-package advisory locks inside); its commit is the publish point."""
        with self.transaction(self.package_changes) as txn:
            yield _Txn(txn)

    def packages_version(self) -> object:
        """This node's package-change counter (one 8-byte load)."""
        return self.package_changes.version()

    def package(self, name: str) -> PackageRecord | None:
        """The committed package, or None."""
        return _record(name, self.fetchall(_DOCUMENT, (name, name)))

    def head(self, name: str) -> PackageHead | None:
        """The committed head row, or None."""
        return _head(name, self.fetchone(_HEAD, (name,)))

    def existing_versions(self, name: str, versions: Iterable[str]) -> set[str]:
        """Those of ``versions`` the committed package has (one indexed ``= ANY``)."""
        wanted = sorted(set(versions))
        if not wanted:
            return set()
        return {r[0] for r in self.fetchall(_EXISTING, (name, wanted))}

    def package_rev(self, name: str) -> int | None:
        """The rev alone (an index-only lookup)."""
        row = self.fetchone("SELECT rev FROM packages WHERE name = %s", (name,))
        return None if row is None else int(row[0])

    def packages(self) -> Iterator[PackageRecord]:
        """Every package, by name."""
        for (name,) in self.fetchall("SELECT name FROM packages ORDER BY name"):
            record = self.package(name)
            if record is not None:  # not deleted since the list was read
                yield record

    def summaries(self) -> Iterator[tuple[str, JSONDict]]:
        """(name, search summary), by name."""
        for name, summary in self.fetchall("SELECT name, summary FROM packages ORDER BY name"):
            yield name, json.loads(summary)

    def tarball(self, name: str, version: str) -> TarballRecord | None:
        """The tarball row, or None."""
        row = self.fetchone(
            "SELECT sha512, size FROM tarballs WHERE name = %s AND version = %s", (name, version)
        )
        return None if row is None else TarballRecord(name, version, row[0], int(row[1]))

    def used_version(self, name: str, version: str) -> str | None:
        """The sha512 of the first publish of ``name@version``, or None."""
        row = self.fetchone(
            "SELECT sha512 FROM used_versions WHERE name = %s AND version = %s", (name, version)
        )
        return None if row is None else str(row[0])

    def name_in_use(self, name: str) -> bool:
        """A package row or a tombstone (one statement, two indexed lookups)."""
        row = self.fetchone(
            "SELECT EXISTS (SELECT 1 FROM packages WHERE name = %s) "
            "OR EXISTS (SELECT 1 FROM used_versions WHERE name = %s)",
            (name, name),
        )
        return bool(row[0])

    def scope_in_use(self, scope: str) -> bool:
        """Range scans: ``'@s/' <= name < '@s0'`` ('0' follows '/'), byte order (COLLATE "C")."""
        low, high = scope + "/", scope + "0"
        row = self.fetchone(
            'SELECT EXISTS (SELECT 1 FROM packages WHERE name >= %s COLLATE "C" '
            'AND name < %s COLLATE "C") OR EXISTS (SELECT 1 FROM used_versions '
            'WHERE name >= %s COLLATE "C" AND name < %s COLLATE "C")',
            (low, high, low, high),
        )
        return bool(row[0])

    def blob_refs(self) -> set[str]:
        """Every referenced blob: local tarballs' and the uplink cache's."""
        rows = self.fetchall("SELECT sha512 FROM tarballs UNION SELECT sha512 FROM uplink_tarballs")
        return {r[0] for r in rows}

    def blobs_in_use(self, hashes: Iterable[str]) -> set[str]:
        """Those of ``hashes`` some tarball row refers to (indexed ``= ANY``)."""
        wanted = sorted(set(hashes))
        if not wanted:
            return set()
        rows = self.fetchall(
            "SELECT sha512 FROM tarballs WHERE sha512 = ANY(%s) "
            "UNION SELECT sha512 FROM uplink_tarballs WHERE sha512 = ANY(%s)",
            (wanted, wanted),
        )
        return {r[0] for r in rows}

    def counts(self) -> tuple[int, int]:
        """(packages, versions)."""
        row = self.fetchone(
            "SELECT (SELECT count(*) FROM packages), (SELECT count(*) FROM tarballs)"
        )
        return int(row[0]), int(row[1])

    # -- render cache -----------------------------------------------------------

    def render(self, name: str, kind: str) -> RenderRecord | None:
        """The cached render, or None."""
        row = self.fetchone(
            "SELECT rev, key, body, gzip, etag FROM renders WHERE name = %s AND kind = %s",
            (name, kind),
        )
        if row is None:
            return None
        return RenderRecord(int(row[0]), row[1], bytes(row[2]), bytes(row[3]), row[4])

    def save_render(self, name: str, kind: str, record: RenderRecord) -> bool:
        """Cache a render if its rev is still current (one statement: no race with a write)."""
        changed = self.execute(
            "INSERT INTO renders (name, kind, rev, key, body, gzip, etag) "
            "SELECT %s, %s, %s, %s, %s, %s, %s WHERE EXISTS "
            "(SELECT 1 FROM packages WHERE name = %s AND rev = %s) "
            "ON CONFLICT (name, kind) DO UPDATE SET rev = excluded.rev, key = excluded.key, "
            "body = excluded.body, gzip = excluded.gzip, etag = excluded.etag",
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
        return changed > 0
