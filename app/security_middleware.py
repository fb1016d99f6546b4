"""The security layer in front of every route: client address, blocks, keys, rate limits.

One middleware, in this order per request:

1. the client address (the socket peer, or behind R13_TRUSTED_PROXIES the
   right-most untrusted X-Forwarded-For entry) and the key it is counted
   under (IPv6 by prefix, R13_IPV6_PREFIX);
2. rate limits in the C limiter shared by all workers: per client (stricter
   on login and token routes) and per key (the key's own limit when set);
   every response carries ``RateLimit-Policy``/``RateLimit`` and
   ``X-RateLimit-*``; a refusal is 429 with ``Retry-After``;
3. blocks (403), shared by all workers and kept across restarts: an admin's
   block refuses everything, an automatic one lets requests with a valid key
   through;
4. cross-site writes (a browser's ``Sec-Fetch-Site``/``Origin`` naming another
   site on POST/PUT/PATCH/DELETE) are refused before any route sees them;
5. the key: authenticated once here (cached in r13core); a bad one is kept as
   the request's auth error, raised as the same 401 when a route needs a key;
6. plainly hostile requests are counted as anomalies.

Strikes (auth failures, limit violations, path traversal) lead to automatic
blocks past the configured thresholds — but only from requests that another
web site cannot make a visitor's browser send (see :func:`strikable` and
docs/identity.md, "Threat model"), at most one per request, and never for a
refusal caused by a full limiter table. Everything is counted for
``GET /_api/security/metrics``.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import time
from typing import Any, Final

import falcon

from app.auth import Guard
from app.http import LOGOUT_PREFIX, bearer_token, raw_path
from r13core.abuse import (
    AUTO,
    BlockRecord,
    Strikes,
    client_ip,
    client_key,
    is_local,
)
from r13core.errors import Unauthorized
from r13core.metrics import METHODS
from r13core.ratelimit import (
    PACK_SECOND,
    packed_allowed,
    packed_full,
    packed_remaining,
    packed_reset_seconds,
    packed_retry_after_seconds,
)
from r13core.services import Services
from r13core.sessions import csrf_matches, is_session

log = logging.getLogger("r13.security")

# Routes where passwords are tried: the stricter limit applies.
AUTH_PREFIXES: Final = ("/-/user/", "/-/v1/login", "/-/npm/v1/tokens", "/_api/session")
# The dashboard's session cookie and the header its CSRF token comes back in
# (app/resources/session.py, r13core/sessions.py).
SESSION_COOKIE: Final = "r13_session"
CSRF_HEADER: Final = "X-R13-CSRF"
# Which strike a request counts when it earned several (the most telling first).
STRIKE_ORDER: Final = ("auth", "anomaly", "limit")
# The request being served, for strikes counted by resources (login failures).
TAKEN: Final = "r13.rate_limit_taken"
"""The environ key of a decision the hot reads took before handing a request to falcon."""
_REQUEST: Final[contextvars.ContextVar[Any]] = contextvars.ContextVar("r13_req", default=None)
_TRAVERSAL: Final = ("/../", "/..%2f", "%2e%2e", "/./", "\\", "%00", "%5c")
# What a page on another site can make a browser send without asking r13 first:
# GET/HEAD (img, script, link, navigation), OPTIONS (the preflight itself) and simple
# POSTs (forms; stopped by the same-origin gate). An Authorization header needs a
# CORS preflight, which r13 never grants, so it never comes from another site.
FORGEABLE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_OTHER_SITES: Final = frozenset({"cross-site", "same-site"})
# Headers only proxies add: a request with any of them is never "local".
FORWARDING_HEADERS: Final = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SERVER",
    "HTTP_X_ORIGINAL_FORWARDED_FOR",
    "HTTP_VIA",
    "HTTP_X_CLIENT_IP",
    "HTTP_TRUE_CLIENT_IP",
    "HTTP_CF_CONNECTING_IP",
    "HTTP_FASTLY_CLIENT_IP",
)


def strikable(method: str, env: dict[str, Any]) -> bool:
    """Whether a request may count towards an automatic block.

    Not when another web site could have made a visitor's browser send it:
    any GET, HEAD or OPTIONS without an Authorization header (an ``<img>`` tag
    must not get the visitor, or everyone behind the visitor's NAT, blocked),
    and anything a browser itself marks as coming from another site's page
    (``Sec-Fetch-Site: cross-site|same-site``: a browser may attach Basic
    credentials it cached for a proxy in front of r13). Writes that reach a
    route have passed :func:`cross_site`.
    """
    if method in FORGEABLE_METHODS and "HTTP_AUTHORIZATION" not in env:
        return False
    return env.get("HTTP_SEC_FETCH_SITE") not in _OTHER_SITES


def cross_site(env: dict[str, Any], own_origins: frozenset[str]) -> bool:
    """Whether a browser says this request comes from another site's page.

    ``Sec-Fetch-Site`` (set by the browser, not by scripts) when present;
    else an ``Origin`` that is neither this request's Host nor one of
    ``own_origins`` (the public URL's, R13_ALLOWED_HOSTS'). Clients that send
    neither (npm, pnpm, yarn, bun, curl) are not browsers on another site.
    """
    site = env.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        return str(site).strip().lower() not in ("same-origin", "none")
    origin = env.get("HTTP_ORIGIN")
    if origin is None:
        return False
    origin = str(origin).strip().lower()
    if origin in own_origins:
        return False
    host = str(env.get("HTTP_HOST") or "").strip().lower()
    return not host or origin.partition("://")[2] != host


def own_origins(public_url: str, allowed_hosts: tuple[str, ...]) -> frozenset[str]:
    """The origins r13's own pages are served from (for :func:`cross_site`)."""
    scheme, _, rest = public_url.lower().partition("://")
    origins = {f"{scheme}://{rest.split('/', 1)[0]}"}
    for host in allowed_hosts:
        origins.update({f"http://{host.lower()}", f"https://{host.lower()}"})
    return frozenset(origins)


def request_is_local(req: falcon.Request) -> bool:
    """Whether ``req`` comes from this machine itself (r13core.abuse.is_local).

    The one test for everything loopback clients may do without a key. The
    security middleware gives the trusted proxies; without it, none are.
    """
    ctx = req.context
    local = getattr(ctx, "local", None)
    if local is None:
        env = req.env
        local = is_local(
            str(env.get("REMOTE_ADDR") or ""),
            getattr(ctx, "trusted_proxies", ()),
            forwarded=any(h in env for h in FORWARDING_HEADERS),
        )
        ctx.local = local
    return bool(local)


@functools.lru_cache(maxsize=1024)
def _policy_headers(capacity: int, window_s: int) -> tuple[str, str]:
    """``RateLimit-Policy`` and ``X-RateLimit-Limit`` of a limit: the same for most requests."""
    return f'"default";q={capacity};w={window_s}', str(capacity)


def rate_limit_headers(decision: int, capacity: int, window_s: int) -> list[tuple[str, str]]:
    """The rate-limit headers of a packed decision (r13core/ratelimit.py ``Limit.take``),
    names in lower case: ``RateLimit-Policy``, ``RateLimit`` and ``X-RateLimit-*``."""
    remaining = packed_remaining(decision)
    reset = packed_reset_seconds(decision)
    policy = _policy_headers(capacity, window_s)
    return [
        ("ratelimit-policy", policy[0]),
        ("ratelimit", f'"default";r={remaining};t={reset}'),
        ("x-ratelimit-limit", policy[1]),
        ("x-ratelimit-remaining", str(remaining)),
        ("x-ratelimit-reset", str(int(time.time()) + reset)),
    ]


def _headers(resp: falcon.Response, decision: int, capacity: int, window_s: int) -> None:
    # Straight into falcon's header dict (names already lower case): this runs per request.
    resp._headers.update(rate_limit_headers(decision, capacity, window_s))


def traversal(raw: str) -> bool:
    """Whether a raw request path (as sent, no query) tries to climb out of its place."""
    # Cheap screen first: every marker holds a dot, a percent sign or a backslash.
    if "." not in raw and "%" not in raw and "\\" not in raw:
        return False
    lower = raw.lower()
    return lower.endswith("/..") or any(marker in lower for marker in _TRAVERSAL)


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
    """See the module docstring. ``guard`` authenticates; the limiter is shared."""

    def __init__(self, services: Services, guard: Guard) -> None:
        server, sec = services.settings.server, services.settings.security
        if sec.rate_limit_max < 1 or sec.rate_limit_window_ms < 1:
            raise ValueError("rate limits must be positive")
        self.guard = guard
        self.limiter = services.limiter
        self.window_ms = sec.rate_limit_window_ms
        self.window_s = max(1, sec.rate_limit_window_ms // 1000)
        self.capacity = sec.rate_limit_max
        self.auth_capacity = sec.auth_rate_limit_max or max(1, sec.rate_limit_max // 10)
        # The limits every request checks, made once (r13core/ratelimit.py Limit.take);
        # a key's own limit by its capacity (keys may set their own).
        self.ip_limit = self.limiter.limit(self.capacity, self.window_ms)
        self.auth_limit = self.limiter.limit(self.auth_capacity, self.window_ms)
        self.key_limits: dict[int, Any] = {}
        self.proxies = sec.trusted_proxies
        self.ipv6_prefix = sec.ipv6_prefix
        self.origins = own_origins(server.public_url, server.allowed_hosts)
        self.max_body = server.max_body
        self.blocks = services.blocks
        self.storage = services.storage
        self.counters = services.counters
        self.security_events = services.security_events
        self.strikes = Strikes(
            self.limiter, services.blocks, sec, on_block=self._blocked_now, audit=services.audit
        )

    def _blocked_now(self, record: BlockRecord) -> None:
        # Strikes audits the block itself (r13core/abuse.py); here it is logged and counted.
        log.warning("blocked %s (%s): %s", record.ip, record.kind, record.reason)
        self.counters.add("blocks", record.ip)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        env = req.env
        ctx = req.context
        ip = client_ip(
            str(env.get("REMOTE_ADDR") or ""), env.get("HTTP_X_FORWARDED_FOR"), self.proxies
        )
        key = client_key(ip, self.ipv6_prefix) if ":" in ip else ip  # IPv4 is its own key
        ctx.client_ip = ip
        ctx.client_key = key
        ctx.trusted_proxies = self.proxies  # for request_is_local
        ctx.guard = self.guard  # for hooks outside the resources (app/monitoring.py)
        ctx.strikable = strikable(req.method, env)
        _REQUEST.set(ctx)
        # Per-client limit (stricter where passwords are tried), counted once below
        # (with the key's own limit in the same call) or just before an early refusal.
        if req.path.startswith(AUTH_PREFIXES):
            capacity, limit, bucket = self.auth_capacity, self.auth_limit, "auth:" + key
        else:
            capacity, limit, bucket = self.capacity, self.ip_limit, "ip:" + key
        # One cheap read tells whether keys or blocks changed anywhere since this thread looked.
        version = self.storage.auth_version()
        token = bearer_token(req)
        ctx.via_cookie = False
        if token is None:
            token = self._session_token(req, version)
            if token is not None:
                ctx.via_cookie = True
                if req.method in UNSAFE_METHODS and not csrf_matches(
                    token, req.get_header(CSRF_HEADER)
                ):
                    _headers(resp, self._take(env, limit, bucket), capacity, self.window_s)
                    self.counters.add("anomalies", "csrf")
                    _refuse(resp, falcon.HTTP_403, f"missing or wrong CSRF token ({CSRF_HEADER})")
                    return
        ctx.token = token
        identity = None
        block = self.blocks.blocked(key, version=version)
        if block is not None:
            # An automatic block never locks out a request with a valid key (a team
            # behind one NAT address and one misbehaving job); an admin's refuses all.
            if block.kind == AUTO and token:
                try:
                    identity = self.guard.authenticate(token, version=version)
                except Unauthorized:
                    identity = None
            if identity is None and not self._revoking_logout(req, version):
                _headers(resp, self._take(env, limit, bucket), capacity, self.window_s)
                self.counters.add("blocked_requests", key)
                _refuse(resp, falcon.HTTP_403, "requests from your address are blocked")
                return
        if req.method in UNSAFE_METHODS and cross_site(env, self.origins):
            _headers(resp, self._take(env, limit, bucket), capacity, self.window_s)
            self.counters.add("anomalies", "cross_site_write")
            _refuse(resp, falcon.HTTP_403, "cross-site requests are refused")
            return
        self._check_anomalies(req, ctx, key, token)
        # The key, once per request (cached in r13core; a bad one answers 401 where needed).
        if token is not None and identity is None:
            try:
                identity = self.guard.authenticate(token, version=version)
            except Unauthorized as exc:
                ctx.auth_error = exc
                self.auth_failed(ip)
        ctx.identity = identity
        decision, capacity = self.take(env, limit, bucket, capacity, identity)
        _headers(resp, decision, capacity, self.window_s)
        if not packed_allowed(decision) and not self._revoking_logout(req, version):
            resp.set_header("Retry-After", str(packed_retry_after_seconds(decision)))
            if packed_full(decision):
                # The table is full of other clients: nothing this client did.
                self.counters.add("limiter_full", key)
                _refuse(resp, falcon.HTTP_429, "the server is busy; retry later")
                return
            self.counters.add("rate_limited", key)
            self.security_events.refused("limit", ip, route=route_label(req))
            self._strike(ctx, key, "limit")
            _refuse(resp, falcon.HTTP_429, "too many requests; retry later")

    def take(
        self, env: dict[str, Any], limit: Any, bucket: str, capacity: int, identity: Any
    ) -> tuple[int, int]:
        """Count one request: the packed decision and the capacity its headers name.

        The address's limit, then (when it admits, and the request has a key) the key's:
        one call into C. A decision the hot reads (app/hot_reads.py) already took for
        this request, before handing it here, is used instead of counting it twice.
        """
        taken: int | None = env.pop(TAKEN, None)
        if identity is None:
            return (limit.take(bucket) if taken is None else taken), capacity
        key_capacity = identity.rate_limit or self.capacity
        if taken is None:
            key_limit: Any = self.key_limits.get(key_capacity)
            if key_limit is None:
                key_limit = self.key_limits[key_capacity] = self.limiter.limit(
                    key_capacity, self.window_ms
                )
            taken = limit.take_with(bucket, key_limit, "key:" + identity.id)
        return taken, (key_capacity if taken & PACK_SECOND else capacity)

    def _take(self, env: dict[str, Any], limit: Any, bucket: str) -> int:
        """One request counted against the address's limit only (an early refusal)."""
        taken: int | None = env.pop(TAKEN, None)
        return limit.take(bucket) if taken is None else taken

    def count(self, method: str, route: str, code: str, key: str, key_id: object) -> None:
        """Count a response in the security counters (``GET /_api/security/metrics``)."""
        method = method if method in METHODS else "OTHER"  # no made-up labels
        self.counters.add("requests", f"{method} {route} {code}")
        self.counters.add("clients", key)
        if isinstance(key_id, str):
            self.counters.add("key_requests", key_id)

    def _session_token(self, req: falcon.Request, version: object) -> str | None:
        """The dashboard session's secret from the cookie when it may stand for a key.

        The one place a cookie becomes a credential. Ignored (the request is anonymous)
        on a request another site made (Sec-Fetch-Site / Origin, as for writes: the
        live channel's and the terminal's WebSocket handshakes included), on a new
        sign-in (``POST /_api/session``), and when the session has ended or expired (an
        old cookie is no attack: no strike). Never a bearer key in a cookie: only
        sessions (r13core/sessions.py) are accepted there.
        """
        values = req.get_cookie_values(SESSION_COOKIE)
        if not values:
            return None
        if req.method == "POST" and req.path == "/_api/session":
            return None
        if cross_site(req.env, self.origins):
            return None
        secret = values[0]
        try:
            info = self.guard.authenticate(secret, version=version)
        except Unauthorized:
            return None
        return secret if is_session(info) else None

    def _strike(self, ctx: Any, key: str, kind: str) -> None:
        """Note a strike of ``kind`` against the request ``ctx``; it is counted (once) when
        the response goes out. Outside a request (``ctx`` None) it counts at once."""
        if ctx is None:
            self.strikes.strike(key, kind)
            return
        kinds = getattr(ctx, "strike_kinds", None)
        if kinds is None:
            kinds = ctx.strike_kinds = set()
        kinds.add(kind)

    def _count_strike(self, ctx: Any, key: str) -> None:
        # One strike per request at most, of the strongest kind that is switched on,
        # and none at all for a request another site could have made a browser send.
        kinds = getattr(ctx, "strike_kinds", None)
        if not kinds or not getattr(ctx, "strikable", False):
            return
        for kind in STRIKE_ORDER:
            if kind in kinds and self.strikes.enabled(kind):
                self.strikes.strike(key, kind)
                return

    def _revoking_logout(self, req: falcon.Request, version: object) -> bool:
        """Whether ``req`` is a logout of a live token (``DELETE /-/user/token/<token>``).

        Such a request is never refused by a block or a rate limit: it can only take
        access away, and refusing it would leave the token valid.
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
        ctx = _REQUEST.get()
        if ctx is not None and getattr(ctx, "client_ip", None) != ip:
            ctx = None
        key = ctx.client_key if ctx is not None else client_key(ip, self.ipv6_prefix)
        self.counters.add("auth_failures", key)
        self.security_events.refused("auth_failure", ip)
        self._strike(ctx, key, "auth")

    def anomaly(self, key: str, kind: str, *, ctx: Any = None, strike: bool = False) -> None:
        """Count a suspicious request of ``kind`` from client ``key``.

        Only ``strike=True`` kinds (path traversal) may lead to a block, and only
        from a request :func:`strikable` allows: what browsers and package
        managers send by accident (an invalid name like ``/favicon.ico``, a body
        over the limit, a malformed Authorization header, which also fails as a
        bad key) is counted and never struck.
        """
        self.counters.add("anomalies", kind)
        self.counters.add("anomaly_clients", key)
        if strike:
            self._strike(ctx, key, "anomaly")

    def _check_anomalies(self, req: falcon.Request, ctx: Any, key: str, token: str | None) -> None:
        raw = req.env.get("RAW_URI") or req.path
        # Cheap screen first (the query string included), then the path as sent.
        if ("." in raw or "%" in raw or "\\" in raw) and traversal(raw_path(req)):
            self.anomaly(key, "path_traversal", ctx=ctx, strike=True)
        if token == "":  # an Authorization header in no form r13 reads
            self.anomaly(key, "malformed_auth", ctx=ctx)
        declared = req.content_length
        if declared is not None and declared > self.max_body:
            self.anomaly(key, "oversized_body", ctx=ctx)
            ctx.anomaly_counted = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        ctx = req.context
        key = getattr(ctx, "client_key", "")
        status = resp.status if isinstance(resp.status, str) else str(resp.status)
        key_id = getattr(getattr(ctx, "identity", None), "id", None)
        self.count(req.method, route_label(req), status[:3], key, key_id)
        kind = getattr(ctx, "anomaly", None)
        if kind == "oversized_body" and getattr(ctx, "anomaly_counted", False):
            kind = None
        if kind:
            self.anomaly(key, kind, ctx=ctx)
        self._count_strike(ctx, key)
