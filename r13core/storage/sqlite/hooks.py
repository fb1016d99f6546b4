"""The hooks concern (r13core/storage/hooks.py) in SQLite.

Tables (migration 9): ``hooks``, ``hook_events`` (each event's body once),
``hook_deliveries`` (the queue: one row per event and hook; ``seq`` orders
them) and ``hook_attempts`` (the log). The module-level functions are shared
with the package write transaction (r13core/storage/sqlite/packages.py), which
queues a change's deliveries on its own connection, inside its own transaction.

Claims are one ``BEGIN IMMEDIATE`` transaction: SQLite has one writer at a time,
so two processes never claim the same row.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any, Final

from r13core.storage.hooks import (
    DELIVERED,
    FAILED,
    PENDING,
    STATES,
    AttemptRecord,
    Delivery,
    DeliveryRecord,
    HookEvent,
    HookRecord,
    HookStorage,
    body_text,
    delivery_from_row,
    hook_from_row,
)
from r13core.storage.sqlite.connection import SQLiteDatabase

_HOOK_COLUMNS: Final = (
    "id, owner, type, name, endpoint, secret, created_ms, updated_ms, "
    "last_delivery_ms, last_status, last_error"
)
_DELIVERY_COLUMNS: Final = (
    "id, seq, hook_id, package, event, state, attempts, created_ms, next_ms, "
    "last_status, last_error, done_ms"
)


def any_hooks(conn: sqlite3.Connection) -> bool:
    """Whether the table has a hook (one indexed probe). A file written before migration
    9 (an old schema opened by a migration's own steps) has no table: no hooks."""
    try:
        return conn.execute("SELECT 1 FROM hooks LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return False
        raise


def hooks_for(conn: sqlite3.Connection, package: str, owners: Sequence[str]) -> list[HookRecord]:
    """Hooks on ``package``, on its scope, or on one of ``owners`` (indexed lookups)."""
    wanted: list[tuple[str, str]] = [("package", package)]
    if package.startswith("@") and "/" in package:
        wanted.append(("scope", package.split("/", 1)[0]))
    wanted += [("owner", o) for o in sorted(set(owners))]
    found: dict[str, HookRecord] = {}
    for kind, name in wanted:
        rows = conn.execute(
            f"SELECT {_HOOK_COLUMNS} FROM hooks WHERE type = ? AND name = ?", (kind, name)
        ).fetchall()
        for row in rows:
            hook = hook_from_row(row)
            found[hook.id] = hook
    return sorted(found.values(), key=lambda h: (h.created_ms, h.id))


def enqueue(
    conn: sqlite3.Connection, pairs: Sequence[tuple[str, HookEvent]], now_ms: int
) -> list[str]:
    """Insert each distinct event once and one pending delivery per pair; the delivery ids."""
    event_ids: dict[int, int] = {}
    ids: list[str] = []
    for hook_id, event in pairs:
        key = id(event)
        if key not in event_ids:
            (event_ids[key],) = conn.execute(
                "INSERT INTO hook_events (package, event, body, created_ms) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (event.package, event.event, body_text(event.body), now_ms),
            ).fetchone()
        delivery_id = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO hook_deliveries (id, hook_id, event_id, package, event, state, "
            "created_ms, next_ms) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
            (delivery_id, hook_id, event_ids[key], event.package, event.event, now_ms, now_ms),
        )
        ids.append(delivery_id)
    return ids


class SQLiteHooks(SQLiteDatabase, HookStorage):
    """Webhooks, their queue and log in the SQLite file."""

    def add_hook(self, hook: HookRecord) -> None:
        """Store a new hook."""
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO hooks ({_HOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hook.id,
                    hook.owner,
                    hook.type,
                    hook.name,
                    hook.endpoint,
                    hook.secret,
                    hook.created_ms,
                    hook.updated_ms,
                    hook.last_delivery_ms,
                    hook.last_status,
                    hook.last_error,
                ),
            )

    def hook(self, hook_id: str) -> HookRecord | None:
        """The hook, or None."""
        row = (
            self._conn()
            .execute(f"SELECT {_HOOK_COLUMNS} FROM hooks WHERE id = ?", (hook_id,))
            .fetchone()
        )
        return None if row is None else hook_from_row(row)

    def hooks(self, owner: str | None = None) -> list[HookRecord]:
        """Every hook (of ``owner``), oldest first."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        rows = (
            self._conn()
            .execute(f"SELECT {_HOOK_COLUMNS} FROM hooks {where} ORDER BY created_ms, id", args)
            .fetchall()
        )
        return [hook_from_row(r) for r in rows]

    def hooks_for(self, package: str, owners: Sequence[str]) -> list[HookRecord]:
        """The hooks a change to ``package`` concerns (indexed)."""
        return hooks_for(self._conn(), package, owners)

    def update_hook(
        self, hook_id: str, *, endpoint: str, secret: str, updated_ms: int
    ) -> HookRecord | None:
        """New endpoint and secret."""
        with self._transaction() as conn:
            row = conn.execute(
                f"UPDATE hooks SET endpoint = ?, secret = ?, updated_ms = ? WHERE id = ? "
                f"RETURNING {_HOOK_COLUMNS}",
                (endpoint, secret, updated_ms, hook_id),
            ).fetchone()
        return None if row is None else hook_from_row(row)

    def remove_hook(self, hook_id: str) -> bool:
        """The hook goes; its deliveries and attempts follow (ON DELETE CASCADE)."""
        with self._transaction() as conn:
            gone = conn.execute("DELETE FROM hooks WHERE id = ?", (hook_id,)).rowcount
        return gone > 0

    def enqueue(self, hook_events: Sequence[tuple[str, HookEvent]], *, now_ms: int) -> list[str]:
        """Queue deliveries in a transaction of their own."""
        with self._transaction() as conn:
            return enqueue(conn, hook_events, now_ms)

    def claim(self, *, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[Delivery]:
        """Claim due deliveries (see the protocol) in one write transaction."""
        with self._transaction() as conn:
            seqs = [
                int(r[0])
                for r in conn.execute(
                    "SELECT d.seq FROM hook_deliveries d "
                    "WHERE d.state = 'pending' AND d.next_ms <= ? AND d.claimed_until <= ? "
                    "AND NOT EXISTS (SELECT 1 FROM hook_deliveries e "
                    "WHERE e.hook_id = d.hook_id AND e.package = d.package "
                    "AND e.state = 'pending' AND e.seq < d.seq) "
                    "ORDER BY d.seq LIMIT ?",
                    (now_ms, now_ms, limit),
                )
            ]
            if not seqs:
                return []
            marks = ",".join("?" * len(seqs))
            conn.execute(
                f"UPDATE hook_deliveries SET claimed_by = ?, claimed_until = ?, "
                f"attempts = attempts + 1 WHERE seq IN ({marks})",
                (worker, now_ms + lease_ms, *seqs),
            )
            rows = conn.execute(
                "SELECT d.id, d.seq, d.hook_id, d.package, d.event, e.body, h.endpoint, "
                "h.secret, d.attempts, d.created_ms FROM hook_deliveries d "
                "JOIN hook_events e ON e.id = d.event_id JOIN hooks h ON h.id = d.hook_id "
                f"WHERE d.seq IN ({marks}) ORDER BY d.seq",
                seqs,
            ).fetchall()
        return [Delivery.from_row(r) for r in rows]

    def finish(
        self,
        delivery: Delivery,
        *,
        worker: str,
        at_ms: int,
        status: int | None,
        error: str | None,
        duration_ms: float,
        outcome: str,
        next_ms: int = 0,
    ) -> bool:
        """Log the attempt; move the delivery on if ``worker`` still holds it."""
        if outcome not in STATES:
            raise ValueError(outcome)
        done = None if outcome == PENDING else at_ms
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO hook_attempts (delivery_id, hook_id, attempt, at_ms, status, "
                "error, duration_ms) SELECT ?, ?, ?, ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM hooks WHERE id = ?)",
                (
                    delivery.id,
                    delivery.hook_id,
                    delivery.attempts,
                    at_ms,
                    status,
                    error,
                    duration_ms,
                    delivery.hook_id,
                ),
            )
            moved = conn.execute(
                "UPDATE hook_deliveries SET state = ?, next_ms = ?, claimed_by = NULL, "
                "claimed_until = 0, last_status = ?, last_error = ?, done_ms = ? "
                "WHERE id = ? AND claimed_by = ? AND state = 'pending'",
                (outcome, next_ms, status, error, done, delivery.id, worker),
            ).rowcount
            conn.execute(
                "UPDATE hooks SET last_delivery_ms = ?, last_status = ?, last_error = ? "
                "WHERE id = ?",
                (at_ms, status, error, delivery.hook_id),
            )
        return moved > 0

    def deliveries(
        self, *, hook_id: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        """Newest first."""
        where: list[str] = []
        args: list[Any] = []
        if hook_id is not None:
            where.append("hook_id = ?")
            args.append(hook_id)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = (
            self._conn()
            .execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM hook_deliveries {clause} "
                "ORDER BY seq DESC LIMIT ?",
                (*args, limit),
            )
            .fetchall()
        )
        return [delivery_from_row(r) for r in rows]

    def attempts(self, *, hook_id: str | None = None, limit: int = 100) -> list[AttemptRecord]:
        """The log, newest first."""
        clause, args = ("WHERE hook_id = ?", (hook_id,)) if hook_id is not None else ("", ())
        rows = (
            self._conn()
            .execute(
                "SELECT delivery_id, hook_id, attempt, at_ms, status, error, duration_ms "
                f"FROM hook_attempts {clause} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            )
            .fetchall()
        )
        return [
            AttemptRecord(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                int(r[3]),
                None if r[4] is None else int(r[4]),
                None if r[5] is None else str(r[5]),
                float(r[6]),
            )
            for r in rows
        ]

    def queue_counts(self) -> dict[str, int]:
        """Deliveries per state."""
        counts = dict.fromkeys(STATES, 0)
        for state, n in self._conn().execute(
            "SELECT state, count(*) FROM hook_deliveries GROUP BY state"
        ):
            counts[str(state)] = int(n)
        return counts

    def prune_deliveries(self, before_ms: int) -> int:
        """Forget finished deliveries done before ``before_ms``, their log and lone events."""
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM hook_attempts WHERE delivery_id IN (SELECT id FROM hook_deliveries "
                "WHERE done_ms IS NOT NULL AND done_ms < ? AND state IN (?, ?))",
                (before_ms, DELIVERED, FAILED),
            )
            gone = conn.execute(
                "DELETE FROM hook_deliveries WHERE done_ms IS NOT NULL AND done_ms < ? "
                "AND state IN (?, ?)",
                (before_ms, DELIVERED, FAILED),
            ).rowcount
            conn.execute(
                "DELETE FROM hook_events WHERE NOT EXISTS "
                "(SELECT 1 FROM hook_deliveries d WHERE d.event_id = hook_events.id)"
            )
        return int(gone)


__all__ = ["SQLiteHooks", "any_hooks", "enqueue", "hooks_for"]
