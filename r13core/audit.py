"""The append-only, hash-chained audit log: who did what, to what, when and from where.

Logins, key and user changes, config changes, blocks and unblocks, publishes
and unpublishes are appended here. Storage refuses to change or delete an
event (SQLite: triggers), so the log can only grow; it is read newest first,
paged by event id.

Triggers stop r13, not someone who can write the database file. So each
event also stores the hash of the event before it and its own hash over that
and its content (r13core/storage/base.py ``audit_hash``): :meth:`AuditLog.verify`
(``r13 security audit --verify``) recomputes the chain and names the first
event where it breaks. Removing events from the end, or rewriting the whole
chain from some event on, leaves a consistent chain: compare the head that
``verify`` prints with one kept elsewhere (``--head ID:HASH``) to catch that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from r13core.errors import InvalidValue
from r13core.storage.audit import AUDIT_GENESIS, AuditRecord, AuditStorage
from r13core.storage.packages import WriteTxn

log = logging.getLogger("r13.audit")
MAX_PAGE: Final = 1000

OnRecord = Callable[[str, str, str, str, Mapping[str, Any]], None]
"""A hook after each stored audit event: (actor, action, target, ip, detail)."""


def _iso(at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_dict(record: AuditRecord) -> dict[str, Any]:
    """An event as JSON."""
    return {
        "id": record.id,
        "time": _iso(record.at),
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "ip": record.ip,
        "detail": record.detail,
    }


@dataclass(frozen=True)
class ChainReport:
    """What :meth:`AuditLog.verify` found.

    ``broken_at`` is the id of the first event whose link does not hold (None:
    the chain holds), ``reason`` says how; ``checked`` events were read;
    ``head`` is ``(id, hash)`` of the last event that still links (None: empty).
    """

    checked: int
    head: tuple[int, str] | None
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether every event links to the one before it and matches its hash."""
        return self.broken_at is None


@dataclass(frozen=True)
class Actor:
    """Who acts in a domain operation, as its audit event records it.

    ``name`` is a principal (a user name, ``key:<id>`` for a bare key) or one of
    the fixed names below; ``address`` is the client address the request came
    from (``""`` where there is none: the CLI on the data dir, r13 itself).
    Front ends (HTTP resources, the CLI, the terminal) build one and pass it to
    the r13core operation, which writes its own event.
    """

    name: str
    address: str = ""

    CLI: ClassVar[str] = "cli"
    """``r13`` commands run on the data dir."""
    SYSTEM: ClassVar[str] = "r13"
    """r13 itself (automatic blocks, `r13 serve`'s first admin key)."""
    BOOTSTRAP: ClassVar[str] = "bootstrap@loopback"
    """A local request without credentials making a key while no admin key is live."""

    @classmethod
    def cli(cls) -> Actor:
        """The actor of an ``r13`` command on the data dir."""
        return cls(cls.CLI)

    @classmethod
    def system(cls, address: str = "") -> Actor:
        """r13 acting on its own (``address``: the client it acts about, if any)."""
        return cls(cls.SYSTEM, address)


class AuditLog:
    """Appends events to storage and pages through them."""

    def __init__(
        self,
        db: AuditStorage,
        *,
        clock: Callable[[], float] = time.time,
        on_record: OnRecord | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.on_record = on_record
        """Called after each stored event with (actor, action, target, ip, detail): the
        live channel's broadcasts (r13core/broadcasts.py). Its failures are its own."""

    def record(
        self, actor: str, action: str, target: str = "", *, ip: str = "", **detail: Any
    ) -> int:
        """Append one event (e.g. ``("alice", "key.create", "ci-1", ip="10.0.0.1")``)."""
        event_id = self._db.append_audit(self._clock(), actor, action, target, ip, detail)
        if self.on_record is not None:
            self.on_record(actor, action, target, ip, detail)
        return event_id

    def stores_in(self, db: object) -> bool:
        """Whether this log is kept by ``db`` (so ``db``'s write transactions can hold its
        events: :meth:`record_in`)."""
        return self._db is db

    def record_in(
        self,
        tx: WriteTxn,
        actor: str,
        action: str,
        target: str = "",
        *,
        ip: str = "",
        **detail: Any,
    ) -> Callable[[], None] | None:
        """Append one event inside ``tx``, a write transaction of the database this log is
        in (:meth:`stores_in`): it commits with the change it describes, or not at all.

        Returns what to call once ``tx`` has committed (:attr:`on_record`, the live
        broadcast); None when ``tx`` cannot hold the event (record it after the commit).
        """
        if tx.append_audit(self._clock(), actor, action, target, ip, detail) is None:
            return None
        on_record = self.on_record

        def committed() -> None:
            if on_record is not None:
                on_record(actor, action, target, ip, detail)

        return committed

    def record_by(self, actor: Actor, action: str, target: str = "", **detail: Any) -> int:
        """:meth:`record` for ``actor`` (its name and address)."""
        return self.record(actor.name, action, target, ip=actor.address, **detail)

    def safe_record(
        self, actor: str, action: str, target: str = "", *, ip: str = "", **detail: Any
    ) -> None:
        """Like :meth:`record`, but a storage failure is logged instead of raised.

        For events recorded after the change they describe has committed: the
        change stands either way, and the request must not fail because of it.
        """
        try:
            self.record(actor, action, target, ip=ip, **detail)
        except Exception:
            log.exception("could not append audit event %s %s", action, target)

    def safe_record_by(self, actor: Actor, action: str, target: str = "", **detail: Any) -> None:
        """:meth:`safe_record` for ``actor``: how domain operations audit what they did."""
        self.safe_record(actor.name, action, target, ip=actor.address, **detail)

    def verify(self, *, head: tuple[int, str] | None = None, batch: int = 1000) -> ChainReport:
        """Walk the whole chain, oldest first; the first broken link, if any.

        ``head``: an ``(id, hash)`` recorded earlier (e.g. from a previous
        report); the chain must still hold that event with that hash.
        """
        prev, after, checked = AUDIT_GENESIS, 0, 0
        last: tuple[int, str] | None = None
        seen_head = head is None
        while True:
            links = self._db.audit_links(after=after, limit=batch)
            if not links:
                break
            for link in links:
                checked += 1
                if link.prev_hash != prev:
                    reason = (
                        "its link to the event before it does not hold: an earlier event "
                        "was removed, inserted or rewritten"
                    )
                    if last is not None and link.id != last[0] + 1:
                        reason = f"event(s) {last[0] + 1}..{link.id - 1} before it are missing"
                    return ChainReport(checked, last, link.id, reason)
                if link.computed_hash() != link.hash:
                    return ChainReport(
                        checked, last, link.id, "its content does not match its hash: edited"
                    )
                if head is not None and link.id == head[0]:
                    if link.hash != head[1]:
                        return ChainReport(
                            checked, last, link.id, "its hash differs from the recorded head"
                        )
                    seen_head = True
                prev, last = link.hash, (link.id, link.hash)
            after = links[-1].id
        if not seen_head:
            assert head is not None
            return ChainReport(
                checked,
                last,
                head[0],
                "the recorded head is gone: events were removed from the end",
            )
        return ChainReport(checked, last)

    def page(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """``{events: [...], next: id | None}``: newest first; pass ``next`` as ``before``."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidValue(f"limit must be 1..{MAX_PAGE}")
        if before is not None and before < 1:
            raise InvalidValue("before must be a positive event id")
        events = self._db.audit_events(before=before, limit=limit, action=action, actor=actor)
        following = events[-1].id if len(events) == limit else None
        return {"events": [event_dict(e) for e in events], "next": following}
