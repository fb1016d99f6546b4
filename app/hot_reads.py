"""The hot reads: ``GET``/``HEAD`` of a packument without falcon's request machinery.

Most of what a registry serves is one request shape: an npm-family client asking for a
packument (``GET /name``, ``GET /@scope%2fname``), anonymously or with a key, with no
body, no query and no cookie. :class:`HotReads` answers exactly that shape in the
common case, calling the same functions the falcon route and its two middlewares call
(the client address and its limiter key, the blocks, the key cache, r13core's access
policy, the shared rate limiter, the render cache, the ETag/gzip/304 choice, the
monitor's counters and access log, the security counters), and builds no falcon
``Request``/``Response``, no middleware loop, no router lookup: per request that is
most of what r13 added over the stack's own ceiling (bench/RESULTS.md, "The hot reads").

It hands a request to falcon (returns None, having changed nothing) whenever anything
is out of the ordinary, so every refusal, every anomaly and every strike is still
decided in one place (app/security_middleware.py): another method, a query string, a
cookie, a body, an ``Upgrade``, a path that is not a package's or that a falcon route
owns (``/metrics``), a suspicious path, a name that does not parse, the DEBUG flag, a
blocked address, a key that fails, an access the policy refuses. The one side effect
that can precede a hand-over is the rate limiter's count (the limit refused): the
decision goes along in the environ (``TAKEN``) and the middleware uses it rather than
counting the request twice. Past that point the request is answered here, errors
included (through app/errors.py's one table).

tests/test_hot_reads.py holds both paths to the same status, headers, body and
counters over the cases above; ``R13_SERVER_HOT_READS=0`` switches this off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final
from urllib.parse import quote

from app import errors
from app.auth import Guard
from app.http import (
    PATH_SAFE,
    bearer_of,
    redact_path,
    segments,
    split_package,
)
from app.monitoring.middleware import RequestMonitor
from app.resources.packages import NOT_MODIFIED, OK, Packages, tarball_filename
from app.security_middleware import TAKEN, SecurityMiddleware, rate_limit_headers, traversal
from r13core.abuse import client_ip, client_key
from r13core.access import Action
from r13core.config import ConfigStore, Feature
from r13core.errors import R13Error, Unauthorized
from r13core.names import PackageName
from r13core.ratelimit import packed_allowed

log = logging.getLogger("r13.app")

_METRICS: Final = int(Feature.METRICS)
_DEBUG: Final = int(Feature.DEBUG)
_PRIVATE: Final = int(Feature.PRIVATE_REGISTRY)
ROUTE: Final = "/{package}"
"""The route a packument counts under (app/resources/packages.py ``route_template``)."""
TARBALL_ROUTE: Final = "/{package}/-/{tarball}"
STREAM_BLOCK: Final = 8 * 1024
"""The block size falcon hands ``wsgi.file_wrapper`` (its Response's stream block)."""
Target = tuple[PackageName, str | None]
PATHS_REMEMBERED: Final = 4096
JSON: Final = "application/json"
_READ: Final = Action.READ
_METHODS: Final = frozenset({"GET", "HEAD"})

StartResponse = Callable[..., Any]


class HotReads:
    """See the module docstring. ``routed(path)``: whether a falcon route (not a sink)
    answers the decoded ``path``; such paths always go to falcon."""

    def __init__(
        self,
        *,
        monitor: RequestMonitor,
        firewall: SecurityMiddleware,
        packages: Packages,
        guard: Guard,
        config: ConfigStore,
        routed: Callable[[str], bool],
    ) -> None:
        self.monitor = monitor
        self.firewall = firewall
        self.packages = packages
        self.guard = guard
        self.read_record = config.read
        self.routed = routed
        # Raw paths already looked at: what they ask for, or None (never hot).
        self._paths: dict[str, Target | None] = {}

    def target(self, raw: str, path: str) -> Target | None:
        """What a raw request path (as sent, no query) asks for when it is a hot read's
        path: (package, None) for its packument, (package, file name) for a tarball; None
        when falcon must see it. Remembered per path."""
        if raw in self._paths:
            return self._paths[raw]
        found: Target | None = None
        parsed = split_package(segments(raw))
        if (
            parsed is not None
            and not parsed[0].startswith(("-", "_"))
            and not traversal(raw)
            and not self.routed(path)
        ):
            rest = parsed[1]
            try:
                if rest in ([], [""]):
                    found = (self.packages.name_of(parsed[0]), None)
                elif len(rest) == 2 and rest[0] == "-":
                    found = (self.packages.name_of(parsed[0]), tarball_filename(rest[1]))
            except R13Error:  # an invalid name: falcon answers it (and counts the anomaly)
                found = None
        if len(self._paths) >= PATHS_REMEMBERED:
            self._paths.clear()
        self._paths[raw] = found
        return found

    def __call__(
        self, env: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes] | None:
        """The response of a hot read, or None: falcon answers this request."""
        t0 = time.perf_counter_ns()
        method = env["REQUEST_METHOD"]
        # The path as sent (app/http.py raw_path: gunicorn's RAW_URI, else REQUEST_URI,
        # else PATH_INFO encoded again).
        raw = env.get("RAW_URI") or env.get("REQUEST_URI")
        if not raw:
            raw = quote(env.get("PATH_INFO") or "/", safe=PATH_SAFE)
        if (
            method not in _METHODS
            or raw[0] != "/"
            or "?" in raw
            or "#" in raw
            or env.get("QUERY_STRING")
            or "HTTP_COOKIE" in env
            or "HTTP_UPGRADE" in env
            or "HTTP_TRANSFER_ENCODING" in env
            or env.get("CONTENT_LENGTH") not in (None, "", "0")
        ):
            return None
        path = env.get("PATH_INFO") or "/"
        if not path.isascii():
            return None
        target = self.target(raw, path)
        if target is None:
            return None
        name, filename = target
        flags = self.read_record().feature_flags
        if flags & _DEBUG:  # trace ids and the debug log: falcon's path does them
            return None
        token = bearer_of(env.get("HTTP_AUTHORIZATION"))
        if token == "":  # an Authorization header in no form r13 reads: an anomaly
            return None
        fw = self.firewall
        ip = client_ip(
            str(env.get("REMOTE_ADDR") or ""), env.get("HTTP_X_FORWARDED_FOR"), fw.proxies
        )
        key = client_key(ip, fw.ipv6_prefix) if ":" in ip else ip
        version = fw.storage.auth_version()
        if fw.blocks.blocked(key, version=version) is not None:
            return None
        identity = None
        if token is not None:
            try:
                identity = self.guard.authenticate(token, version=version)
            except Unauthorized:
                return None
        if not self.guard.may(identity, _READ, str(name), ip, private=bool(flags & _PRIVATE)):
            return None
        decision, capacity = fw.take(env, fw.ip_limit, "ip:" + key, fw.capacity, identity)
        if not packed_allowed(decision):
            env[TAKEN] = decision  # falcon's path refuses it (429, counters, strikes)
            return None
        # From here on this request is answered here.
        monitor = self.monitor
        if flags & _METRICS:
            monitor._start()
        headers = rate_limit_headers(decision, capacity, fw.window_s)
        route = ROUTE if filename is None else TARBALL_ROUTE
        body: Iterable[bytes]
        length: int | None = None
        try:
            if filename is None:
                status, data = self._packument(env, name, headers)
            else:
                status, data, body, length = self._tarball(env, method, name, filename, headers)
        except R13Error as exc:
            status, data = self._error(exc, headers)
        except Exception:
            log.exception("unhandled error on %s %s", method, redact_path(path))
            status, data = errors.INTERNAL, errors.error_body("internal error")
            headers.append(("content-type", JSON))
        if length is None:  # a whole body in data
            length = len(data)
            body = [] if method == "HEAD" or not data else [data]
        if status is not NOT_MODIFIED:  # falcon sends a 304 without one
            headers.append(("content-length", str(length)))
        start_response(status, headers)
        code = status[:3]
        monitor.finish(
            flags,
            method,
            route,
            int(code),
            0,
            length if status is not NOT_MODIFIED else 0,
            time.perf_counter_ns() - t0,
            path,
            ip,
            None,
        )
        fw.count(method, route, code, key, None if identity is None else identity.id)
        return body

    def _tarball(
        self,
        env: dict[str, Any],
        method: str,
        name: PackageName,
        filename: str,
        headers: list[tuple[str, str]],
    ) -> tuple[str, bytes, Iterable[bytes], int | None]:
        """A tarball's status, whole body (or b""), what to send and its length (None: the
        whole body); its headers appended to ``headers``."""
        packages = self.packages
        answer = packages.tarball_answer(env, method, name, filename)
        headers.extend(answer.headers)
        if answer.downloaded and packages.on_download is not None:
            packages.on_download(str(name))
        if answer.data is not None:
            return answer.status, answer.data, [], None
        if answer.stream is not None:
            wrapper = env.get("wsgi.file_wrapper")
            stream = answer.stream
            sent: Iterable[bytes] = (
                wrapper(stream, STREAM_BLOCK) if wrapper is not None else _chunks(stream)
            )
            return answer.status, b"", sent, answer.length
        return answer.status, b"", [], answer.length

    def _packument(
        self, env: dict[str, Any], name: PackageName, headers: list[tuple[str, str]]
    ) -> tuple[str, bytes]:
        """The packument's status and body; its headers appended to ``headers``."""
        modified, more, body = self.packages.packument_answer(env, name)
        headers.extend(more)
        return (OK, body) if modified else (NOT_MODIFIED, b"")

    @staticmethod
    def _error(exc: R13Error, headers: list[tuple[str, str]]) -> tuple[str, bytes]:
        """A domain error's status and body, as app/errors.py answers it on falcon's path."""
        answer = errors.domain_answer(exc)
        headers.append(("content-type", JSON))
        if answer is None:
            log.error("unmapped %s on a hot read: %s", type(exc).__name__, exc, exc_info=exc)
            return errors.INTERNAL, errors.error_body("internal error")
        status, message, more = answer
        headers.extend((name.lower(), value) for name, value in more)
        return status, errors.error_body(message)


class HotFront:
    """The hot reads in front of a WSGI app that wraps the falcon app they were taken
    from (app/wsgi.py: the body deadline and the WebSocket upgrades, which a hot read
    needs neither of)."""

    def __init__(self, hot: HotReads, app: Callable[..., Iterable[bytes]]) -> None:
        self.hot = hot
        self.app = app

    def __call__(self, env: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        out = self.hot(env, start_response)
        return self.app(env, start_response) if out is None else out


def in_front(falcon_app: Any, wrapped: Callable[..., Iterable[bytes]]) -> Callable[..., Any]:
    """``wrapped`` (falcon_app inside wrappers) with ``falcon_app``'s hot reads moved in
    front of it: the falcon app no longer tries them itself. Without hot reads (off by
    R13_HOT_READS=0), ``wrapped`` as it is."""
    hot: HotReads | None = getattr(falcon_app, "hot", None)
    if hot is None:
        return wrapped
    falcon_app.hot = None
    return HotFront(hot, wrapped)


def _chunks(stream: Any) -> Iterator[bytes]:
    """A file's bytes in blocks, closed at the end (no ``wsgi.file_wrapper`` given)."""
    with stream:
        while block := stream.read(STREAM_BLOCK):
            yield block
