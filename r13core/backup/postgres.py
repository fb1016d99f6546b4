"""PostgreSQL: a snapshot with ``pg_dump``, restores with ``pg_restore``, the cluster's backup lock.

Backup: one ``REPEATABLE READ, READ ONLY`` transaction exports its snapshot
(``pg_export_snapshot()``); ``pg_dump --snapshot`` dumps exactly that state in
its custom format, and the same transaction reads every table's rows for
their digests and the tarballs the rows refer to. With tarballs in files
(R13_BLOB_STORE=files), those are hard-linked while the blob store is held,
as with SQLite (r13core/backup/create.py); with tarballs in the database they
are in the dump, and the manifest still lists each one's sha512 and size.

Restore: into an empty database only (no table, sequence, view or function
outside PostgreSQL's own schemas). Files are verified in a staging dir first;
``pg_restore --single-transaction --exit-on-error`` then loads the dump (a
damaged dump loads nothing); every table is read back and compared with the
manifest, and every tarball in the database is hashed. If anything differs,
every object the restore created is dropped again: the database is left as
empty as it was.

``pg_dump`` and ``pg_restore`` are found on PATH or in /usr/lib/postgresql/*/bin
(the newest; it must not be older than the server). The password, if the URL
holds one, goes to them in PGPASSWORD, never on their command line.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from r13core.backup import datafiles
from r13core.backup.digest import TableDigest, digest_rows, hash_file
from r13core.backup.manifest import FileEntry, Manifest
from r13core.backup.progress import Progress
from r13core.errors import BackupCorrupt, BackupError, NotEmpty

if TYPE_CHECKING:
    import psycopg

    from r13core.backup.create import BackupSource
    from r13core.backup.restore import Placement

DUMP_FILE: Final = "database.dump"
ADVISORY_KEY: Final = 0x7231_3362_6B75_70  # "r13bkup": the cluster's automatic-backup lock
_SYSTEM: Final = "('pg_catalog', 'information_schema')"
_BATCH: Final = 2000


def tool(name: str) -> str:
    """The path of ``pg_dump`` / ``pg_restore``: the newest installed, else PATH's."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(m.group(1)) if (m := re.search(r"/(\d+)/bin/", p)) else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return on_path


def _conninfo(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment with PGPASSWORD) for the client tools."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from r13core.settings import Settings

    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    password = params.pop("password", None)
    extra = {"PGPASSWORD": password} if password is not None else {}
    return make_conninfo("", **params), Settings.child_environment(extra)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=True)
        # Times read for the digests must print alike at backup and at restore.
        conn.execute("SET TIME ZONE 'UTC'")
        conn.autocommit = autocommit
        return conn
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to the PostgreSQL database: {exc}") from None


def _tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT schemaname, tablename FROM pg_tables "
        f"WHERE schemaname NOT IN {_SYSTEM} ORDER BY schemaname, tablename"
    ).fetchall()
    return [(str(s), str(t)) for s, t in rows]


