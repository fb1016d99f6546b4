"""Managing webhooks: add, list, change, remove, ping, and read the delivery log.

Every front end (``/-/npm/v1/hooks``, ``/_api/hooks``, ``r13 hooks``, the
dashboard) calls these methods with who acts (:class:`r13core.audit.Actor`);
each change writes one audit event after it commits (``hook.add``,
``hook.change``, ``hook.remove``, ``hook.ping``). Who may manage which hook is
decided before, at the one decision point (:meth:`r13core.access.Policy.check_hook`).
"""

from __future__ import annotations

import secrets as random_secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from r13core.audit import Actor, AuditLog
from r13core.errors import Conflict, InvalidValue, NotFound
from r13core.hooks.endpoints import AddressPolicy, Resolver, check_endpoint, system_resolver
from r13core.names import PackageName
from r13core.storage.hooks import (
    HOOK_TYPES,
    AttemptRecord,
    DeliveryRecord,
    HookEvent,
    HookRecord,
    HookStorage,
    hook_json,
)

MAX_SECRET: Final = 1024
MAX_HOOKS_PER_OWNER: Final = 100
_SCOPE_CHARS: Final = set("abcdefghijklmnopqrstuvwxyz0123456789-._~")


def check_target(kind: object, name: object) -> tuple[str, str]:
    """A hook's (type, name), normalised: a package name, ``@scope``, or a principal's name."""
    if kind not in HOOK_TYPES:
        raise InvalidValue(f"type must be one of {', '.join(HOOK_TYPES)}")
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("name must be a non-empty string")
    name = name.strip()
    if kind == "package":
        return "package", str(PackageName.parse(name))
    if kind == "scope":
        scope = name.removesuffix("/*").removesuffix("/")
        scope = scope if scope.startswith("@") else "@" + scope
        if len(scope) < 2 or len(scope) > 214 or not set(scope[1:]) <= _SCOPE_CHARS:
            raise InvalidValue(f"{name!r} is not a scope (e.g. @acme)")
        return "scope", scope
    if len(name) > 128 or any(c.isspace() for c in name):
        raise InvalidValue(f"{name!r} is not a user or key name")
    return "owner", name


def check_secret(secret: object) -> str:
    """The signing secret: required, a string of 1..1024 characters."""
    if not isinstance(secret, str) or not secret:
        raise InvalidValue("secret is required (it signs every delivery: x-npm-signature)")
    if len(secret) > MAX_SECRET:
        raise InvalidValue(f"secret is longer than {MAX_SECRET} characters")
    return secret


def npm_hook_json(hook: HookRecord) -> dict[str, Any]:
    """A hook in the npm registry's hooks API shape (plus r13's delivery state)."""
    out = hook_json(hook)
    out["username"] = hook.owner
    out["status"] = "active"
    out["created"] = _iso(hook.created_ms)
    out["updated"] = _iso(hook.updated_ms)
    out["last_delivery"] = None if hook.last_delivery_ms is None else _iso(hook.last_delivery_ms)
    out["response_code"] = hook.last_status
    return out


