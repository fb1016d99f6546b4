"""The embedded metadata store: SQLite in WAL mode with ``synchronous=FULL``.

Connections are opened lazily, one per (process, thread): gunicorn forks
workers after the app may have been built, and a SQLite connection must not
cross a fork, so a pid change opens a fresh one; gthread workers run several
threads, each with its own connection (SQLite serialises writers itself; a
write transaction starts with ``BEGIN IMMEDIATE`` so two writers never both
read-then-upgrade). ``busy_timeout`` makes a writer wait for another instead
of failing at once.

Schema changes are numbered migrations applied in order at open, tracked by
``PRAGMA user_version``.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from r13core.datadir import FILE_MODE, narrow_file, open_private
from r13core.storage import sqlite_migrations, sqlite_usage
from r13core.storage.base import (
    AUDIT_GENESIS,
    AdvisoryRecord,
    AuditLink,
    AuditRecord,
    BlockRecord,
    JSONDict,
    KeyRecord,
    NameHolder,
    PackageRecord,
    RenderRecord,
    Storage,
    TarballRecord,
    UserRecord,
    WebLoginRecord,
    WriteTxn,
    audit_hash,
)

# A migration is a script, a tuple of whole statements, or a function of the
# connection (r13core/storage/sqlite_migrations.py) for what SQL cannot do alone.
Migration = str | tuple[str, ...] | Callable[[sqlite3.Connection], None]
_MIGRATIONS: Final[tuple[Migration, ...]] = (
    # 1: the first schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta (key, value) VALUES ('seq', 0);
    CREATE TABLE packages (
        name TEXT PRIMARY KEY,
        rev INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE TABLE tarballs (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        sha512 TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE INDEX tarballs_sha512 ON tarballs (sha512);
    CREATE TABLE used_versions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        sha512 TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE renders (
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        rev INTEGER NOT NULL,
        key TEXT NOT NULL,
        body BLOB NOT NULL,
        gzip BLOB NOT NULL,
        etag TEXT NOT NULL,
        PRIMARY KEY (name, kind)
    );
    CREATE TABLE advisories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        package TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX advisories_package ON advisories (package);
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL UNIQUE,
        permission INTEGER NOT NULL,
        created REAL NOT NULL,
        expires REAL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: a search summary per package, so search never parses whole documents.
    """
    ALTER TABLE packages ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
    """,
    # 3: identity: users, key owners/limits/scopes/usage, IP blocks, the append-only
    # audit log, shared security counters, pending web logins. A tuple: the triggers
    # hold semicolons, so each statement is given whole.
    (
        "ALTER TABLE api_keys ADD COLUMN owner TEXT",
        "ALTER TABLE api_keys ADD COLUMN rate_limit INTEGER",
        "ALTER TABLE api_keys ADD COLUMN cidr TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE api_keys ADD COLUMN packages TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE api_keys ADD COLUMN description TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE api_keys ADD COLUMN last_used REAL",
        "ALTER TABLE api_keys ADD COLUMN use_count INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX api_keys_owner ON api_keys (owner)",
        """CREATE TABLE users (
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            email TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL
        )""",
        """CREATE TABLE ip_blocks (
            ip TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL
        )""",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            ip TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX audit_log_action ON audit_log (action, id)",
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TABLE security_counters (
            kind TEXT NOT NULL,
            label TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (kind, label)
        )""",
        """CREATE TABLE web_logins (
            id TEXT PRIMARY KEY,
            done_hash TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            username TEXT,
            token TEXT
        )""",
    ),
    # 4: per-package daily usage counts (r13core/storage/sqlite_usage.py).
    sqlite_usage.MIGRATION,
    # 5: blocks have a kind: 'manual' (an admin's, refuses everything) or 'auto' (from
    # strikes; a request with a valid key passes). Older automatic blocks are the
    # ones whose reason r13 wrote ("too many ...").
    (
        "ALTER TABLE ip_blocks ADD COLUMN kind TEXT NOT NULL DEFAULT 'manual'",
        "UPDATE ip_blocks SET kind = 'auto' WHERE reason LIKE 'too many %'",
    ),
    # 6: one name space for users and keys; bare keys named key:<id> in documents;
    # no web-login token kept in clear.
    sqlite_migrations.principals,
    # 7: the audit log becomes a hash chain.
    sqlite_migrations.audit_chain,
)