def _label(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def _ident(*parts: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _order(conn: psycopg.Connection[Any], schema: str, table: str) -> tuple[str, str]:
    """(every column in order, the primary key's columns or every column) as SQL lists."""
    columns = [
        str(r[0])
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (_ident(schema, table),),
        )
    ]
    pk = [
        str(r[0])
        for r in conn.execute(
            "SELECT a.attname FROM pg_index i "
            "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n",
            (_ident(schema, table),),
        )
    ]
    return ", ".join(_ident(c) for c in columns), ", ".join(_ident(c) for c in pk or columns)


def _rows(conn: psycopg.Connection[Any], schema: str, table: str) -> Iterator[tuple[Any, ...]]:
    columns, order = _order(conn, schema, table)
    with conn.cursor(name=f"r13_digest_{table}"[:60]) as cur:
        cur.itersize = _BATCH
        cur.execute(f"SELECT {columns} FROM {_ident(schema, table)} ORDER BY {order}")
        yield from cur


def digests(conn: psycopg.Connection[Any]) -> dict[str, TableDigest]:
    """Every table's row count and digest, inside the caller's transaction."""
    return {_label(s, t): digest_rows(_rows(conn, s, t)) for s, t in _tables(conn)}


def blob_refs(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """sha512 -> size of every tarball a row refers to."""
    names = {t for s, t in _tables(conn) if s == "public"}
    parts = [f"SELECT sha512, size FROM {t}" for t in ("tarballs", "uplink_tarballs") if t in names]
    if not parts:
        return {}
    return {str(h): int(s) for h, s in conn.execute(" UNION ".join(parts))}


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version r13's migrations recorded (0 when there is no record)."""
    names = {t for s, t in _tables(conn) if s == "public"}
    if "r13_schema" not in names:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM r13_schema").fetchone()
    return int(row[0]) if row else 0


# -- backup ------------------------------------------------------------------------------


def snapshot_into(source: BackupSource, tmp: Path, staging: Path, *, link: bool,
                  progress: Progress, clock: Callable[[], float]) -> Manifest:  # fmt: skip
    """pg_dump of one snapshot, its digests and tarballs, into the backup dir ``tmp``."""
    from r13core.backup.create import copy_staged, files_into

    conninfo, env = _conninfo(source.database_url)
    dump = tmp / DUMP_FILE
    progress.stage("snapshot", 0)
    with connect(source.database_url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot_id = str(row[0])
        store = source.blob_store
        with source.blobs.hold():  # files store: nothing is deleted until the links exist
            moment = clock()
            tarballs = blob_refs(conn)
            record = source.record()
            signing = datafiles.signing_files(source.data_dir)
            if store == "files":
                datafiles.stage_blobs(source.blobs.path, sorted(tarballs), staging)
        # The tarballs are gzip already. COPY writes bytea as hex text, so an uncompressed
        # dump is about twice their size; even the fastest compression level tripled the
        # time of a backup and slowed the restore (bench/RESULTS.md), so none.
        level = ["--compress=0"] if store == "database" else []
        out = subprocess.run(
            [tool("pg_dump"), "--format=custom", *level, "--no-owner", "--no-privileges",
             f"--snapshot={snapshot_id}", f"--file={dump}", f"--dbname={conninfo}"],
            env=env, capture_output=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise BackupError("pg_dump failed: " + out.stderr.decode(errors="replace").strip())
        progress.stage("tables", 0)
        tables = digests(conn)
        schema = schema_version(conn)
        conn.execute("COMMIT")
    os.chmod(dump, 0o600)
    manifest = Manifest(
        backend="postgresql",
        schema_version=schema,
        database=DUMP_FILE,
        blob_store=store,
        record=record,
        created=moment,
        tables=tables,
        tarballs=tarballs,
    )
    if store == "files":
        copy_staged(staging, tmp, tarballs, link=link, progress=progress)
    digest, size = hash_file(dump)
    manifest.files[DUMP_FILE] = FileEntry(size, digest)
    files_into(tmp, manifest, source, record, signing)
    return manifest


# -- restore -----------------------------------------------------------------------------


def _objects(conn: psycopg.Connection[Any]) -> list[str]:
    """What the database holds outside PostgreSQL's own schemas (relations, functions, types)."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname NOT IN {_SYSTEM} AND n.nspname NOT LIKE 'pg_toast%%' "
        "AND n.nspname NOT LIKE 'pg_temp%%' AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') "
        "UNION ALL SELECT n.nspname || '.' || p.proname || '()' FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE n.nspname NOT IN {_SYSTEM} AND n.nspname NOT LIKE 'pg_temp%%' "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') "
        "ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _schemas(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN "
        f"{_SYSTEM} AND nspname NOT LIKE 'pg_%%'"
    ).fetchall()
    return {str(r[0]) for r in rows}


def check_empty_database(url: str) -> set[str]:
    """NotEmpty naming what the database holds, unless it is empty; its schemas."""
    with connect(url, autocommit=True) as conn:
        found = _objects(conn)
        if found:
            shown = ", ".join(found[:5]) + (
                f" (and {len(found) - 5} more)" if len(found) > 5 else ""
            )
            raise NotEmpty(f"the database is not empty: it holds {shown}; "
                           "restore needs an empty database")  # fmt: skip
        return _schemas(conn)


def empty_again(url: str, schemas_before: set[str]) -> None:
    """Drop every object a failed restore created (the database was empty before it)."""
    with connect(url, autocommit=True) as conn:
        for schema in sorted(_schemas(conn) - schemas_before):
            conn.execute(f"DROP SCHEMA {_ident(schema)} CASCADE")
        for schema in sorted(schemas_before):
            for kind, sql in (
                ("r", "TABLE"), ("p", "TABLE"), ("v", "VIEW"), ("m", "MATERIALIZED VIEW"),
                ("S", "SEQUENCE"), ("f", "FOREIGN TABLE"),
            ):  # fmt: skip
                for (name,) in conn.execute(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = %s",
                    (schema, kind),
                ).fetchall():
                    conn.execute(f"DROP {sql} IF EXISTS {_ident(schema, str(name))} CASCADE")
            for (sig,) in conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
                "ON n.oid = p.pronamespace WHERE n.nspname = %s AND NOT EXISTS "
                "(SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')",
                (schema,),
            ).fetchall():
                conn.execute(f"DROP ROUTINE IF EXISTS {sig} CASCADE")
            for (name,) in conn.execute(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = %s AND t.typtype IN ('e', 'c', 'd') AND NOT EXISTS "
                "(SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)",
                (schema,),
            ).fetchall():
                conn.execute(f"DROP TYPE IF EXISTS {_ident(schema, str(name))} CASCADE")


def verify_database_blobs(conn: psycopg.Connection[Any], tarballs: dict[str, int],
                          progress: Progress) -> None:  # fmt: skip
    """Hash every tarball stored in the database against its name and size."""
    progress.stage("tarballs", sum(tarballs.values()))
    for sha512, size in sorted(tarballs.items()):
        h = hashlib.sha512()
        got = 0
        with conn.cursor(name="r13_blob") as cur:
            cur.execute("SELECT data FROM blob_chunks WHERE sha512 = %s ORDER BY seq", (sha512,))
            for (chunk,) in cur:
                h.update(chunk)
                got += len(chunk)
                progress.advance(len(chunk))
        if got == 0 and size != 0:
            raise BackupCorrupt(f"tarball {sha512[:16]}... is missing from the restored database")
        if h.hexdigest() != sha512 or got != size:
            raise BackupCorrupt(f"tarball {sha512[:16]}... in the dump is damaged: "
                                "its sha512 does not match")  # fmt: skip


def restore_into(src: Path, place: Placement, url: str, manifest: Manifest,
                 progress: Progress, *, check_only: bool) -> None:  # fmt: skip
    """Verify and restore a PostgreSQL backup (see the module docstring)."""
    from r13core.backup import sqlite as sqlite_backup
    from r13core.backup.restore import check_data_files, commit_data_dir, copy_files, staging_beside

    data_dir = place.data_dir

    if check_only:
        raise BackupError(
            "--check restores a PostgreSQL backup into a database to verify it: "
            "restore it into an empty database instead"
        )
    from r13core.storage.postgres import migrations

    if manifest.schema_version > migrations.latest():
        raise BackupError(
            f"the backup's schema version {manifest.schema_version} is newer than this r13 "
            f"knows ({migrations.latest()}): restore it with r13 {manifest.r13_version} or later"
        )
    schemas_before = check_empty_database(url)
    staging = staging_beside(data_dir)
    loaded = False
    try:
        copy_files(src, staging, manifest, progress, skip=set())
        check_data_files(staging, manifest)
        conninfo, env = _conninfo(url)
        progress.stage("pg_restore", 0)
        loaded = True
        out = subprocess.run(
            [tool("pg_restore"), "--single-transaction", "--exit-on-error", "--no-owner",
             "--no-privileges", f"--dbname={conninfo}", str(staging / manifest.database)],
            env=env, capture_output=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise BackupCorrupt(
                f"{manifest.database} does not load: "
                + out.stderr.decode(errors="replace").strip()[-1000:]
            )
        with connect(url) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            progress.stage("tables", 0)
            found_schema = schema_version(conn)
            if found_schema != manifest.schema_version:
                raise BackupCorrupt(f"the restored database has schema version {found_schema}, "
                                    f"the manifest says {manifest.schema_version}")  # fmt: skip
            sqlite_backup.compare_tables(digests(conn), manifest.tables)
            sqlite_backup.compare_refs(blob_refs(conn), manifest.tarballs)
            if manifest.blob_store == "database":
                verify_database_blobs(conn, manifest.tarballs, progress)
            conn.execute("COMMIT")
        (staging / manifest.database).unlink()
        commit_data_dir(staging, place)
    except BaseException:
        if loaded:
            empty_again(url, schemas_before)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class AdvisoryLock:
    """The cluster's automatic-backup lock: a session advisory lock on a connection of its own.

    Held as long as the connection lives: a node that dies drops it with its connection.
    """

    def __init__(self, url: str, key: int = ADVISORY_KEY) -> None:
        self._url = url
        self._key = key
        self._conn: psycopg.Connection[Any] | None = None

    def try_acquire(self) -> bool:
        import psycopg

        try:
            if self._conn is not None:
                self._conn.execute("SELECT 1")  # still ours if the session still lives
                return True
            conn = psycopg.connect(self._url, autocommit=True)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            if row is not None and row[0]:
                self._conn = conn
                return True
            conn.close()
            return False
        except psycopg.Error:
            self.release()
            return False

    def release(self) -> None:
        """Unlock, then close. Closing alone frees the lock only once the server's session
        has ended, a moment later: another node asking at once would be refused."""
        import psycopg

        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except psycopg.Error:  # the session is gone already, and its lock with it
            pass
        finally:
            conn.close()
