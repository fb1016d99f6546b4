"""The audit concern of storage: an append-only, hash-chained log of who did what.

Events are never changed or removed; ids follow each other with no gaps, and
each event stores the hash of the one before it (:func:`audit_hash`), so
editing, removing or inserting an event shows (r13core/audit.py checks the
chain; docs/identity.md, "Tamper-evident audit log").
tests/storage_contracts/audit.py is the contract.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Protocol

from r13core.storage.packages import JSONDict


@dataclass(frozen=True)
class AuditRecord:
    """One audit event: who did what to which target, when and from where."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    ip: str
    detail: JSONDict


AUDIT_GENESIS: Final = "0" * 64
"""The ``prev_hash`` of the first event of a chain."""


def chained_row(
    last: Any, at: float, actor: str, action: str, target: str, ip: str, detail_text: str
) -> tuple[Any, ...]:
    """The insert parameters of the event after ``last`` (the chain's last ``(id, hash)``
    row, or None): ``(id, at, actor, action, target, ip, detail, prev_hash, hash)``, the
    columns of ``audit_log`` in order, as every backend stores them."""
    event_id, prev = (1, AUDIT_GENESIS) if last is None else (int(last[0]) + 1, last[1])
    at = float(at)
    digest = audit_hash(prev, event_id, at, actor, action, target, ip, detail_text)
    return (event_id, at, actor, action, target, ip, detail_text, prev, digest)


def audit_hash(
    prev_hash: str,
    event_id: int,
    at: float,
    actor: str,
    action: str,
    target: str,
    ip: str,
    detail_text: str,
) -> str:
    """The hash that links an audit event into the chain (every backend computes this).

    sha256 over the previous event's hash and the event's canonical content: a
    JSON array of id, time, actor, action, target, address and the detail exactly
    as stored. Editing, removing or inserting an event breaks the link at that
    event or the one after it.
    """
    canonical = json.dumps(
        [event_id, float(at), actor, action, target, ip, detail_text],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditLink:
    """An audit event as stored, for checking the chain (``detail_text`` unparsed)."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    ip: str
    detail_text: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """What :attr:`hash` must be, given :attr:`prev_hash` and the content."""
        return audit_hash(
            self.prev_hash,
            self.id,
            self.at,
            self.actor,
            self.action,
            self.target,
            self.ip,
            self.detail_text,
        )


class AuditStorage(Protocol):
    """The audit log. Safe across threads and (after fork) processes."""

    @abc.abstractmethod
    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int:
        """Append one event; returns its id. Events are never changed or removed.

        Each event is chained to the one before it (:func:`audit_hash`); ids follow
        each other with no gaps.
        """

    @abc.abstractmethod
    def audit_links(self, *, after: int = 0, limit: int = 1000) -> list[AuditLink]:
        """Events with id > ``after``, oldest first, at most ``limit``, as stored."""

    @abc.abstractmethod
    def audit_events(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Events newest first, with id < ``before`` when given, filtered, at most ``limit``."""
