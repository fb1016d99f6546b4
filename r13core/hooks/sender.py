"""One delivery attempt: the signed body, one POST to the checked address, its outcome.

The body is the stored event with the delivery's ``id`` first; the same bytes
on every attempt of a delivery. ``x-npm-signature: sha256=<hex>`` is the
HMAC-SHA256 of exactly those bytes under the hook's secret (how the npm
registry signed its hooks); ``x-r13-delivery`` repeats the id, for receivers
that deduplicate before parsing.

The socket is the standard library's, which is gevent's in a patched worker: a
delivery waiting on a slow receiver parks its greenlet, never the hub. The
address connected to is the one r13core/hooks/endpoints.py checked (the name
is not resolved again), TLS is verified against the host name, and no
redirect is followed (a 3xx is a failed attempt like any other non-2xx).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Final

from r13core._version import __version__
from r13core.hooks.endpoints import (
    AddressPolicy,
    EndpointRefused,
    Resolver,
    parse_endpoint,
    resolve,
    system_resolver,
)
from r13core.storage.hooks import Delivery

MAX_ERROR: Final = 300
_DRAIN: Final = 64 * 1024


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body under secret>``: the x-npm-signature header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_body(delivery: Delivery) -> bytes:
    """The bytes sent: ``{"id": <delivery id>, ...the stored event...}``."""
    stored = delivery.body
    rest = stored[1:] if stored.startswith("{") else "}"
    glue = "," if rest != "}" else ""
    return ('{"id":' + json.dumps(delivery.id) + glue + rest).encode()


@dataclass(frozen=True)
class Outcome:
    """An attempt's result: the HTTP status (None without an answer) or the error."""

    status: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


class _Pinned(http.client.HTTPConnection):
    """HTTP to ``address`` (already checked), with ``Host`` naming the endpoint's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to ``address``, the certificate checked against the endpoint's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR]


def send(
    delivery: Delivery,
    *,
    policy: AddressPolicy,
    timeout: float,
    resolver: Resolver = system_resolver,
) -> Outcome:
    """POST ``delivery`` to its hook's endpoint once; never raises for network trouble."""
    start = time.monotonic()

    def took() -> float:
        return round((time.monotonic() - start) * 1000, 3)

    try:
        endpoint = parse_endpoint(delivery.endpoint)
        addresses = resolve(endpoint, policy, resolver)
    except EndpointRefused as exc:
        return Outcome(None, str(exc)[:MAX_ERROR], took())
    body = delivery_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"r13-hooks/{__version__}",
        "x-npm-signature": signature(delivery.secret, body),
        "x-r13-delivery": delivery.id,
        "x-r13-event": delivery.event,
        "x-r13-hook": delivery.hook_id,
        "x-r13-attempt": str(delivery.attempts),
    }
    kind = _PinnedTLS if endpoint.scheme == "https" else _Pinned
    last: BaseException | None = None
    for address in addresses:
        conn = kind(endpoint.host, endpoint.port, address, timeout)
        try:
            conn.request("POST", endpoint.target, body, headers)
            response = conn.getresponse()
            response.read(_DRAIN)
            return Outcome(response.status, None, took())
        except ConnectionRefusedError as exc:
            last = exc  # the next address may answer
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return Outcome(None, _error(exc), took())
        finally:
            conn.close()
    assert last is not None
    return Outcome(None, _error(last), took())


__all__ = ["Outcome", "delivery_body", "send", "signature"]
