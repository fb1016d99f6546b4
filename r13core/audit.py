"""The append-only audit log: who did what, to what, when and from where.

Logins, key and user changes, config changes, blocks and unblocks, publishes
and unpublishes are appended here. Storage refuses to change or delete an
event (SQLite: triggers), so the log can only grow; it is read newest first,
paged by event id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from r13core.errors import InvalidValue
from r13core.storage.base import AuditRecord, Storage

log = logging.getLogger("r13.audit")
MAX_PAGE: Final = 1000


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


class AuditLog:
    """Appends events to storage and pages through them."""

    def __init__(self, db: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    def record(
        self, actor: str, action: str, target: str = "", *, ip: str = "", **detail: Any
    ) -> int:
        """Append one event (e.g. ``("alice", "key.create", "ci-1", ip="10.0.0.1")``)."""
        return self._db.append_audit(self._clock(), actor, action, target, ip, detail)

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
