"""One table from r13core's domain errors to HTTP statuses.

Every error leaves as JSON ``{"error": "..."}``; nothing leaves as HTML or a
stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from app.http import redact_path
from r13core import errors

log = logging.getLogger("r13.app")

# Most specific first: the first isinstance match wins.
STATUS_OF: list[tuple[type[Exception], str]] = [
    (errors.RecordFileError, falcon.HTTP_500),
    (errors.InvalidValue, falcon.HTTP_400),  # InvalidName, InvalidPublish, BadRequest
    (errors.NotFound, falcon.HTTP_404),
    (errors.Conflict, falcon.HTTP_409),  # VersionExists, RevConflict, ExistsUpstream
    (errors.Unauthorized, falcon.HTTP_401),
    (errors.Forbidden, falcon.HTTP_403),
    (errors.PayloadTooLarge, falcon.HTTP_413),
    (errors.UnsupportedMediaType, falcon.HTTP_415),
    (errors.LimiterFull, falcon.HTTP_429),
    (errors.RequestTimeout, falcon.HTTP_408),
    (errors.UpstreamTimeout, falcon.HTTP_504),
    (errors.UpstreamError, falcon.HTTP_502),  # IntegrityMismatch
    (errors.LoopDetected, falcon.HTTP_508),
    # An upstream's version whose registry signature fails: refused, never served unsigned.
    (errors.SignatureError, falcon.HTTP_502),
    # The PostgreSQL server is down or the pool has no connection in time (docs/storage.md).
    (errors.StorageUnavailable, falcon.HTTP_503),
    (errors.SchemaPending, falcon.HTTP_503),
    (errors.SchemaTooNew, falcon.HTTP_503),
]


INTERNAL = falcon.HTTP_500


def domain_answer(ex: Exception) -> tuple[str, str, list[tuple[str, str]]] | None:
    """(status, message, extra headers) of a domain error; None when it maps to no status."""
    for kind, status in STATUS_OF:
        if isinstance(ex, kind):
            if isinstance(ex, errors.Unauthorized):
                # npm reads the challenge: "ipaddress" and "otp" change what it tells the user.
                challenge = [("WWW-Authenticate", ex.www_authenticate or "Bearer")]
                return status, str(ex) or kind.__name__, challenge
            return status, str(ex) or kind.__name__, []
    return None


def error_body(message: str) -> bytes:
    """Every error's body: ``{"error": message}``."""
    return json.dumps({"error": message}).encode()


def _send(resp: falcon.Response, status: str, message: str) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = error_body(message)


def handle_domain_error(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    # The security middleware counts these as anomalies (probing, oversized bodies).
    if isinstance(ex, errors.InvalidName):
        req.context.anomaly = "invalid_name"
    elif isinstance(ex, errors.PayloadTooLarge):
        req.context.anomaly = "oversized_body"
    answer = domain_answer(ex)
    if answer is not None:
        status, message, headers = answer
        _send(resp, status, message)
        if headers:
            resp.set_headers(headers)
        return
    log.error(
        "unmapped %s on %s %s: %s",
        type(ex).__name__,
        req.method,
        redact_path(req.path),
        ex,
        exc_info=ex,  # the traceback: a 500 is always a bug to find
    )
    _send(resp, falcon.HTTP_500, "internal error")


def handle_http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict[str, Any]
) -> None:
    _send(resp, str(ex.status), ex.description or ex.title or "error")
    if ex.headers:
        resp.set_headers(ex.headers)


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    log.exception("unhandled error on %s %s", req.method, redact_path(req.path))
    _send(resp, falcon.HTTP_500, "internal error")


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Register the handlers (falcon tries the most specific class first)."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(errors.R13Error, handle_domain_error)
