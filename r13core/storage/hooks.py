"""The hooks concern of storage: webhooks, their durable delivery queue and delivery log.

* hooks: who made one (the principal that manages it), what it watches (a
  package, a scope, or the packages of an owner), where it sends (endpoint),
  the secret it signs with, when it last delivered and with what answer;
* the queue: one row per (event, hook), written by the package change's own
  write transaction (:meth:`r13core.storage.packages.WriteTxn.enqueue_hooks`), so a
  committed change always has its deliveries and a rolled-back one has none.
  A delivery worker *claims* due rows for a lease (``claimed_until``): a worker
  that dies mid-delivery leaves rows that are claimed again once the lease ends
  (at least once). Rows of one (hook, package) are claimed in order, one at a
  time: a delivery waits until the one before it is delivered or has failed;
* the log: one row per attempt (time, HTTP status or error, duration).

The event bodies are stored once per event (every matching hook's delivery
refers to it). tests/storage_contracts/hooks.py is the contract; docs/webhooks.md
explains the design.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

HOOK_TYPES: Final = ("package", "scope", "owner")
"""What a hook watches: one package by name, every package of a scope, an owner's packages."""

PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
STATES: Final = (PENDING, DELIVERED, FAILED)


@dataclass(frozen=True)
class HookRecord:
    """A webhook. ``owner`` is the principal that manages it (a user name or ``key:<id>``)."""

    id: str
    owner: str
    type: str
    name: str
    endpoint: str
    secret: str
    created_ms: int
    updated_ms: int
    last_delivery_ms: int | None = None
    last_status: int | None = None
    """The HTTP status of the last attempt (None before any, or when it got no answer)."""
    last_error: str | None = None

    def matches(self, package: str, owners: Iterable[str]) -> bool:
        """Whether a change to ``package`` (maintained by ``owners``) concerns this hook."""
        if self.type == "package":
            return self.name == package
        if self.type == "scope":
            return package.startswith(self.name + "/")
        return self.name in set(owners)


@dataclass(frozen=True)
class HookEvent:
    """One event of a package change, as every hook it concerns receives it.

    ``body`` is the payload without its ``id`` (each delivery has its own):
    ``{event, name, type, version, sender, payload, change, time}``.
    """

    package: str
    event: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """A claimed delivery: what to send where (the hook's endpoint and secret at claim time)."""

    id: str
    seq: int
    hook_id: str
    package: str
    event: str
    body: str
    """The event's stored JSON text (without ``id``; the sender adds it)."""
    endpoint: str
    secret: str
    attempts: int
    """Attempts including this one (a claim counts as one)."""
    created_ms: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Delivery:
        """A delivery from a row of the backends' claim query (its columns in field order)."""
        return cls(
            str(row[0]),
            int(row[1]),
            str(row[2]),
            str(row[3]),
            str(row[4]),
            str(row[5]),
            str(row[6]),
            str(row[7]),
            int(row[8]),
            int(row[9]),
        )


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as the log shows it (no body, no secret)."""

    id: str
    seq: int
    hook_id: str
    package: str
    event: str
    state: str
    attempts: int
    created_ms: int
    next_ms: int
    last_status: int | None
    last_error: str | None
    done_ms: int | None


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt at a delivery: when, the HTTP status (or the error), how long it took."""

    delivery_id: str
    hook_id: str
    attempt: int
    at_ms: int
    status: int | None
    error: str | None
    duration_ms: float


