"""The request middleware: counts every request in the shared counters, access log, trace ids."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _json_str

import falcon

from app.http import redact_path
from app.monitoring.logs import JsonLines, debug_log
from r13core.config import ConfigStore, Feature
from r13core.metrics import METHODS, UNMATCHED, Metrics, route_key

_METRICS = int(Feature.METRICS)
_LOGGING = int(Feature.LOGGING)
_DEBUG = int(Feature.DEBUG)
TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What a client's X-Request-Id must look like to be kept (else a new id is made)."""


class RequestMonitor:
    """Counts every request in the shared counters; access log; trace ids.

    Put it first in the middleware list so its latency covers the others.
    Requests are counted under ``"<METHOD> <route template>"``, named from the
    route table only, never from the request path: falcon's ``uri_template``,
    or for a sink or custom router a name it sets in ``req.context.route`` from
    the fixed set it declared (:meth:`declare_routes`). Anything else (no
    route, an undeclared name) counts under ``"*"``, and methods outside
    ``METHODS`` as ``OTHER``, so no client can fill the shared route table.
    Reads the live record once per request: METRICS off skips counting,
    LOGGING on writes an access-log line, DEBUG on adds ``X-Request-Id``
    (the client's, if it sent a sane one), ``X-R13-Worker`` (the pid that
    served it) and a debug log line.
    """

    def __init__(self, metrics: Metrics, store: ConfigStore, access_log: JsonLines) -> None:
        self.metrics = metrics
        self.store = store
        self.access_log = access_log
        self._ids: dict[tuple[str, str | None], int] = {}
        self._start = metrics.request_start
        self._end = metrics.request_end
        self._read = store.read
        self.pid = str(os.getpid())
        self.pid_int = os.getpid()
        self.sink_routes: frozenset[str] = frozenset()

    def declare_routes(self, names: Iterable[str]) -> None:
        """Add the route names a sink may put in ``req.context.route``."""
        self.sink_routes = self.sink_routes | frozenset(names)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = req.context
        flags = self._read().feature_flags
        ctx.r13_flags = flags
        if flags & _METRICS:
            self._start()
        if flags & _DEBUG:
            given = req.get_header("X-Request-Id")
            trace = given if given and TRACE_ID.fullmatch(given) else uuid.uuid4().hex
            ctx.trace_id = trace
            resp.set_header("X-Request-Id", trace)
            resp.set_header("X-R13-Worker", self.pid)
        ctx.r13_t0 = time.perf_counter_ns()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        ctx = req.context
        t0 = getattr(ctx, "r13_t0", None)
        if t0 is None:
            return
        latency = time.perf_counter_ns() - t0
        flags: int = ctx.r13_flags
        # Sinks and custom routers have no uri_template: they may name the route
        # in req.context.route (e.g. "/{package}/-/{tarball}"), if declared.
        route = getattr(ctx, "route", None)
        if route is not None and route not in self.sink_routes:
            route = None
        status = resp.status_code
        try:
            body = resp.render_body()
        except Exception:  # the app's error path will report it
            body = None
        out = len(body) if body is not None else int(resp.content_length or 0)
        # The raw header: falcon's content_length property costs ~0.5 us.
        raw_len = req.env.get("CONTENT_LENGTH")
        size_in = int(raw_len) if raw_len and raw_len.isdigit() else 0
        self.finish(
            flags,
            req.method,
            route or req.uri_template,
            status,
            size_in,
            out,
            latency,
            req.path,
            # The client as the security layer resolved it (through trusted proxies).
            ctx.get("client_ip") or req.remote_addr,
            ctx.get("trace_id"),
        )

    def finish(
        self,
        flags: int,
        method: str,
        route: str | None,
        status: int,
        size_in: int,
        out: int,
        latency: int,
        path: str,
        ip: str | None,
        trace: str | None,
    ) -> None:
        """Count a response that took ``latency`` ns and log it, as ``flags`` (the record's
        feature flags read when it began) say: the falcon path and the hot reads
        (app/hot_reads.py) both end here."""
        label = method if method in METHODS else "OTHER"
        key = (label, route)
        rid = self._ids.get(key)
        if rid is None:
            rid = self._ids[key] = self.metrics.route_id(route_key(*key))
        if flags & _METRICS:
            self._end(rid, status, size_in, out, latency)
        if flags & (_LOGGING | _DEBUG):
            ts = round(time.time(), 6)
            ms = round(latency / 1e6, 3)
            path = redact_path(path)  # no token from a logout URL
            route_name = route or UNMATCHED
            if flags & _LOGGING:
                line = access_line(
                    ts, method, path, route_name, status, size_in, out, ms, ip, trace, self.pid_int,
                )  # fmt: skip
                self.access_log.write_line(line)
            if flags & _DEBUG:
                record = {
                    "ts": ts,
                    "method": method,
                    "path": path,
                    "route": route_name,
                    "status": status,
                    "bytes_in": size_in,
                    "bytes_out": out,
                    "ms": ms,
                    "ip": ip,
                    "trace_id": trace,
                    "pid": self.pid_int,
                }
                debug_log.debug("request %s", json.dumps(record))


def access_line(
    ts: float,
    method: str,
    path: str,
    route: str,
    status: int,
    bytes_in: int,
    bytes_out: int,
    ms: float,
    ip: str | None,
    trace_id: str | None,
    pid: int,
) -> bytes:
    """One access-log line: the JSON object ``json.dumps`` would write for these fields
    (compact separators, ASCII escapes), built without a dict and an encoder per request.
    tests/test_monitoring_access_log.py holds it to ``json.dumps``'s bytes."""
    return (
        f'{{"ts":{ts!r},"method":{_json_str(method)},"path":{_json_str(path)},'
        f'"route":{_json_str(route)},"status":{int(status)},"bytes_in":{int(bytes_in)},'
        f'"bytes_out":{int(bytes_out)},"ms":{ms!r},'
        f'"ip":{"null" if ip is None else _json_str(ip)},'
        f'"trace_id":{"null" if trace_id is None else _json_str(trace_id)},"pid":{pid}}}\n'
    ).encode()
