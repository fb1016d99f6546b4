"""The identity concern (r13core/storage/identity.py) in PostgreSQL.

Tables: ``api_keys`` (only the secret's hash, UNIQUE), ``users``,
``principal_names`` (every name a key or user has had; its primary key is the
name with ASCII letters lowered, as SQLite's ``COLLATE NOCASE`` compares: the
one name space, claimed first in the transaction that adds a key or user),
``web_logins``, ``ip_blocks``. Every transaction that changes keys, users or
blocks bumps :attr:`auth_changes` after its commit: this node's counter file,
and a NOTIFY for the other nodes (r13core/storage/postgres/signals.py).
"""

from __future__ import annotations

import json
from typing import Any, Final

from r13core.storage.identity import (
    BlockRecord,
    IdentityStorage,
    KeyRecord,
    NameHolder,
    UserRecord,
    WebLoginRecord,
)
from r13core.storage.postgres.connection import PgDatabase, PgTxn

_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def folded(name: str) -> str:
    """``name`` as the name space compares it: ASCII letters lowered (SQLite's NOCASE)."""
    return name.translate(_ASCII_LOWER)


_KEY_COLUMNS: Final = (
    "id, secret_hash, permission, created, expires, revoked, owner, rate_limit, cidr, "
    "packages, description, last_used, use_count"
)
_KEY_SELECT: Final = (
    "SELECT "
    + ", ".join(f"k.{c.strip()}" for c in _KEY_COLUMNS.split(","))
    + ", u.role FROM api_keys k LEFT JOIN users u ON u.name = k.owner"
)


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


