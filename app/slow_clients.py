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

Under gevent a ``gevent.Timeout`` bounds each read by the time left; under gthread a
timer thread shuts the connection's reading side at the deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
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
        self._timer: threading.Timer | None = None
        self._expired = False

    def _error(self) -> RequestTimeout:
        self._shut()
        return RequestTimeout(f"the request body did not arrive within {self._timeout:g} s")

    def _shut(self) -> None:
        self._expired = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RD)  # the rest of this body is never read

    def _within(self, read: Callable[[], bytes]) -> bytes:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._error()
        if cooperative.patched():
            import gevent

            timer = gevent.Timeout(left)
            try:
                with timer:
                    return read()
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
                raise self._error() from None
        # Threads: a read loops over recv until it has its bytes, so a socket timeout
        # (per recv) would not bound it. A timer shuts the reading side at the deadline;
        # the blocked recv then sees the end of the stream.
        if self._timer is None and self._sock is not None:
            self._timer = threading.Timer(left, self._shut)
            self._timer.daemon = True
            self._timer.start()
        try:
            data = read()
        except Exception:
            if self._expired:
                raise self._error() from None
            raise
        if self._expired:
            raise self._error()
        return data

    def cancel(self) -> None:
        """Stop the deadline's timer (the app has returned: it reads no more of this body)."""
        if self._timer is not None:
            self._timer.cancel()

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
        if not (environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING")):
            return self.app(environ, start_response)
        body = DeadlineInput(
            environ["wsgi.input"],
            environ.get("gunicorn.socket"),
            time.monotonic() + self.timeout,
            self.timeout,
        )
        environ["wsgi.input"] = body
        try:
            return self.app(environ, start_response)  # falcon has read what it reads
        finally:
            body.cancel()
