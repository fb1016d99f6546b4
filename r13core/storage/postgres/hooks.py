"""The hooks concern (r13core/storage/hooks.py) in PostgreSQL.

Tables (the "webhooks" migration step): ``hooks``, ``hook_events``,
``hook_deliveries`` (the queue; ``seq`` orders it) and ``hook_attempts`` (the log),
as in SQLite (r13core/storage/sqlite/hooks.py). A package change queues its
deliveries inside its own transaction (r13core/storage/postgres/packages.py),
under the package's advisory lock, so one package's deliveries are numbered in
the order their changes committed.

Several nodes share the queue: a claim is one statement that locks the due rows
it picks with ``FOR UPDATE OF d SKIP LOCKED`` (a row another node is claiming
right now is skipped, never waited for or taken twice) and stamps them with a
lease; a row is re-checked against its newest version before it is taken, so a
row another node claimed a moment ago is not claimed again.
"""

from __future__ import annotations

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
from r13core.storage.postgres.connection import PgDatabase, PgTxn

_HOOK_COLUMNS: Final = (
    "id, owner, type, name, endpoint, secret, created_ms, updated_ms, "
    "last_delivery_ms, last_status, last_error"
)
_DELIVERY_COLUMNS: Final = (
    "id, seq, hook_id, package, event, state, attempts, created_ms, next_ms, "
    "last_status, last_error, done_ms"
)


def any_hooks(txn: PgTxn) -> bool:
    """Whether a hook exists."""
    return txn.execute("SELECT 1 FROM hooks LIMIT 1").fetchone() is not None


def hooks_for(txn: PgTxn, package: str, owners: Sequence[str]) -> list[HookRecord]:
    """Hooks on ``package``, its scope, or one of ``owners`` (one indexed query)."""
    scope = package.split("/", 1)[0] if package.startswith("@") and "/" in package else None
    rows = txn.execute(
        f"SELECT {_HOOK_COLUMNS} FROM hooks WHERE (type = 'package' AND name = %s) "
        "OR (type = 'scope' AND name = %s) OR (type = 'owner' AND name = ANY(%s)) "
        "ORDER BY created_ms, id",
        (package, scope, sorted(set(owners))),
    ).fetchall()
    return [hook_from_row(r) for r in rows]


def enqueue(txn: PgTxn, pairs: Sequence[tuple[str, HookEvent]], now_ms: int) -> list[str]:
    """Each distinct event once, one pending delivery per pair; the delivery ids."""
    event_ids: dict[int, int] = {}
    ids: list[str] = []
    for hook_id, event in pairs:
        key = id(event)
        if key not in event_ids:
            row = txn.execute(
                "INSERT INTO hook_events (package, event, body, created_ms) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (event.package, event.event, body_text(event.body), now_ms),
            ).fetchone()
            assert row is not None
            event_ids[key] = int(row[0])
        delivery_id = uuid.uuid4().hex
        txn.execute(
            "INSERT INTO hook_deliveries (id, hook_id, event_id, package, event, state, "
            "created_ms, next_ms) VALUES (%s, %s, %s, %s, %s, 'pending', %s, %s)",
            (delivery_id, hook_id, event_ids[key], event.package, event.event, now_ms, now_ms),
        )
        ids.append(delivery_id)
    return ids