def _key_params(record: KeyRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.secret_hash,
        record.permission,
        record.created,
        record.expires,
        bool(record.revoked),
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


def _revoke_keys_of(txn: PgTxn, owner: str, above: int | None) -> list[str]:
    rows = txn.execute(
        "UPDATE api_keys SET revoked = TRUE WHERE owner = %s AND NOT revoked "
        "AND permission > %s RETURNING id",
        (owner, -1 if above is None else above),
    ).fetchall()
    return sorted(r[0] for r in rows)


def _claim(txn: PgTxn, name: str, kind: str, created: float) -> bool:
    cur = txn.execute(
        "INSERT INTO principal_names (folded, name, kind, created) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (folded) DO NOTHING",
        (folded(name), name, kind, created),
    )
    return cur.rowcount > 0


_UPDATE_USER: Final = "UPDATE users SET password_hash = %s, role = %s, email = %s WHERE name = %s"


def _user_update_params(record: UserRecord) -> tuple[str, str, str, str]:
    return (record.password_hash, record.role, record.email, record.name)


class PgIdentity(PgDatabase, IdentityStorage):
    """Keys, users, names, web logins and blocks in PostgreSQL."""

    # -- keys ---------------------------------------------------------------------

    def add_key(self, record: KeyRecord) -> bool:
        """Store a key; False if the id is taken by a key or a user (now or before)."""
        marks = ", ".join(["%s"] * 13)
        with self.transaction(self.auth_changes) as txn:
            if not _claim(txn, record.id, "key", record.created):
                return False
            txn.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({marks})", _key_params(record)
            )
        return True

    def name_holder(self, name: str) -> NameHolder | None:
        """Who has or had ``name`` (ignoring ASCII case)."""
        row = self.fetchone(
            "SELECT p.kind, EXISTS (SELECT 1 FROM users u WHERE u.name = p.name) "
            "FROM principal_names p WHERE p.folded = %s",
            (folded(name),),
        )
        if row is None:
            return None
        if row[0] == "key":
            return "key"
        return "user" if row[1] else "former user"

    def get_key(self, key_id: str) -> KeyRecord | None:
        """The key with this id."""
        row = self.fetchone(f"{_KEY_SELECT} WHERE k.id = %s", (key_id,))
        return None if row is None else _key(row)

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The key with this secret hash."""
        row = self.fetchone(f"{_KEY_SELECT} WHERE k.secret_hash = %s", (secret_hash,))
        return None if row is None else _key(row)

    def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        return [
            _key(r) for r in self.fetchall(f'{_KEY_SELECT} ORDER BY k.created, k.id COLLATE "C"')
        ]

    def keys_of(self, owner: str) -> list[KeyRecord]:
        """Every key of ``owner``, oldest first."""
        rows = self.fetchall(
            f'{_KEY_SELECT} WHERE k.owner = %s ORDER BY k.created, k.id COLLATE "C"', (owner,)
        )
        return [_key(r) for r in rows]

    def revoke_keys_of(self, owner: str, *, above: int | None = None) -> list[str]:
        """Revoke ``owner``'s live keys (with permission > ``above``); their ids."""
        with self.transaction(self.auth_changes) as txn:
            return _revoke_keys_of(txn, owner, above)

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key."""
        with self.transaction(self.auth_changes) as txn:
            cur = txn.execute("UPDATE api_keys SET revoked = TRUE WHERE id = %s", (key_id,))
            return cur.rowcount > 0

    def update_key(self, record: KeyRecord) -> bool:
        """Replace every field of a key but its id and usage."""
        params = _key_params(record)
        with self.transaction(self.auth_changes) as txn:
            cur = txn.execute(
                "UPDATE api_keys SET secret_hash = %s, permission = %s, created = %s, "
                "expires = %s, revoked = %s, owner = %s, rate_limit = %s, cidr = %s, "
                "packages = %s, description = %s WHERE id = %s",
                (*params[1:11], record.id),
            )
            return cur.rowcount > 0

    def record_key_usage(self, usage: list[tuple[str, int, float]]) -> None:
        """Add uses and move last_used forward (one transaction; caches need no news of it)."""
        if not usage:
            return
        with self.transaction() as txn, txn.conn.cursor() as cur:
            cur.executemany(
                "UPDATE api_keys SET use_count = use_count + %s, "
                "last_used = greatest(coalesce(last_used, 0), %s) WHERE id = %s",
                [(n, at, key_id) for key_id, n, at in usage],
            )

    # -- users --------------------------------------------------------------------

    def add_user(self, record: UserRecord, *, reclaim: bool = False) -> bool:
        """Store a user; False if the name is taken (by a user, a key, a removed user)."""
        with self.transaction(self.auth_changes) as txn:
            if not _claim(txn, record.name, "user", record.created):
                if not reclaim:
                    return False
                # Only a removed user's name can be taken back, never a key's.
                row = txn.execute(
                    "SELECT kind FROM principal_names WHERE folded = %s FOR UPDATE",
                    (folded(record.name),),
                ).fetchone()
                if row is None or row[0] != "user":
                    return False
            cur = txn.execute(
                "INSERT INTO users (name, password_hash, role, email, created) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (record.name, record.password_hash, record.role, record.email, record.created),
            )
            if cur.rowcount == 0:
                return False
        return True

    def get_user(self, name: str) -> UserRecord | None:
        """The user, or None."""
        row = self.fetchone(
            "SELECT name, password_hash, role, email, created FROM users WHERE name = %s", (name,)
        )
        return None if row is None else _user(row)

    def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        rows = self.fetchall(
            'SELECT name, password_hash, role, email, created FROM users ORDER BY name COLLATE "C"'
        )
        return [_user(r) for r in rows]

    def update_user(self, record: UserRecord) -> bool:
        """Replace password hash, role and email."""
        with self.transaction(self.auth_changes) as txn:
            return txn.execute(_UPDATE_USER, _user_update_params(record)).rowcount > 0

    def update_user_revoking(self, record: UserRecord, *, above: int) -> list[str] | None:
        """Update the user and revoke its keys above ``above`` (one transaction)."""
        with self.transaction(self.auth_changes) as txn:
            if txn.execute(_UPDATE_USER, _user_update_params(record)).rowcount == 0:
                return None
            return _revoke_keys_of(txn, record.name, above)

    def remove_user(self, name: str) -> bool:
        """Delete the user and revoke its keys."""
        with self.transaction(self.auth_changes) as txn:
            cur = txn.execute("DELETE FROM users WHERE name = %s", (name,))
            txn.execute("UPDATE api_keys SET revoked = TRUE WHERE owner = %s", (name,))
            return cur.rowcount > 0

    # -- IP blocks ------------------------------------------------------------------

    def add_block(self, record: BlockRecord) -> None:
        """Block an IP (replacing a block of the same IP)."""
        with self.transaction(self.auth_changes) as txn:
            txn.execute(
                "INSERT INTO ip_blocks (ip, reason, created, expires, kind) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (ip) DO UPDATE SET "
                "reason = excluded.reason, created = excluded.created, "
                "expires = excluded.expires, kind = excluded.kind",
                (record.ip, record.reason, record.created, record.expires, record.kind),
            )

    def remove_block(self, ip: str) -> bool:
        """Lift a block."""
        with self.transaction(self.auth_changes) as txn:
            return txn.execute("DELETE FROM ip_blocks WHERE ip = %s", (ip,)).rowcount > 0

    def list_blocks(self) -> list[BlockRecord]:
        """Every block, by IP."""
        rows = self.fetchall(
            'SELECT ip, reason, created, expires, kind FROM ip_blocks ORDER BY ip COLLATE "C"'
        )
        return [BlockRecord(r[0], r[1], float(r[2]), r[3], r[4]) for r in rows]

    # -- web logins ---------------------------------------------------------------------------

    def add_web_login(self, record: WebLoginRecord) -> None:
        """Store a pending login; drop expired ones."""
        with self.transaction() as txn:
            txn.execute("DELETE FROM web_logins WHERE expires < %s", (record.created,))
            txn.execute(
                "INSERT INTO web_logins (id, done_hash, created, expires, username) "
                "VALUES (%s, %s, %s, %s, %s)",
                (record.id, record.done_hash, record.created, record.expires, record.username),
            )

    def get_web_login(self, login_id: str) -> WebLoginRecord | None:
        """The pending login, or None."""
        row = self.fetchone(
            "SELECT id, done_hash, created, expires, username FROM web_logins WHERE id = %s",
            (login_id,),
        )
        return None if row is None else _web_login(row)

    def approve_web_login(self, login_id: str, username: str) -> bool:
        """Mark approved, once."""
        return (
            self.execute(
                "UPDATE web_logins SET username = %s WHERE id = %s AND username IS NULL",
                (username, login_id),
            )
            > 0
        )

    def take_web_login(self, login_id: str, now: float) -> WebLoginRecord | None:
        """Remove and return an approved, unexpired login (one statement)."""
        row = self.fetchone(
            "DELETE FROM web_logins WHERE id = %s AND username IS NOT NULL AND expires > %s "
            "RETURNING id, done_hash, created, expires, username",
            (login_id, now),
        )
        return None if row is None else _web_login(row)
