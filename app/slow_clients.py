"""Slow clients: a deadline for each request body (the header timeout is gunicorn's).

gunicorn's gevent worker reads a request line and its headers under its keep-alive
timeout (``R13_HEADER_TIMEOUT``, app/gunicorn_conf.py), then hands the body to the
app as ``wsgi.input``, which waits for bytes as long as the client likes. A client
that trickles a body would hold its connection (and, under gthread, a pool thread)
for ever. :class:`BodyDeadline` wraps the WSGI app: the whole body of a request
must arrive within ``R13_BODY_TIMEOUT`` of the app's first look at it, else the
read raises :class:`~r13core.errors.RequestTimeout` (408, app/errors.py) and the
connection's reading side is shut, so gunicorn closes it after the answer instead
of reading the rest of that body as the next request.

Under gevent the deadline holds exactly (a ``gevent.Timeout`` around each read);
under gthread each wait for bytes is bounded by the time left (a socket timeout).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from r13core import cooperative
from r13core.errors import RequestTimeout

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DeadlineInput:
    """``wsgi.input`` whose reads fail once ``deadline`` (time.monotonic) has passed."""

    def __init__(self, inner: Any, sock: Any, deadline: float, timeout: float) -> None:
        self._inner = inner
        self._sock = sock
        self._deadline = deadline
        self._timeout = timeout

    def _expired(self) -> RequestTimeout:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RD)  # the rest of this body is never read
        return RequestTimeout(f"the request body did not arrive within {self._timeout:g} s")

    def _within(self, read: Callable[[], bytes]) -> bytes:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._expired()
        if cooperative.patched():
            import gevent

            timer = gevent.Timeout(left)
            try:
                with timer:
                    return read()
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
                raise self._expired() from None
        if self._sock is None:
            return read()
        try:
            self._sock.settimeout(left)
            return read()
        except TimeoutError:
            raise self._expired() from None
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(None)

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes of the body (all of it for -1 or None)."""
        return self._within(lambda: self._inner.read(size))

    def readline(self, size: int | None = -1) -> bytes:
        """One line of the body."""
        return self._within(lambda: self._inner.readline(size))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines of the body."""
        lines: list[bytes] = []
        while line := self.readline():
            lines.append(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class BodyDeadline:
    """A WSGI app whose requests' bodies must arrive within ``timeout`` seconds."""

    def __init__(self, app: WSGIApp, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.app = app
        self.timeout = timeout

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING"):
            environ["wsgi.input"] = DeadlineInput(
                environ["wsgi.input"],
                environ.get("gunicorn.socket"),
                time.monotonic() + self.timeout,
                self.timeout,
            )
        return self.app(environ, start_response)