def body_text(body: dict[str, Any]) -> str:
    """An event body as stored: compact JSON, keys in the order given."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def hook_from_row(row: Sequence[Any]) -> HookRecord:
    """A :class:`HookRecord` from a row ``(id, owner, type, name, endpoint, secret, created_ms,
    updated_ms, last_delivery_ms, last_status, last_error)`` (every backend's column order)."""
    return HookRecord(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        int(row[6]),
        int(row[7]),
        None if row[8] is None else int(row[8]),
        None if row[9] is None else int(row[9]),
        None if row[10] is None else str(row[10]),
    )


def delivery_from_row(row: Sequence[Any]) -> DeliveryRecord:
    """A :class:`DeliveryRecord` from a row in its fields' order."""
    return DeliveryRecord(
        str(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        int(row[6]),
        int(row[7]),
        int(row[8]),
        None if row[9] is None else int(row[9]),
        None if row[10] is None else str(row[10]),
        None if row[11] is None else int(row[11]),
    )


def hook_json(hook: HookRecord) -> dict[str, Any]:
    """A hook as the APIs show it: never its secret."""
    return {
        "id": hook.id,
        "owner": hook.owner,
        "type": hook.type,
        "name": hook.name,
        "endpoint": hook.endpoint,
        "created_ms": hook.created_ms,
        "updated_ms": hook.updated_ms,
        "last_delivery_ms": hook.last_delivery_ms,
        "last_status": hook.last_status,
        "last_error": hook.last_error,
    }


class HookStorage(Protocol):
    """Hooks, their delivery queue and log. Safe from several threads and processes."""

    @abc.abstractmethod
    def add_hook(self, hook: HookRecord) -> None:
        """Store a new hook (its id is new)."""

    @abc.abstractmethod
    def hook(self, hook_id: str) -> HookRecord | None:
        """The hook, or None."""

    @abc.abstractmethod
    def hooks(self, owner: str | None = None) -> list[HookRecord]:
        """Every hook (of ``owner`` when given), oldest first."""

    @abc.abstractmethod
    def update_hook(
        self, hook_id: str, *, endpoint: str, secret: str, updated_ms: int
    ) -> HookRecord | None:
        """Change a hook's endpoint and secret; the new record, or None if absent.

        Pending deliveries go to the new endpoint, signed with the new secret.
        """

    @abc.abstractmethod
    def remove_hook(self, hook_id: str) -> bool:
        """Remove the hook, its queue and its log; whether it existed."""

    def hooks_for(self, package: str, owners: Sequence[str]) -> list[HookRecord]:
        """The hooks a change to ``package`` maintained by ``owners`` concerns."""
        return [h for h in self.hooks() if h.matches(package, owners)]

    @abc.abstractmethod
    def enqueue(self, hook_events: Sequence[tuple[str, HookEvent]], *, now_ms: int) -> list[str]:
        """Queue ``(hook id, event)`` pairs in a transaction of their own; their delivery ids.

        (A package change queues its events inside its own transaction instead:
        :meth:`r13core.storage.packages.WriteTxn.enqueue_hooks`.)
        """

    @abc.abstractmethod
    def claim(self, *, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[Delivery]:
        """Claim up to ``limit`` due deliveries for ``lease_ms`` (oldest first).

        Due: pending, ``next_ms <= now_ms``, not claimed by a live lease, and no
        earlier pending delivery of the same (hook, package) — so each hook sees
        one package's events in order. Claiming counts an attempt. Several
        workers (processes, nodes) claiming at once never get the same row.
        """

    @abc.abstractmethod
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
        """Record an attempt and its outcome: DELIVERED, FAILED, or PENDING again at ``next_ms``.

        The attempt always goes in the log; the delivery's state changes only
        if ``worker`` still holds its claim (a worker whose lease ran out and
        was overtaken changes nothing). Returns whether it did.
        """

    @abc.abstractmethod
    def deliveries(
        self, *, hook_id: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        """Deliveries, newest first (of one hook, in one state, when given)."""

    @abc.abstractmethod
    def attempts(self, *, hook_id: str | None = None, limit: int = 100) -> list[AttemptRecord]:
        """The delivery log, newest first (of one hook when given)."""

    @abc.abstractmethod
    def queue_counts(self) -> dict[str, int]:
        """Deliveries per state (every state present, zero included)."""

    @abc.abstractmethod
    def prune_deliveries(self, before_ms: int) -> int:
        """Forget delivered and failed deliveries (and their log) done before ``before_ms``."""


__all__ = [
    "DELIVERED",
    "FAILED",
    "HOOK_TYPES",
    "PENDING",
    "STATES",
    "AttemptRecord",
    "Delivery",
    "DeliveryRecord",
    "HookEvent",
    "HookRecord",
    "HookStorage",
    "body_text",
    "delivery_from_row",
    "hook_from_row",
    "hook_json",
]