_U64: Final = struct.Struct("<Q")


class _Generation:
    """An 8-byte counter in a file beside the database, mapped shared into every process.

    Bumped (under ``flock``) after every committed change to keys, users or blocks;
    read with one 8-byte load from the mapping, so checking it costs well under a
    microsecond. Readers only compare it for equality: a torn read can only cause
    a spurious cache flush, never a missed change.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pid = -1
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()

    def _open(self) -> mmap.mmap:
        with self._lock:
            if self._pid != os.getpid() or self._map is None:
                # After fork, an inherited descriptor would share its flock with the parent.
                # Private: whoever could write it could hide a revocation from every cache.
                fd = open_private(self.path)
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_size < _U64.size:
                        os.ftruncate(fd, _U64.size)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                self._map = mmap.mmap(fd, _U64.size, mmap.MAP_SHARED)
                self._fd = fd
                self._pid = os.getpid()
            return self._map

    def read(self) -> int:
        mapped = self._map if self._pid == os.getpid() else None
        if mapped is None:
            mapped = self._open()
        return int(_U64.unpack_from(mapped)[0])

    def bump(self) -> None:
        mapped = self._open()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            _U64.pack_into(mapped, 0, (_U64.unpack_from(mapped)[0] + 1) & (2**64 - 1))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class _Txn(WriteTxn):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def package(self, name: str) -> PackageRecord | None:
        return _package(self._c, name)

    def save_package(self, name: str, doc: JSONDict, *, summary: JSONDict | None = None) -> int:
        (rev,) = self._c.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
        self._c.execute(
            "INSERT INTO packages (name, rev, doc, summary) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET "
            "rev = excluded.rev, doc = excluded.doc, summary = excluded.summary",
            (name, rev, _dumps(doc), _dumps(summary or {})),
        )
        self._c.execute("DELETE FROM renders WHERE name = ?", (name,))
        return int(rev)

    def delete_package(self, name: str) -> None:
        for table in ("packages", "tarballs", "renders"):
            self._c.execute(f"DELETE FROM {table} WHERE name = ?", (name,))

    def used_version(self, name: str, version: str) -> str | None:
        row = self._c.execute(
            "SELECT sha512 FROM used_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return None if row is None else str(row[0])

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


def _dumps(value: JSONDict) -> str:
    return json.dumps(value, separators=(",", ":"))


def _package(conn: sqlite3.Connection, name: str) -> PackageRecord | None:
    row = conn.execute("SELECT rev, doc FROM packages WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return PackageRecord(name, int(row[0]), json.loads(row[1]))


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        row[0],
        row[1],
        int(row[2]),
        float(row[3]),
        row[4],
        bool(row[5]),
        owner=row[6],
        rate_limit=row[7],
        cidr=tuple(json.loads(row[8])),
        packages=tuple(json.loads(row[9])),
        description=row[10],
        last_used=row[11],
        use_count=int(row[12]),
        role=row[13],
    )


_KEY_COLUMNS: Final = (
    "id, secret_hash, permission, created, expires, revoked, owner, rate_limit, cidr, "
    "packages, description, last_used, use_count"
)
# Keys are read with their owner's role (NULL when there is no owner or it is gone).
_KEY_SELECT: Final = (
    "SELECT "
    + ", ".join(f"k.{c.strip()}" for c in _KEY_COLUMNS.split(","))
    + ", u.role FROM api_keys k LEFT JOIN users u ON u.name = k.owner"
)


def _key_params(record: KeyRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.secret_hash,
        record.permission,
        record.created,
        record.expires,
        int(record.revoked),
        record.owner,
        record.rate_limit,
        json.dumps(list(record.cidr)),
        json.dumps(list(record.packages)),
        record.description,
        record.last_used,
        record.use_count,
    )


def _user(row: Any) -> UserRecord:
    return UserRecord(row[0], row[1], row[2], row[3], float(row[4]))


def _web_login(row: Any) -> WebLoginRecord:
    return WebLoginRecord(row[0], row[1], float(row[2]), float(row[3]), row[4])


def _revoke_keys_of(conn: sqlite3.Connection, owner: str, above: int | None) -> list[str]:
    rows = conn.execute(
        "UPDATE api_keys SET revoked = 1 WHERE owner = ? AND revoked = 0 AND permission > ? "
        "RETURNING id",
        (owner, -1 if above is None else above),
    ).fetchall()
    return sorted(r[0] for r in rows)


class SQLiteStorage(sqlite_usage.SQLiteUsage, Storage):
    """Metadata in one SQLite file at ``path`` (created and migrated on first use)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._migrated_pid = -1
        self._lock = threading.Lock()
        # Changes to keys, users and blocks, counted across processes (see auth_version).
        self._generation = _Generation(Path(str(self.path) + "-authgen"))

    # -- connections ----------------------------------------------------------

    def _private_files(self) -> None:
        """The database is created 0600, so SQLite makes its -wal and -shm 0600 too.

        SQLite gives those the database file's mode; an existing install's 0644
        files are narrowed. (Never open+close them here: closing any descriptor of
        a file drops this process's POSIX locks on it, SQLite's included.)
        """
        with suppress(FileExistsError):
            os.close(
                os.open(
                    self.path,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    FILE_MODE,
                )
            )
        for suffix in ("", "-wal", "-shm"):
            narrow_file(str(self.path) + suffix)

    def _conn(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == pid:
            return conn
        # New thread, or a forked child holding its parent's connection: never reuse
        # (and never close) an inherited one; open our own.
        self._private_files()
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn = conn
        self._local.pid = pid
        if self._migrated_pid != pid:
            with self._lock:
                if self._migrated_pid != pid:
                    self._migrate(conn)
                    self._migrated_pid = pid
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            for number, script in enumerate(_MIGRATIONS, start=1):
                if number > version:
                    if callable(script):
                        script(conn)
                    else:
                        statements = script.split(";") if isinstance(script, str) else script
                        for statement in statements:
                            if statement.strip():
                                conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def pragma(self, name: str) -> Any:
        """Read a PRAGMA on this thread's connection (for tests and diagnostics)."""
        if not name.replace("_", "").isalpha():
            raise ValueError(name)
        return self._conn().execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    # -- package state --------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _Txn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def package(self, name: str) -> PackageRecord | None:
        """The committed package, or None."""
        return _package(self._conn(), name)

    def package_rev(self, name: str) -> int | None:
        """The package's rev, or None."""
        row = self._conn().execute("SELECT rev FROM packages WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def packages(self) -> Iterator[PackageRecord]:
        """Every package, by name."""
        rows = self._conn().execute("SELECT name, rev, doc FROM packages ORDER BY name").fetchall()
        for name, rev, doc in rows:
            yield PackageRecord(name, int(rev), json.loads(doc))

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
        return _Txn(self._conn()).used_version(name, version)

    def blob_refs(self) -> set[str]:
        """Every referenced blob."""
        return {r[0] for r in self._conn().execute("SELECT DISTINCT sha512 FROM tarballs")}

    def blobs_in_use(self, hashes: Iterable[str]) -> set[str]:
        """Those of ``hashes`` some tarball row refers to (indexed lookups)."""
        wanted = sorted(set(hashes))
        found: set[str] = set()
        conn = self._conn()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT DISTINCT sha512 FROM tarballs WHERE sha512 IN ({marks})", chunk
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
        """Cache a render if its rev is still current."""
        cur = self._conn().execute(
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

    # -- advisories -------------------------------------------------------------

    def add_advisory(self, package: str, data: JSONDict) -> int:
        """Store an advisory; its id."""
        cur = self._conn().execute(
            "INSERT INTO advisories (package, data) VALUES (?, ?)", (package, json.dumps(data))
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
            wanted = sorted(set(packages))
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
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
        cur = self._conn().execute("DELETE FROM advisories WHERE id = ?", (advisory_id,))
        return cur.rowcount > 0

    # -- keys ---------------------------------------------------------------------

    def add_key(self, record: KeyRecord) -> bool:
        """Store a key; False if the id is taken by a key or a user (now or before)."""
        marks = ", ".join("?" * 13)
        with self._immediate() as conn:
            # The name first: its primary key (NOCASE) refuses any name already had.
            claimed = conn.execute(
                "INSERT OR IGNORE INTO principal_names (name, kind, created) VALUES (?, 'key', ?)",
                (record.id, record.created),
            )
            if claimed.rowcount == 0:
                return False
            conn.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({marks})", _key_params(record)
            )
        self._generation.bump()
        return True

    def name_holder(self, name: str) -> NameHolder | None:
        """Who has or had ``name`` (ignoring case)."""
        conn = self._conn()
        row = conn.execute(
            "SELECT name, kind FROM principal_names WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        if row[1] == "key":
            return "key"
        present = conn.execute("SELECT 1 FROM users WHERE name = ?", (row[0],)).fetchone()
        return "user" if present else "former user"

    def get_key(self, key_id: str) -> KeyRecord | None:
        """The key with this id."""
        row = self._conn().execute(f"{_KEY_SELECT} WHERE k.id = ?", (key_id,)).fetchone()
        return None if row is None else _key(row)

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The key with this secret hash."""
        row = (
            self._conn()
            .execute(f"{_KEY_SELECT} WHERE k.secret_hash = ?", (secret_hash,))
            .fetchone()
        )
        return None if row is None else _key(row)

    def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        rows = self._conn().execute(f"{_KEY_SELECT} ORDER BY k.created, k.id")
        return [_key(r) for r in rows]

    def keys_of(self, owner: str) -> list[KeyRecord]:
        """Every key of ``owner``, oldest first."""
        rows = self._conn().execute(
            f"{_KEY_SELECT} WHERE k.owner = ? ORDER BY k.created, k.id", (owner,)
        )
        return [_key(r) for r in rows]

    def revoke_keys_of(self, owner: str, *, above: int | None = None) -> list[str]:
        """Revoke ``owner``'s live keys (with permission > ``above``); their ids."""
        with self._immediate() as conn:
            ids = _revoke_keys_of(conn, owner, above)
        self._generation.bump()
        return ids

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key."""
        cur = self._conn().execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,))
        self._generation.bump()
        return cur.rowcount > 0

    def update_key(self, record: KeyRecord) -> bool:
        """Replace every field of a key but its id and usage."""
        params = _key_params(record)
        cur = self._conn().execute(
            "UPDATE api_keys SET secret_hash = ?, permission = ?, created = ?, expires = ?, "
            "revoked = ?, owner = ?, rate_limit = ?, cidr = ?, packages = ?, description = ? "
            "WHERE id = ?",
            (*params[1:11], record.id),
        )
        self._generation.bump()
        return cur.rowcount > 0

    def record_key_usage(self, usage: list[tuple[str, int, float]]) -> None:
        """Add uses and move last_used forward (one transaction)."""
        if not usage:
            return
        with self._immediate() as conn:
            conn.executemany(
                "UPDATE api_keys SET use_count = use_count + ?, "
                "last_used = max(coalesce(last_used, 0), ?) WHERE id = ?",
                [(n, at, key_id) for key_id, n, at in usage],
            )

    def auth_version(self) -> object:
        """The generation of keys, users and blocks, shared by every process of this file.

        Every method here that changes them bumps it after the change is committed,
        whichever process or thread makes it (workers, the CLI), so a cache checked
        against it sees the change on its next lookup. One read from shared memory.
        (Changes made with other tools, e.g. the sqlite3 shell, are not seen until
        the next change made through r13 or a restart.)
        """
        return self._generation.read()

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- users --------------------------------------------------------------------

    def add_user(self, record: UserRecord, *, reclaim: bool = False) -> bool:
        """Store a user; False if the name is taken (by a user, a key, a removed user)."""
        with self._immediate() as conn:
            claimed = conn.execute(
                "INSERT OR IGNORE INTO principal_names (name, kind, created) VALUES (?, 'user', ?)",
                (record.name, record.created),
            )
            if claimed.rowcount == 0:
                if not reclaim:
                    return False
                # Only a removed user's name can be taken back, never a key's.
                row = conn.execute(
                    "SELECT kind FROM principal_names WHERE name = ?", (record.name,)
                ).fetchone()
                if row is None or row[0] != "user":
                    return False
            cur = conn.execute(
                "INSERT OR IGNORE INTO users (name, password_hash, role, email, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.name, record.password_hash, record.role, record.email, record.created),
            )
            if cur.rowcount == 0:
                return False
        self._generation.bump()
        return True

    def get_user(self, name: str) -> UserRecord | None:
        """The user, or None."""
        row = (
            self._conn()
            .execute(
                "SELECT name, password_hash, role, email, created FROM users WHERE name = ?",
                (name,),
            )
            .fetchone()
        )
        return None if row is None else _user(row)

    def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        rows = self._conn().execute(
            "SELECT name, password_hash, role, email, created FROM users ORDER BY name"
        )
        return [_user(r) for r in rows]

    def update_user(self, record: UserRecord) -> bool:
        """Replace password hash, role and email."""
        cur = self._conn().execute(
            "UPDATE users SET password_hash = ?, role = ?, email = ? WHERE name = ?",
            (record.password_hash, record.role, record.email, record.name),
        )
        self._generation.bump()
        return cur.rowcount > 0

    def update_user_revoking(self, record: UserRecord, *, above: int) -> list[str] | None:
        """Update the user and revoke its keys above ``above`` (one transaction)."""
        with self._immediate() as conn:
            cur = conn.execute(
                "UPDATE users SET password_hash = ?, role = ?, email = ? WHERE name = ?",
                (record.password_hash, record.role, record.email, record.name),
            )
            if cur.rowcount == 0:
                return None
            ids = _revoke_keys_of(conn, record.name, above)
        self._generation.bump()
        return ids

    def remove_user(self, name: str) -> bool:
        """Delete the user and revoke its keys."""
        with self._immediate() as conn:
            cur = conn.execute("DELETE FROM users WHERE name = ?", (name,))
            conn.execute("UPDATE api_keys SET revoked = 1 WHERE owner = ?", (name,))
        self._generation.bump()
        return cur.rowcount > 0

    # -- IP blocks ------------------------------------------------------------------

    def add_block(self, record: BlockRecord) -> None:
        """Block an IP."""
        self._conn().execute(
            "INSERT OR REPLACE INTO ip_blocks (ip, reason, created, expires, kind) "
            "VALUES (?, ?, ?, ?, ?)",
            (record.ip, record.reason, record.created, record.expires, record.kind),
        )
        self._generation.bump()

    def remove_block(self, ip: str) -> bool:
        """Lift a block."""
        cur = self._conn().execute("DELETE FROM ip_blocks WHERE ip = ?", (ip,))
        self._generation.bump()
        return cur.rowcount > 0

    def list_blocks(self) -> list[BlockRecord]:
        """Every block, by IP."""
        rows = self._conn().execute(
            "SELECT ip, reason, created, expires, kind FROM ip_blocks ORDER BY ip"
        )
        return [BlockRecord(r[0], r[1], float(r[2]), r[3], r[4]) for r in rows]

    # -- audit log --------------------------------------------------------------------

    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int:
        """Append an event chained to the last one (triggers refuse UPDATE and DELETE)."""
        text = _dumps(detail)
        at = float(at)
        with self._immediate() as conn:
            last = conn.execute(
                "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
            ).fetchone()
            event_id, prev = (1, AUDIT_GENESIS) if last is None else (int(last[0]) + 1, last[1])
            conn.execute(
                "INSERT INTO audit_log (id, at, actor, action, target, ip, detail, prev_hash, "
                "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_id,
                    at,
                    actor,
                    action,
                    target,
                    ip,
                    text,
                    prev,
                    audit_hash(prev, event_id, at, actor, action, target, ip, text),
                ),
            )
        return event_id

    def audit_links(self, *, after: int = 0, limit: int = 1000) -> list[AuditLink]:
        """Events after ``after``, oldest first, as stored."""
        rows = self._conn().execute(
            "SELECT id, at, actor, action, target, ip, detail, prev_hash, hash FROM audit_log "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [
            AuditLink(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8])
            for r in rows
        ]

    def audit_events(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Newest first, paged by id."""
        where = ["id < ?"]
        params: list[Any] = [before if before is not None else 2**62]
        if action is not None:
            where.append("action = ?")
            params.append(action)
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        params.append(limit)
        rows = self._conn().execute(
            "SELECT id, at, actor, action, target, ip, detail FROM audit_log "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            params,
        )
        return [
            AuditRecord(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]))
            for r in rows
        ]

    # -- shared counters ------------------------------------------------------------------

    def add_counters(self, deltas: list[tuple[str, str, int]]) -> None:
        """Add deltas in one transaction."""
        if not deltas:
            return
        with self._immediate() as conn:
            conn.executemany(
                "INSERT INTO security_counters (kind, label, count) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, label) DO UPDATE SET count = count + excluded.count",
                deltas,
            )

    def counters(self) -> list[tuple[str, str, int]]:
        """Every counter."""
        rows = self._conn().execute(
            "SELECT kind, label, count FROM security_counters ORDER BY kind, label"
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    # -- web logins ---------------------------------------------------------------------------

    def add_web_login(self, record: WebLoginRecord) -> None:
        """Store a pending login; drop expired ones."""
        with self._immediate() as conn:
            conn.execute("DELETE FROM web_logins WHERE expires < ?", (record.created,))
            conn.execute(
                "INSERT INTO web_logins (id, done_hash, created, expires, username) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.id, record.done_hash, record.created, record.expires, record.username),
            )

    def get_web_login(self, login_id: str) -> WebLoginRecord | None:
        """The pending login, or None."""
        row = (
            self._conn()
            .execute(
                "SELECT id, done_hash, created, expires, username FROM web_logins WHERE id = ?",
                (login_id,),
            )
            .fetchone()
        )
        return None if row is None else _web_login(row)

    def approve_web_login(self, login_id: str, username: str) -> bool:
        """Mark approved, once."""
        cur = self._conn().execute(
            "UPDATE web_logins SET username = ? WHERE id = ? AND username IS NULL",
            (username, login_id),
        )
        return cur.rowcount > 0

    def take_web_login(self, login_id: str, now: float) -> WebLoginRecord | None:
        """Remove and return an approved, unexpired login."""
        row = (
            self._conn()
            .execute(
                "DELETE FROM web_logins WHERE id = ? AND username IS NOT NULL AND expires > ? "
                "RETURNING id, done_hash, created, expires, username",
                (login_id, now),
            )
            .fetchone()
        )
        return None if row is None else _web_login(row)
