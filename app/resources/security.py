"""``/_api/security/*``: keys, IP blocks and security metrics (admin).

Each change is one call into r13core (r13core/identity.py for keys,
r13core/abuse.py for blocks), which writes its audit event; the audit log itself
is served by app/resources/audit_log.py.

``POST /_api/security/keys`` is also open, without credentials, to a local
request (from this machine and not through any proxy:
app/security_middleware.py ``request_is_local``) while no live admin key exists
(how a fresh install that lost its first key gets one); after that, never
(r13core/identity.py ``Identity.may_bootstrap``).
"""

from __future__ import annotations

import re
from typing import Any, Final

import falcon

from app.auth import Guard, client_actor
from app.http import read_json_object, send_media
from app.security_middleware import request_is_local
from r13core.abuse import AbuseControl
from r13core.access import Action
from r13core.audit import Actor
from r13core.errors import BadRequest
from r13core.identity import Identity, expiry_days
from r13core.keys import Permission
from r13core.services import Services

MAX_BODY: Final = 64 * 1024
_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?) ?(ms|s|m|h|d)?")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
TOP: Final = 20


def parse_duration_ms(value: object, field: str) -> float | None:
    """A duration: a number of ms, or ``"30d"``/``"12h"``/``"15m"``/``"10s"``; None for never."""
    if value == "never":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match and float(match.group(1)) > 0:
            return float(match.group(1)) * _UNIT_MS[match.group(2) or "ms"]
    raise BadRequest(f"{field} must be a positive number of ms, '30d', '12h', ... or 'never'")


