"""The security layer in front of every route: client address, blocks, keys, rate limits.

One middleware, in this order per request:

1. the client address (the socket peer, or behind R13_TRUSTED_PROXIES the
   right-most untrusted X-Forwarded-For entry);
2. rate limits in the C limiter shared by all workers: per address (stricter
   on login and token routes) and per key (the key's own limit when set);
   every response carries ``RateLimit-Policy``/``RateLimit`` and
   ``X-RateLimit-*``; a refusal is 429 with ``Retry-After``;
3. IP blocks (403), shared by all workers and kept across restarts;
4. the key: authenticated once here (cached in r13core); a bad one is kept as
   the request's auth error, raised as the same 401 when a route needs a key;
5. plainly hostile requests (path traversal, malformed auth headers, bodies
   over the limit, invalid names) are counted as anomalies.

Auth failures, limit violations and anomalies are strikes: past the
configured thresholds the address is blocked. Everything is counted for
``GET /_api/security/metrics``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

import falcon

from app.auth import Guard
from app.http import LOGOUT_PREFIX, bearer_token, raw_path
from r13core.access import Policy
from r13core.audit import AuditLog
from r13core.errors import Unauthorized
from r13core.keys import KeyStore
from r13core.ratelimit import Decision, RateLimiter
from r13core.security import (
    Blocklist,
    SecurityCounters,
    SecuritySettings,
    Strikes,
    client_ip,
)
from r13core.settings import Settings
from r13core.storage.base import BlockRecord, Storage
from r13core.users import UserStore

log = logging.getLogger("r13.security")

# Routes where passwords are tried: the stricter limit applies.
AUTH_PREFIXES: Final = ("/-/user/", "/-/v1/login", "/-/npm/v1/tokens")
# The client address of the request being served (for audit events recorded deep down).
REQUEST_IP: Final[contextvars.ContextVar[str]] = contextvars.ContextVar("r13_ip", default="")
_TRAVERSAL: Final = ("/../", "/..%2f", "%2e%2e", "/./", "\\", "%00", "%5c")


@dataclass
class SecurityServices:
    """The identity and abuse-control objects one worker uses, over one storage."""

    settings: SecuritySettings
    storage: Storage
    keys: KeyStore
    users: UserStore
    blocks: Blocklist
    counters: SecurityCounters
    audit: AuditLog
    policy: Policy


def open_security(storage: Storage, settings: SecuritySettings) -> SecurityServices:
    """The security services over ``storage`` (cheap: connections open lazily)."""
    return SecurityServices(
        settings=settings,
        storage=storage,
        keys=KeyStore(storage),
        users=UserStore(storage),
        blocks=Blocklist(storage),
        counters=SecurityCounters(storage),
        audit=AuditLog(storage),
        policy=Policy(settings.rules),
    )


def _headers(resp: falcon.Response, decision: Decision, capacity: int, window_s: int) -> None:
    remaining = decision.remaining
    reset = -(-decision.reset_ns // 1_000_000_000)
    # Straight into falcon's header dict (names already lower case): this runs per request.
    headers = resp._headers
    headers["ratelimit-policy"] = f'"default";q={capacity};w={window_s}'
    headers["ratelimit"] = f'"default";r={remaining};t={reset}'
    headers["x-ratelimit-limit"] = str(capacity)
    headers["x-ratelimit-remaining"] = str(remaining)
    headers["x-ratelimit-reset"] = str(int(time.time()) + reset)


def _refuse(resp: falcon.Response, status: str, message: str) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps({"error": message}).encode()
    resp.complete = True


def route_label(req: falcon.Request) -> str:
    """A low-cardinality name for the route (for metrics)."""
    template = req.uri_template or getattr(req.context, "route", None)
    if template:
        return str(template)
    path = req.path
    if path.startswith("/-/package/"):
        return "/-/package/:pkg/..."
    if "/-/" in path:
        return "/:pkg/-/:tarball"
    return "/:pkg"


class SecurityMiddleware:
    """See the module docstring. ``guard`` authenticates; ``limiter`` is shared."""

    def __init__(
        self,
        settings: Settings,
        services: SecurityServices,
        guard: Guard,
        limiter: RateLimiter,
    ) -> None:
        if settings.rate_limit_max < 1 or settings.rate_limit_window_ms < 1:
            raise ValueError("rate limits must be positive")
        self.services = services
        self.guard = guard
        self.limiter = limiter
        self.window_ms = settings.rate_limit_window_ms
        self.window_s = max(1, settings.rate_limit_window_ms // 1000)
        self.capacity = settings.rate_limit_max
        sec = services.settings
        self.auth_capacity = sec.auth_rate_limit_max or max(1, settings.rate_limit_max // 10)
        self.proxies = sec.trusted_proxies
        self.max_body = settings.max_body
        self.blocks = services.blocks
        self.storage = services.storage
        self.counters = services.counters
        self.strikes = Strikes(limiter, services.blocks, sec, on_block=self._blocked_now)

    def _blocked_now(self, record: BlockRecord) -> None:
        log.warning("blocked %s: %s", record.ip, record.reason)
        self.counters.add("blocks", record.ip)
        self.services.audit.safe_record(
            "r13", "ip.block", record.ip, ip=record.ip, reason=record.reason
        )

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        env = req.env
        ctx = req.context
        ip = client_ip(
            str(env.get("REMOTE_ADDR") or ""), env.get("HTTP_X_FORWARDED_FOR"), self.proxies
        )
        ctx.client_ip = ip
        ctx.guard = self.guard  # for hooks outside the resources (app/monitoring.py)
        REQUEST_IP.set(ip)
        path = req.path
        # Per-address limit (stricter where passwords are tried).
        if path.startswith(AUTH_PREFIXES):
            capacity = self.auth_capacity
            decision = self.limiter.check("auth:" + ip, capacity, self.window_ms)
        else:
            capacity = self.capacity
            decision = self.limiter.check("ip:" + ip, capacity, self.window_ms)
        # One cheap read tells whether keys or blocks changed anywhere since this thread looked.
        version = self.storage.auth_version()
        if self.blocks.blocked(ip, version=version) is not None and not self._revoking_logout(
            req, version
        ):
            _headers(resp, decision, capacity, self.window_s)
            self.counters.add("blocked_requests", ip)
            _refuse(resp, falcon.HTTP_403, "requests from your address are blocked")
            return
        # The key, once per request (cached in r13core; a bad one answers 401 where needed).
        identity = None
        token = bearer_token(req)
        ctx.token = token
        self._check_anomalies(req, ctx, ip, token)
        if token is not None:
            try:
                identity = self.guard.authenticate(token, version=version)
            except Unauthorized as exc:
                ctx.auth_error = exc
                self.auth_failed(ip)
        ctx.identity = identity
        if identity is not None and decision.allowed:
            key_capacity = identity.rate_limit or self.capacity
            by_key = self.limiter.check("key:" + identity.id, key_capacity, self.window_ms)
            if not by_key.allowed or by_key.remaining < decision.remaining:
                decision, capacity = by_key, key_capacity
        _headers(resp, decision, capacity, self.window_s)
        if not decision.allowed and not self._revoking_logout(req, version):
            resp.set_header("Retry-After", str(decision.retry_after_seconds))
            self.counters.add("rate_limited", ip)
            self.strikes.strike(ip, "limit")
            _refuse(resp, falcon.HTTP_429, "too many requests; retry later")

    def _revoking_logout(self, req: falcon.Request, version: object) -> bool:
        """Whether ``req`` is a logout of a live token (``DELETE /-/user/token/<token>``).

        Such a request is never refused by a block or a rate limit: it can only take
        access away, and refusing it would leave the token valid (issue 9, item 12).
        A logout of anything but a live token gets no exemption.
        """
        if req.method != "DELETE" or not req.path.startswith(LOGOUT_PREFIX):
            return False
        try:
            self.guard.authenticate(req.path[len(LOGOUT_PREFIX) :], version=version)
        except Unauthorized:
            return False
        return True

    def auth_failed(self, ip: str) -> None:
        """Count a failed authentication (bad key or password) from ``ip``; may block it."""
        self.counters.add("auth_failures", ip)
        self.strikes.strike(ip, "auth")

    def anomaly(self, ip: str, kind: str) -> None:
        """Count a hostile request of ``kind`` from ``ip``; may block it."""
        self.counters.add("anomalies", kind)
        self.counters.add("anomaly_clients", ip)
        self.strikes.strike(ip, "anomaly")

    def _check_anomalies(self, req: falcon.Request, ctx: Any, ip: str, token: str | None) -> None:
        raw = req.env.get("RAW_URI") or req.path
        # Cheap screen first: every marker holds a dot, a percent sign or a backslash.
        if "." in raw or "%" in raw or "\\" in raw:
            raw = raw_path(req).lower()
            if raw.endswith("/..") or any(marker in raw for marker in _TRAVERSAL):
                self.anomaly(ip, "path_traversal")
        if token == "":  # an Authorization header in no form r13 reads
            self.anomaly(ip, "malformed_auth")
        declared = req.content_length
        if declared is not None and declared > self.max_body:
            self.anomaly(ip, "oversized_body")
            ctx.anomaly_counted = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        ctx = req.context
        ip = getattr(ctx, "client_ip", "")
        status = resp.status if isinstance(resp.status, str) else str(resp.status)
        code = status[:3]
        self.counters.add("requests", f"{req.method} {route_label(req)} {code}")
        self.counters.add("clients", ip)
        key_id = getattr(getattr(ctx, "identity", None), "id", None)
        if isinstance(key_id, str):
            self.counters.add("key_requests", key_id)
        kind = getattr(ctx, "anomaly", None)
        if kind == "oversized_body" and getattr(ctx, "anomaly_counted", False):
            kind = None
        if kind:
            self.anomaly(ip, kind)