def iso_now() -> str:
    """The current UTC time as npm writes it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def delivery_json(record: DeliveryRecord) -> dict[str, Any]:
    """A delivery as the log shows it."""
    return {
        "id": record.id,
        "hook": record.hook_id,
        "package": record.package,
        "event": record.event,
        "state": record.state,
        "attempts": record.attempts,
        "created_ms": record.created_ms,
        "next_ms": record.next_ms,
        "last_status": record.last_status,
        "last_error": record.last_error,
        "done_ms": record.done_ms,
    }


def attempt_json(record: AttemptRecord) -> dict[str, Any]:
    """One attempt of the delivery log."""
    return {
        "delivery": record.delivery_id,
        "hook": record.hook_id,
        "attempt": record.attempt,
        "at_ms": record.at_ms,
        "status": record.status,
        "error": record.error,
        "duration_ms": record.duration_ms,
    }


class Hooks:
    """Webhooks over a :class:`HookStorage`; changes audited in ``audit``."""

    def __init__(
        self,
        storage: HookStorage,
        audit: AuditLog,
        policy: AddressPolicy,
        *,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = system_resolver,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.storage = storage
        self.audit = audit
        self.policy = policy
        self.clock = clock
        self.resolver = resolver
        self.on_queued = on_queued

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def get(self, hook_id: str) -> HookRecord:
        """The hook; NotFound if there is none with that id."""
        hook = self.storage.hook(hook_id) if isinstance(hook_id, str) else None
        if hook is None:
            raise NotFound(f"no hook {hook_id!r}")
        return hook

    def find(self, *, owner: str | None = None, package: str | None = None) -> list[HookRecord]:
        """Hooks (of ``owner``), those that a change to ``package`` concerns when given."""
        hooks = self.storage.hooks(owner)
        if package is not None:
            hooks = [h for h in hooks if h.type != "owner" and h.matches(package, ())]
        return hooks

    def add(
        self, actor: Actor, *, owner: str, kind: object, name: object, endpoint: object,
        secret: object,
    ) -> HookRecord:  # fmt: skip
        """Make a hook owned by ``owner``. InvalidValue for a bad target, endpoint or secret
        (a private endpoint unless allowed); Conflict past 100 hooks. Audit: ``hook.add``."""
        kind, name = check_target(kind, name)
        checked = check_endpoint(endpoint, self.policy, self.resolver)
        secret = check_secret(secret)
        if len(self.storage.hooks(owner)) >= MAX_HOOKS_PER_OWNER:
            raise Conflict(f"{owner!r} has {MAX_HOOKS_PER_OWNER} hooks already; remove one first")
        now = self._ms()
        hook = HookRecord(
            random_secrets.token_hex(8), owner, kind, name, checked.url, secret, now, now
        )
        self.storage.add_hook(hook)
        self.audit.safe_record_by(
            actor, "hook.add", hook.id, owner=owner, type=kind, name=name, endpoint=checked.url
        )
        return hook

    def update(self, actor: Actor, hook_id: str, *, endpoint: object, secret: object) -> HookRecord:
        """New endpoint and secret (npm's ``PUT .../hook/:id``). Audit: ``hook.change``."""
        current = self.get(hook_id)
        checked = check_endpoint(endpoint, self.policy, self.resolver)
        changed = self.storage.update_hook(
            current.id,
            endpoint=checked.url,
            secret=check_secret(secret),
            updated_ms=self._ms(),
        )
        if changed is None:
            raise NotFound(f"no hook {hook_id!r}")
        self.audit.safe_record_by(actor, "hook.change", hook_id, endpoint=checked.url)
        return changed

    def remove(self, actor: Actor, hook_id: str) -> HookRecord:
        """Remove a hook with its queue and log. Audit: ``hook.remove``."""
        hook = self.get(hook_id)
        if not self.storage.remove_hook(hook.id):
            raise NotFound(f"no hook {hook_id!r}")
        self.audit.safe_record_by(actor, "hook.remove", hook_id, type=hook.type, name=hook.name)
        return hook

    def ping(self, actor: Actor, hook_id: str) -> str:
        """Queue a ``hook:ping`` delivery to the hook (delivered like any event); its id.

        Audit: ``hook.ping``.
        """
        hook = self.get(hook_id)
        body = {
            "event": "hook:ping",
            "name": hook.name,
            "type": hook.type,
            "version": None,
            "sender": {"username": actor.name},
            "payload": {"hook": hook.id},
            "change": {},
            "time": iso_now(),
        }
        [delivery_id] = self.storage.enqueue(
            [(hook.id, HookEvent(hook.name, "hook:ping", body))], now_ms=self._ms()
        )
        self.audit.safe_record_by(actor, "hook.ping", hook_id, delivery=delivery_id)
        if self.on_queued is not None:
            self.on_queued()
        return delivery_id

    def deliveries(self, hook_id: str, *, limit: int = 100) -> list[DeliveryRecord]:
        """The hook's deliveries, newest first."""
        return self.storage.deliveries(hook_id=self.get(hook_id).id, limit=limit)

    def attempts(self, hook_id: str | None = None, *, limit: int = 100) -> list[AttemptRecord]:
        """The delivery log (of one hook), newest first."""
        if hook_id is not None:
            hook_id = self.get(hook_id).id
        return self.storage.attempts(hook_id=hook_id, limit=limit)

    def queue(self) -> dict[str, int]:
        """Deliveries per state."""
        return self.storage.queue_counts()


__all__ = [
    "Hooks",
    "attempt_json",
    "check_secret",
    "check_target",
    "delivery_json",
    "hook_json",
    "npm_hook_json",
]
