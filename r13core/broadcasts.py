"""What the live channel broadcasts: its topics, their payloads, and who appends them.

Every worker's live channel tails the events log (r13core/events.py) and sends each
event to its WebSocket clients as a broadcast frame (0x05, r13core/frames.py). This
module decides what goes into the log, in one place:

- **the audited operations**: :class:`AuditBroadcaster` is the audit log's hook, so
  each domain operation that audits itself (config changes, publishes, unpublishes,
  dist-tags, deprecations, blocks, unblocks, key revocations, failed logins)
  also appends its live event — :func:`from_audit` maps the audit action to a topic
  and a payload; actions with no live meaning append nothing;
- **the request path's refusals** (a bad key, a rate limit): :class:`SecurityEvents`
  appends them, at most one per client and kind every ``quiet`` seconds per
  process, with the number folded in (a flood must not become a flood of events);
- **the sampler**: one ``metrics`` event per sample (r13core/monitor/sampler.py);
- **alerts**: the sampler's ``alert`` events (raised, cleared).

:data:`TOPICS` maps each log topic to its broadcast topic byte
(:class:`r13core.frames.Topic`); :data:`SCHEMAS` is the JSON Schema of each
payload, printed in docs/live.md. A broadcast's JSON text is
``{"topic": name, "seq": n, "ts": unix seconds, "data": payload}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from r13core.audit import Actor
from r13core.events import EventLog
from r13core.frames import Topic

log = logging.getLogger("r13.broadcasts")

TOPICS: Final[dict[str, Topic]] = {
    "metrics": Topic.METRICS,
    "alert": Topic.ALERT,
    "security": Topic.SECURITY,
    "package": Topic.PACKAGE,
    "config": Topic.CONFIG_AUDIT,
}
"""Events-log topic -> broadcast topic byte. Other log topics are not broadcast."""

ADMIN_TOPICS: Final = frozenset({Topic.ALERT, Topic.SECURITY, Topic.CONFIG_AUDIT})
"""Topics only admin connections receive (like /_api/performance/alerts,
/_api/security/*, /_api/security/audit). ``metrics`` needs ``read`` (like
/metrics); ``package`` events reach a connection only for packages its key may
read."""

_PACKAGE_EVENTS: Final = {
    "publish": "publish",
    "unpublish": "unpublish",
    "unpublish.tarball": "unpublish",
    "package.change": "unpublish",  # PUT /:pkg/-rev/:rev: versions removed (or owners)
    "dist-tag.set": "tag",
    "dist-tag.remove": "untag",
    "package.update": "deprecate",  # PUT /:pkg without attachments: deprecations only
}
_SECURITY_EVENTS: Final = {
    "ip.block": "block",
    "ip.unblock": "unblock",
    "login.failed": "auth_failure",
    "token.create.failed": "auth_failure",
    "key.revoke": "key_revoked",
    "token.revoke": "key_revoked",
}

_STRING = {"type": "string"}
_INT = {"type": "integer"}
_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_HEX13 = {"type": "string", "pattern": "^[0-9a-f]{26}$"}

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "metrics": {
        "type": "object",
        "description": "one sample of the monitor (docs/monitoring.md lists every field)",
        "required": ["seq", "ts", "requests_per_s", "ws_connections"],
        "properties": {
            "seq": _INT,
            "ts": _NUMBER,
            "requests_per_s": _NUMBER,
            "latency_p95_ms": _NULLABLE_NUMBER,
            "error_rate_percent": _NULLABLE_NUMBER,
            "cpu_percent": _NULLABLE_NUMBER,
            "ws_connections": _INT,
            "ws_messages_per_s": _NUMBER,
            "ws_heartbeat_ms": _NULLABLE_NUMBER,
        },
    },
    "alert": {
        "type": "object",
        "required": ["event", "rule", "metric", "threshold", "started"],
        "properties": {
            "event": {"enum": ["raised", "cleared"]},
            "rule": {"enum": ["cpu", "memory", "latency", "error_rate"]},
            "metric": _STRING,
            "threshold": _NUMBER,
            "value": _NULLABLE_NUMBER,
            "peak": _NUMBER,
            "started": _NUMBER,
            "ended": _NULLABLE_NUMBER,
        },
    },
    "security": {
        "type": "object",
        "required": ["event", "who"],
        "properties": {
            "event": {
                "enum": ["block", "unblock", "auth_failure", "limit", "key_revoked"],
            },
            "who": {"type": "string", "description": "who acted (r13 for automatic ones)"},
            "ip": _STRING,
            "target": _STRING,
            "reason": _STRING,
            "kind": {"enum": ["auto", "manual"]},
            "count": {"type": "integer", "description": "refusals folded into this event"},
            "route": {"type": "string", "description": "the route refused (limit)"},
        },
    },
    "package": {
        "type": "object",
        "required": ["event", "package", "who"],
        "properties": {
            "event": {"enum": ["publish", "unpublish", "tag", "untag", "deprecate"]},
            "package": _STRING,
            "who": _STRING,
            "versions": {"type": "array", "items": _STRING},
            "tag": _STRING,
            "version": _STRING,
            "file": _STRING,
        },
    },
    "config": {
        "type": "object",
        "required": ["who", "ip", "old", "new"],
        "properties": {"who": _STRING, "ip": _STRING, "old": _HEX13, "new": _HEX13},
    },
}
"""The JSON Schema of each topic's ``data`` (docs/live.md prints them)."""


def from_audit(
    actor: str, action: str, target: str, ip: str, detail: Mapping[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """The live event (log topic, payload) of one audit event; None if it has none."""
    if action == "config.change":
        return "config", {
            "who": actor,
            "ip": ip,
            "old": str(detail.get("old", "")),
            "new": str(detail.get("new", "")),
        }
    package_event = _PACKAGE_EVENTS.get(action)
    if package_event is not None:
        data: dict[str, Any] = {"event": package_event, "package": target, "who": actor}
        for field in ("versions", "tag", "version", "file"):
            if field in detail:
                data[field] = detail[field]
        return "package", data
    security_event = _SECURITY_EVENTS.get(action)
    if security_event is not None:
        data = {"event": security_event, "who": actor, "ip": ip}
        if target:
            data["target"] = target
        for field in ("reason", "kind"):
            if field in detail:
                data[field] = detail[field]
        if security_event in ("block", "unblock"):
            data["ip"] = target  # the address blocked, not the admin's
        return "security", data
    return None


class AuditBroadcaster:
    """Appends each audited change's live event (:func:`from_audit`) to ``events``.

    Given to the audit log as its ``on_record`` hook (r13core/services.py), so it
    runs after the audit event is stored, outside any transaction. Failing to
    append is logged and never fails the operation: the change stands.
    """

    def __init__(self, events: EventLog) -> None:
        self.events = events

    def __call__(
        self, actor: str, action: str, target: str, ip: str, detail: Mapping[str, Any]
    ) -> None:
        live = from_audit(actor, action, target, ip, detail)
        if live is None:
            return
        try:
            self.events.append(*live)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("could not broadcast %s %s: %s", action, target, exc)


class SecurityEvents:
    """Appends the request path's refusals (bad keys, rate limits) as ``security`` events.

    At most one event per (kind, client) every ``quiet`` seconds in this process;
    the refusals in between are counted and folded into the next event's ``count``.
    The table is bounded: past ``max_clients`` entries it starts over.
    """

    def __init__(
        self,
        events: EventLog,
        *,
        quiet: float = 10.0,
        max_clients: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.quiet = quiet
        self.max_clients = max_clients
        self._clock = clock
        self._seen: dict[tuple[str, str], list[float]] = {}  # -> [last sent, folded count]
        self._lock = threading.Lock()

    def refused(self, event: str, ip: str, **detail: Any) -> None:
        """Note one refusal (``auth_failure`` or ``limit``) of client ``ip``."""
        now = self._clock()
        key = (event, ip)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.quiet:
                seen[1] += 1
                return
            if len(self._seen) >= self.max_clients:
                self._seen.clear()
            count = 1 + (int(seen[1]) if seen is not None else 0)
            self._seen[key] = [now, 0]
        data = {"event": event, "who": Actor.SYSTEM, "ip": ip, "count": count, **detail}
        try:
            self.events.append("security", data)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("could not broadcast a security event: %s", exc)


__all__ = [
    "ADMIN_TOPICS",
    "SCHEMAS",
    "TOPICS",
    "AuditBroadcaster",
    "SecurityEvents",
    "from_audit",
]