class PgHooks(PgDatabase, HookStorage):
    """Webhooks, their queue and log in PostgreSQL (shared by every node)."""

    def add_hook(self, hook: HookRecord) -> None:
        """Store a new hook."""
        with self.transaction() as txn:
            txn.execute(
                f"INSERT INTO hooks ({_HOOK_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
        row = self.fetchone(f"SELECT {_HOOK_COLUMNS} FROM hooks WHERE id = %s", (hook_id,))
        return None if row is None else hook_from_row(row)

    def hooks(self, owner: str | None = None) -> list[HookRecord]:
        """Every hook (of ``owner``), oldest first."""
        if owner is None:
            rows = self.fetchall(f"SELECT {_HOOK_COLUMNS} FROM hooks ORDER BY created_ms, id")
        else:
            rows = self.fetchall(
                f"SELECT {_HOOK_COLUMNS} FROM hooks WHERE owner = %s ORDER BY created_ms, id",
                (owner,),
            )
        return [hook_from_row(r) for r in rows]

    def hooks_for(self, package: str, owners: Sequence[str]) -> list[HookRecord]:
        """The hooks a change to ``package`` concerns (read in a transaction of its own)."""
        with self.transaction() as txn:
            return hooks_for(txn, package, owners)

    def update_hook(
        self, hook_id: str, *, endpoint: str, secret: str, updated_ms: int
    ) -> HookRecord | None:
        """New endpoint and secret."""
        with self.transaction() as txn:
            row = txn.execute(
                "UPDATE hooks SET endpoint = %s, secret = %s, updated_ms = %s WHERE id = %s "
                f"RETURNING {_HOOK_COLUMNS}",
                (endpoint, secret, updated_ms, hook_id),
            ).fetchone()
        return None if row is None else hook_from_row(row)

    def remove_hook(self, hook_id: str) -> bool:
        """The hook goes; its deliveries and attempts follow (ON DELETE CASCADE)."""
        with self.transaction() as txn:
            return txn.execute("DELETE FROM hooks WHERE id = %s", (hook_id,)).rowcount > 0

    def enqueue(self, hook_events: Sequence[tuple[str, HookEvent]], *, now_ms: int) -> list[str]:
        """Queue deliveries in a transaction of their own."""
        with self.transaction() as txn:
            return enqueue(txn, hook_events, now_ms)

    def claim(self, *, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[Delivery]:
        """Claim due deliveries (``FOR UPDATE SKIP LOCKED``: see the module docstring)."""
        with self.transaction() as txn:
            rows = txn.execute(
                "WITH due AS (SELECT d.seq FROM hook_deliveries d "
                "WHERE d.state = 'pending' AND d.next_ms <= %s AND d.claimed_until <= %s "
                "AND NOT EXISTS (SELECT 1 FROM hook_deliveries e "
                "WHERE e.hook_id = d.hook_id AND e.package = d.package "
                "AND e.state = 'pending' AND e.seq < d.seq) "
                "ORDER BY d.seq LIMIT %s FOR UPDATE OF d SKIP LOCKED) "
                "UPDATE hook_deliveries d SET claimed_by = %s, claimed_until = %s, "
                "attempts = d.attempts + 1 FROM due WHERE d.seq = due.seq RETURNING d.seq",
                (now_ms, now_ms, limit, worker, now_ms + lease_ms),
            ).fetchall()
            seqs = sorted(int(r[0]) for r in rows)
            if not seqs:
                return []
            found = txn.execute(
                "SELECT d.id, d.seq, d.hook_id, d.package, d.event, e.body, h.endpoint, "
                "h.secret, d.attempts, d.created_ms FROM hook_deliveries d "
                "JOIN hook_events e ON e.id = d.event_id JOIN hooks h ON h.id = d.hook_id "
                "WHERE d.seq = ANY(%s) ORDER BY d.seq",
                (seqs,),
            ).fetchall()
        return [Delivery.from_row(r) for r in found]

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
        with self.transaction() as txn:
            txn.execute(
                "INSERT INTO hook_attempts (delivery_id, hook_id, attempt, at_ms, status, "
                "error, duration_ms) SELECT %s, %s, %s, %s, %s, %s, %s "
                "WHERE EXISTS (SELECT 1 FROM hooks WHERE id = %s)",
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
            moved = txn.execute(
                "UPDATE hook_deliveries SET state = %s, next_ms = %s, claimed_by = NULL, "
                "claimed_until = 0, last_status = %s, last_error = %s, done_ms = %s "
                "WHERE id = %s AND claimed_by = %s AND state = 'pending'",
                (outcome, next_ms, status, error, done, delivery.id, worker),
            ).rowcount
            txn.execute(
                "UPDATE hooks SET last_delivery_ms = %s, last_status = %s, last_error = %s "
                "WHERE id = %s",
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
            where.append("hook_id = %s")
            args.append(hook_id)
        if state is not None:
            where.append("state = %s")
            args.append(state)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self.fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM hook_deliveries {clause} ORDER BY seq DESC LIMIT %s",
            (*args, limit),
        )
        return [delivery_from_row(r) for r in rows]

    def attempts(self, *, hook_id: str | None = None, limit: int = 100) -> list[AttemptRecord]:
        """The log, newest first."""
        clause, args = ("WHERE hook_id = %s", (hook_id,)) if hook_id is not None else ("", ())
        rows = self.fetchall(
            "SELECT delivery_id, hook_id, attempt, at_ms, status, error, duration_ms "
            f"FROM hook_attempts {clause} ORDER BY id DESC LIMIT %s",
            (*args, limit),
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
        for state, n in self.fetchall("SELECT state, count(*) FROM hook_deliveries GROUP BY state"):
            counts[str(state)] = int(n)
        return counts

    def prune_deliveries(self, before_ms: int) -> int:
        """Forget finished deliveries done before ``before_ms``, their log and lone events."""
        with self.transaction() as txn:
            txn.execute(
                "DELETE FROM hook_attempts WHERE delivery_id IN (SELECT id FROM hook_deliveries "
                "WHERE done_ms IS NOT NULL AND done_ms < %s AND state IN (%s, %s))",
                (before_ms, DELIVERED, FAILED),
            )
            gone = txn.execute(
                "DELETE FROM hook_deliveries WHERE done_ms IS NOT NULL AND done_ms < %s "
                "AND state IN (%s, %s)",
                (before_ms, DELIVERED, FAILED),
            ).rowcount
            txn.execute(
                "DELETE FROM hook_events WHERE NOT EXISTS "
                "(SELECT 1 FROM hook_deliveries d WHERE d.event_id = hook_events.id)"
            )
        return int(gone)


__all__ = ["PgHooks", "any_hooks", "enqueue", "hooks_for"]