def parse_permission(value: object) -> Permission:
    """``"read"|"write"|"admin"`` or a list of them (the highest counts)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise BadRequest("permissions must be read, write, admin or a list of them")
    best = None
    for item in items:
        try:
            perm = Permission[str(item).upper()]
        except KeyError:
            raise BadRequest(f"unknown permission {item!r}") from None
        best = perm if best is None or perm > best else best
    assert best is not None
    return best


class SecurityKeys:
    """``GET|POST /_api/security/keys``, ``DELETE /_api/security/keys/{key_id}``,
    ``POST /_api/security/keys/{key_id}/rotate``."""

    def __init__(self, identity: Identity, guard: Guard, default_expiry_ms: int) -> None:
        self.identity = identity
        self.guard = guard
        self.default_days = expiry_days(default_expiry_ms)

    def _admin(self, req: falcon.Request) -> Actor:
        return self.guard.acting(req, Action.ADMIN)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._admin(req)
        send_media(resp, {"keys": [k.as_dict() for k in self.identity.keys.list()]})
        resp.cache_control = ["no-store"]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Anything proxied is refused here: a proxy on this host connects from loopback.
        bootstrap = self.guard.identity(req) is None and self.identity.may_bootstrap(
            local=request_is_local(req)
        )
        actor = client_actor(req, Actor.BOOTSTRAP) if bootstrap else self._admin(req)
        body = read_json_object(req, MAX_BODY)
        key_id = body.get("id")
        if not isinstance(key_id, str):
            raise BadRequest("id is required")
        permission = parse_permission(body.get("permissions", "read"))
        expires_in = body.get("expiresIn")
        if expires_in is None:
            days = self.default_days
        else:
            ms = parse_duration_ms(expires_in, "expiresIn")
            days = None if ms is None else ms / 86_400_000
        rate = body.get("rateLimit")
        cidr = body.get("cidr") or []
        packages = body.get("packages") or []
        if isinstance(cidr, str):
            cidr = [cidr]
        if isinstance(packages, str):
            packages = [packages]
        if not isinstance(cidr, list) or not isinstance(packages, list):
            raise BadRequest("cidr and packages must be lists")
        description = body.get("description", "")
        info, secret = self.identity.create_key(
            actor,
            key_id,
            permission,
            days,
            rate_limit=rate,
            cidr=cidr,
            packages=packages,
            description=description if isinstance(description, str) else "",
            bootstrap=bootstrap,
        )
        send_media(resp, {**info.as_dict(), "key": secret}, falcon.HTTP_201)
        resp.cache_control = ["no-store"]

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        self.identity.revoke_key(self._admin(req), key_id)
        send_media(resp, {"ok": True, "revoked": key_id})

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        self._admin(req)
        send_media(resp, self.identity.keys.get(key_id).as_dict())

    def on_post_rotate(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        info, secret = self.identity.rotate_key(self._admin(req), key_id)
        send_media(resp, {**info.as_dict(), "key": secret}, falcon.HTTP_201)
        resp.cache_control = ["no-store"]


def block_dict(record: Any) -> dict[str, Any]:
    """A block as JSON (``ip``: the address, or the IPv6 prefix it counts under)."""
    return {
        "ip": record.ip,
        "reason": record.reason,
        "created": record.created,
        "expires": record.expires,
        "kind": record.kind,
    }


class SecurityBlocks:
    """``GET|POST /_api/security/blocks``, ``DELETE /_api/security/blocks/{ip}`` (an address;
    an IPv6 one lifts its prefix) and ``DELETE /_api/security/blocks/{ip}/{length}`` (a prefix).

    Blocks made here are manual: they refuse everything, requests with a key too.
    """

    def __init__(self, abuse: AbuseControl, guard: Guard) -> None:
        self.abuse = abuse
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, {"blocks": [block_dict(b) for b in self.abuse.blocks.active()]})
        resp.cache_control = ["no-store"]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        body = read_json_object(req, MAX_BODY)
        ip = body.get("ip")
        if not isinstance(ip, str):
            raise BadRequest("ip must be an IP address or an IPv6 prefix")
        client = self.abuse.client(ip)  # a bad address is refused before the duration
        duration = body.get("duration")
        ms = None if duration is None else parse_duration_ms(duration, "duration")
        reason = body.get("reason")
        reason = reason[:200] if isinstance(reason, str) else "blocked by admin"
        record = self.abuse.block(actor, client, reason, None if ms is None else ms / 1000)
        send_media(resp, block_dict(record), falcon.HTTP_201)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, ip: str) -> None:
        self._unblock(req, resp, ip)

    def on_delete_prefix(
        self, req: falcon.Request, resp: falcon.Response, ip: str, length: str
    ) -> None:
        self._unblock(req, resp, f"{ip}/{length}")

    def _unblock(self, req: falcon.Request, resp: falcon.Response, text: str) -> None:
        key = self.abuse.unblock(self.guard.acting(req, Action.ADMIN), text)
        send_media(resp, {"ok": True, "unblocked": key})


def _top(counts: dict[str, int], n: int = TOP) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"name": k, "count": v} for k, v in ranked]


class SecurityMetrics:
    """``GET /_api/security/metrics``: counts over every worker (a couple of seconds behind)."""

    def __init__(self, services: Services, guard: Guard) -> None:
        self.services = services
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        totals = self.services.counters.totals()
        requests = totals.get("requests", {})
        by_route: dict[str, dict[str, int]] = {}
        for label, count in requests.items():
            route, _, status = label.rpartition(" ")
            by_route.setdefault(route, {})[status] = count
        keys = [
            {"id": k.id, "useCount": k.use_count, "lastUsed": k.as_dict()["lastUsed"]}
            for k in sorted(self.services.keys.list(), key=lambda k: -k.use_count)
            if k.use_count
        ]
        auth_failures = totals.get("auth_failures", {})
        limited = totals.get("rate_limited", {})
        anomalies = totals.get("anomalies", {})
        body = {
            "requests": {"total": sum(requests.values()), "byRoute": by_route},
            "topClients": _top(totals.get("clients", {})),
            "authFailures": {"total": sum(auth_failures.values()), "byClient": _top(auth_failures)},
            "rateLimitViolations": {"total": sum(limited.values()), "byClient": _top(limited)},
            "anomalies": {"total": sum(anomalies.values()), "byKind": anomalies,
                          "byClient": _top(totals.get("anomaly_clients", {}))},
            "blockedRequests": sum(totals.get("blocked_requests", {}).values()),
            "limiterFull": sum(totals.get("limiter_full", {}).values()),
            "blocksIssued": sum(totals.get("blocks", {}).values()),
            "activeBlocks": [block_dict(b) for b in self.services.blocks.active()],
            "keys": keys,
        }  # fmt: skip
        send_media(resp, body)
        resp.cache_control = ["no-store"]
