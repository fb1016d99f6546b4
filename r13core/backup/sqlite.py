"""SQLite: an online snapshot of the database file, and the checks a restore runs on one.

The snapshot is SQLite's online backup (``Connection.backup`` with ``pages=-1``):
all pages copied in one step inside one read transaction, so it is the database
as of one commit while the server keeps reading and writing (WAL: readers and
the backup never block writers). The copy is switched to the rollback journal,
so it is one self-contained file; the server turns WAL on again when it opens
the restored file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, Final

from r13core.backup.digest import TableDigest, digest_rows
from r13core.errors import BackupCorrupt, BackupError
from r13core.storage.sqlite import migrations

DATABASE_FILE: Final = "registry.sqlite3"
# SQLite's statistics tables are the planner's; they are not data.
_SKIPPED_PREFIX: Final = "sqlite_stat"


def schema_supported() -> int:
    """The newest schema version this r13 knows (its number of migrations)."""
    return migrations.latest()


def snapshot(live: Path, target: Path, *, busy_timeout_ms: int = 30_000) -> None:
    """Copy the database at ``live`` into a new file ``target`` as of one moment."""
    if not live.is_file():
        raise BackupError(f"no database at {live}: nothing to back up")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    src = sqlite3.connect(live, timeout=busy_timeout_ms / 1000, isolation_level=None)
    try:
        src.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        with closing(sqlite3.connect(target, isolation_level=None)) as dst:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE")
    finally:
        src.close()
    with open(target, "rb") as f:
        os.fsync(f.fileno())


def _tables(conn: sqlite3.Connection) -> list[str]:
    names = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    ]
    return [n for n in names if not n.startswith(_SKIPPED_PREFIX)]


def _order(conn: sqlite3.Connection, table: str) -> str:
    """The primary key's columns (every column when there is none), quoted, in order."""
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    pk = sorted((row[5], row[1]) for row in info if row[5] > 0)
    columns = [name for _, name in pk] or [row[1] for row in info]
    return ", ".join(f'"{c}"' for c in columns)


def _rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    columns = ", ".join(f'"{row[1]}"' for row in sorted(info, key=lambda r: r[0]))
    yield from conn.execute(f'SELECT {columns} FROM "{table}" ORDER BY {_order(conn, table)}')


def open_snapshot(path: Path) -> sqlite3.Connection:
    """A read-only connection to a snapshot file (never the live database)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def digests(conn: sqlite3.Connection) -> dict[str, TableDigest]:
    """Every table's row count and digest (r13core/backup/digest.py)."""
    return {table: digest_rows(_rows(conn, table)) for table in _tables(conn)}


def blob_refs(conn: sqlite3.Connection) -> dict[str, int]:
    """sha512 -> size of every tarball a row refers to (published and cached from the uplink)."""
    tables = set(_tables(conn))
    parts = [
        f"SELECT sha512, size FROM {t}" for t in ("tarballs", "uplink_tarballs") if t in tables
    ]
    if not parts:
        return {}
    return {str(h): int(s) for h, s in conn.execute(" UNION ".join(parts))}


def check_restored(path: Path, tables: dict[str, TableDigest], tarballs: dict[str, int],
                   schema: int) -> None:  # fmt: skip
    """Refuse a restored database file that is not exactly the one backed up.

    SQLite's own integrity check, the schema version, every table's row count and
    digest, and the tarballs its rows refer to (each one the manifest lists, of
    the size it lists).
    """
    try:
        with closing(open_snapshot(path)) as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                raise BackupCorrupt(f"{DATABASE_FILE} fails SQLite's integrity check: "
                                    f"{'; '.join(problems[:3])}")  # fmt: skip
            found_schema = schema_version(conn)
            if found_schema != schema:
                raise BackupCorrupt(f"{DATABASE_FILE} has schema version {found_schema}, "
                                    f"the manifest says {schema}")  # fmt: skip
            compare_tables(digests(conn), tables)
            compare_refs(blob_refs(conn), tarballs)
    except sqlite3.DatabaseError as exc:
        raise BackupCorrupt(f"{DATABASE_FILE} is not a readable SQLite database ({exc})") from None


def compare_tables(found: dict[str, TableDigest], expected: dict[str, TableDigest]) -> None:
    """BackupCorrupt naming the first table whose rows differ from the manifest's."""
    for name in sorted(set(found) | set(expected)):
        have, want = found.get(name), expected.get(name)
        if want is None:
            raise BackupCorrupt(f"table {name} is in the database but not in the manifest")
        if have is None:
            raise BackupCorrupt(f"table {name} is in the manifest but not in the database")
        if have.rows != want.rows:
            raise BackupCorrupt(
                f"table {name} has {have.rows} row(s), the manifest says {want.rows}"
            )
        if have.sha256 != want.sha256:
            raise BackupCorrupt(
                f"table {name}: its rows differ from the backup's (digest {have.sha256[:16]}... "
                f"where the manifest has {want.sha256[:16]}...)"
            )


def compare_refs(found: dict[str, int], listed: dict[str, int]) -> None:
    """The tarballs the rows refer to must be exactly those the manifest lists."""
    for sha512 in sorted(set(found) | set(listed)):
        if sha512 not in listed:
            raise BackupCorrupt(f"a row refers to tarball {sha512[:16]}... "
                                "that the manifest does not list")  # fmt: skip
        if sha512 not in found:
            raise BackupCorrupt(f"the manifest lists tarball {sha512[:16]}... "
                                "that no row refers to")  # fmt: skip
        if found[sha512] != listed[sha512]:
            raise BackupCorrupt(f"tarball {sha512[:16]}... is {found[sha512]} bytes in its row, "
                                f"{listed[sha512]} in the manifest")  # fmt: skip
