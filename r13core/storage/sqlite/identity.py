"""The identity concern (r13core/storage/identity.py) in SQLite.

Tables: ``api_keys`` (only the secret's hash, UNIQUE), ``users``,
``principal_names`` (every name a key or user has had, ``COLLATE NOCASE``: the
one name space, claimed first in the transaction that adds a key or user),
``web_logins`` and ``ip_blocks``. Every transaction that changes keys, users
or blocks bumps :attr:`auth_changes`, a :class:`FileChangeSignal` beside the
database (``<file>-authgen``) shared by every process that opens it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from r13core.storage.identity import (
    BlockRecord,
    IdentityStorage,
    KeyRecord,
    NameHolder,
    UserRecord,
    WebLoginRecord,
)
from r13core.storage.signals import FileChangeSignal
from r13core.storage.sqlite.connection import SQLiteDatabase


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


def _revoke_keys_of(conn: sqlite3.Connection, owner: str, above: int | None) -> list[str]:
    rows = conn.execute(
        "UPDATE api_keys SET revoked = 1 WHERE owner = ? AND revoked = 0 AND permission > ? "
        "RETURNING id",
        (owner, -1 if above is None else above),
    ).fetchall()
    return sorted(r[0] for r in rows)


_UPDATE_USER: Final = "UPDATE users SET password_hash = ?, role = ?, email = ? WHERE name = ?"


def _user_update_params(record: UserRecord) -> tuple[str, str, str, str]:
    return (record.password_hash, record.role, record.email, record.name)


def _web_login(row: Any) -> WebLoginRecord:
    return WebLoginRecord(row[0], row[1], float(row[2]), float(row[3]), row[4])


class _Taken(Exception):
    """Rolls a batch of keys back when one of its names is taken."""


class SQLiteIdentity(SQLiteDatabase, IdentityStorage):
    """Keys, users, names, web logins and blocks in the SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 30_000,
        auto_migrate: bool = True,
    ) -> None:
        super().__init__(path, busy_timeout_ms=busy_timeout_ms, auto_migrate=auto_migrate)
        # Changes to keys, users and blocks, counted across processes (auth_version).
        self.auth_changes = FileChangeSignal(Path(f"{self.path}-authgen"))

    # -- keys ---------------------------------------------------------------------

    def add_key(self, record: KeyRecord) -> bool:
        """Store a key; False if the id is taken by a key or a user (now or before)."""
        marks = ", ".join("?" * 13)
        with self._transaction(self.auth_changes) as conn:
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
        return True

    def add_keys(self, records: Sequence[KeyRecord]) -> str | None:
        """Store every key in one transaction (one commit), or none: the first taken id."""
        if not records:
            return None
        marks = ", ".join("?" * 13)
        taken: list[str] = []
        try:
            with self._transaction(self.auth_changes) as conn:
                for record in records:
                    claimed = conn.execute(
                        "INSERT OR IGNORE INTO principal_names (name, kind, created) "
                        "VALUES (?, 'key', ?)",
                        (record.id, record.created),
                    )
                    if claimed.rowcount == 0:
                        taken.append(record.id)
                        raise _Taken  # roll the whole batch back
                conn.executemany(
                    f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({marks})",
                    [_key_params(record) for record in records],
                )
        except _Taken:
            return taken[0]
        return None

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
        with self._transaction(self.auth_changes) as conn:
            ids = _revoke_keys_of(conn, owner, above)
        return ids

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key."""
        with self._transaction(self.auth_changes) as conn:
            cur = conn.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,))
        return cur.rowcount > 0

    def update_key(self, record: KeyRecord) -> bool:
        """Replace every field of a key but its id and usage."""
        params = _key_params(record)
        with self._transaction(self.auth_changes) as conn:
            cur = conn.execute(
                "UPDATE api_keys SET secret_hash = ?, permission = ?, created = ?, expires = ?, "
                "revoked = ?, owner = ?, rate_limit = ?, cidr = ?, packages = ?, "
                "description = ? WHERE id = ?",
                (*params[1:11], record.id),
            )
        return cur.rowcount > 0

    def record_key_usage(self, usage: list[tuple[str, int, float]]) -> None:
        """Add uses and move last_used forward (one transaction; caches need no news of it)."""
        if not usage:
            return
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE api_keys SET use_count = use_count + ?, "
                "last_used = max(coalesce(last_used, 0), ?) WHERE id = ?",
                [(n, at, key_id) for key_id, n, at in usage],
            )

    # -- users --------------------------------------------------------------------

    def add_user(self, record: UserRecord, *, reclaim: bool = False) -> bool:
        """Store a user; False if the name is taken (by a user, a key, a removed user)."""
        with self._transaction(self.auth_changes) as conn:
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
        with self._transaction(self.auth_changes) as conn:
            cur = conn.execute(_UPDATE_USER, _user_update_params(record))
        return cur.rowcount > 0

    def update_user_revoking(self, record: UserRecord, *, above: int) -> list[str] | None:
        """Update the user and revoke its keys above ``above`` (one transaction)."""
        with self._transaction(self.auth_changes) as conn:
            cur = conn.execute(_UPDATE_USER, _user_update_params(record))
            if cur.rowcount == 0:
                return None
            ids = _revoke_keys_of(conn, record.name, above)
        return ids

    def remove_user(self, name: str) -> bool:
        """Delete the user and revoke its keys."""
        with self._transaction(self.auth_changes) as conn:
            cur = conn.execute("DELETE FROM users WHERE name = ?", (name,))
            conn.execute("UPDATE api_keys SET revoked = 1 WHERE owner = ?", (name,))
        return cur.rowcount > 0

    # -- IP blocks ------------------------------------------------------------------

    def add_block(self, record: BlockRecord) -> None:
        """Block an IP."""
        with self._transaction(self.auth_changes) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO ip_blocks (ip, reason, created, expires, kind) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.ip, record.reason, record.created, record.expires, record.kind),
            )

    def remove_block(self, ip: str) -> bool:
        """Lift a block."""
        with self._transaction(self.auth_changes) as conn:
            cur = conn.execute("DELETE FROM ip_blocks WHERE ip = ?", (ip,))
        return cur.rowcount > 0

    def list_blocks(self) -> list[BlockRecord]:
        """Every block, by IP."""
        rows = self._conn().execute(
            "SELECT ip, reason, created, expires, kind FROM ip_blocks ORDER BY ip"
        )
        return [BlockRecord(r[0], r[1], float(r[2]), r[3], r[4]) for r in rows]

    # -- web logins ---------------------------------------------------------------------------

    def add_web_login(self, record: WebLoginRecord) -> None:
        """Store a pending login; drop expired ones."""
        with self._transaction() as conn:
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
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE web_logins SET username = ? WHERE id = ? AND username IS NULL",
                (username, login_id),
            )
        return cur.rowcount > 0

    def take_web_login(self, login_id: str, now: float) -> WebLoginRecord | None:
        """Remove and return an approved, unexpired login."""
        with self._transaction() as conn:
            row = conn.execute(
                "DELETE FROM web_logins WHERE id = ? AND username IS NOT NULL AND expires > ? "
                "RETURNING id, done_hash, created, expires, username",
                (login_id, now),
            ).fetchone()
        return None if row is None else _web_login(row)
