"""Server-side WebSockets (RFC 6455) on the gevent worker's socket, through wsproto.

The reusable layer under the live channel (``GET /_api/live``, app/live/channel.py)
and the terminal (``GET /_dashboard/terminal``). It knows nothing of r13's frames.

A route accepts a WebSocket in its falcon responder, then gets the connection after
the HTTP part of the request is over (middleware done, the request counted as a 101)::

    class Echo:
        def __init__(self, sockets: WebSockets) -> None:
            self.sockets = sockets

        def on_get(self, req, resp):
            # 426/400/503 (falcon.HTTPError) for a request that is no WebSocket
            # handshake, offers none of these subprotocols, or comes while the
            # worker stops; else 101 with the chosen subprotocol.
            self.sockets.accept(req, resp, ("echo.v1",), self.session)

        def session(self, ws: WebSocket) -> None:
            # Runs in the connection's own greenlet once the 101 is on the wire.
            while (message := ws.receive()) is not None:   # str or bytes
                ws.send_text(message) if isinstance(message, str) else ws.send_bytes(message)
            # ws.close_code says why it ended (1000, 1001, 1009, 1006, ...)

``app/wsgi.py`` wraps the falcon app in :func:`serve_upgrades`, which writes
the 101 itself and runs the session on the socket (``env['gunicorn.socket']``),
then returns gunicorn's ``ALREADY_HANDLED`` so gunicorn writes no second
response; the socket is shut down first, so gunicorn's keep-alive loop reads
EOF and closes it (gunicorn/workers/base_async.py ``handle``).

What the layer does for every connection (:class:`WebSocketSettings`):

- the handshake: ``GET``, ``Upgrade: websocket``, ``Connection: upgrade``,
  ``Sec-WebSocket-Version: 13``, a key of 16 base64 bytes; one subprotocol of
  the route's list, chosen in the client's order of preference (none offered,
  or none known: 400). No extensions (permessage-deflate would cost tens of KB
  of zlib state per connection).
- messages of at most ``max_message`` bytes (wsproto has no limit): more closes
  with 1009 as soon as the count passes it, whatever the fragmentation.
- RFC close codes for broken framing, from wsproto: 1002 (unmasked frame,
  reserved bits, bad opcode, control frame too long or fragmented, bad close
  code), 1007 (text that is not UTF-8).
- a ping after ``ping_interval`` s of silence from the client; nothing at all
  heard for ``idle_timeout`` s closes with 1011 ("keepalive ping timeout").
- sends never block the caller: bytes the kernel does not take at once wait in
  a per-connection buffer written by a short-lived greenlet; a client whose
  buffer passes ``max_pending`` bytes, or that takes nothing for
  ``send_timeout`` s, is cut off (it could not be told anything anyway).
- close 1001 to every connection when the worker stops (gunicorn's SIGTERM
  only sets ``worker.alive = False``: a watcher greenlet polls it through the
  ``alive`` callable, app/live/lifecycle.py), then new handshakes get 503.
- a cap of ``max_connections`` per worker (503 past it), so sockets never take
  every greenlet slot from HTTP.

All of it is cooperative (one greenlet per connection, reads through gevent's
socket; writes are ``os.write`` on the socket's non-blocking descriptor): it
needs gunicorn's gevent worker, and refuses with 503 elsewhere (the in-process
test client has no socket).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import falcon
import gevent
import gevent.socket
from gevent.monkey import is_module_patched
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import generate_accept_token

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL",
    "CLOSE_INVALID_DATA",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "Prepared",
    "WebSocket",
    "WebSocketSettings",
    "WebSockets",
    "prepare_bytes",
    "prepare_text",
    "serve_upgrades",
]

log = logging.getLogger("r13.websocket")

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001  # the worker stops
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_INVALID_DATA: Final = 1007  # text that is not UTF-8
CLOSE_POLICY: Final = 1008  # e.g. the key was revoked or expired
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL: Final = 1011  # also: keepalive ping timeout (as the websockets library does)
CLOSE_ABNORMAL: Final = 1006  # never sent: the TCP connection ended without a close frame

_ENV_KEY: Final = "r13.websocket"
_RECV_SIZE: Final = 16384
_WATCH_INTERVAL: Final = 0.2
_GUID_KEY_BYTES: Final = 16
_NO_BODY_HEADERS: Final = frozenset({"content-type", "content-length", "transfer-encoding"})

Prepared = bytes
"""A whole server frame, encoded once (:func:`prepare_text`) and sent to many sockets."""

# Server frames are never masked, so a message's wire bytes are the same for every
# connection: the fan-out encodes once. A FrameProtocol keeps no state between
# whole messages (only for fragmented sends, which this module never makes).
_ENCODER: Final = FrameProtocol(client=False, extensions=[])


def prepare_text(text: str) -> Prepared:
    """The wire bytes of one text message (for :meth:`WebSocket.send_prepared`)."""
    return bytes(_ENCODER.send_data(text, True))


def prepare_bytes(data: bytes) -> Prepared:
    """The wire bytes of one binary message (for :meth:`WebSocket.send_prepared`)."""
    return bytes(_ENCODER.send_data(data, True))


@dataclass(frozen=True)
class WebSocketSettings:
    """Limits and timers of every connection (R13_LIVE_* in README.md)."""

    max_message: int = 65536
    ping_interval: float = 20.0
    idle_timeout: float = 60.0
    close_timeout: float = 5.0
    send_timeout: float = 10.0
    max_pending: int = 256 << 10
    max_connections: int = 1000

    def __post_init__(self) -> None:
        if self.max_message < 1 or self.max_pending < 1 or self.max_connections < 1:
            raise ValueError("WebSocket limits must be positive")
        if min(self.ping_interval, self.idle_timeout, self.close_timeout, self.send_timeout) <= 0:
            raise ValueError("WebSocket timers must be positive")


class _Wake(Exception):
    """Thrown into a reader blocked in recv when the connection starts closing."""


def _refuse(status: str, message: str, headers: dict[str, str] | None = None) -> falcon.HTTPError:
    return falcon.HTTPError(status, description=message, headers=headers)


def _tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def choose_subprotocol(offered: Iterable[str], supported: Sequence[str]) -> str | None:
    """The first of the client's ``offered`` subprotocols that is ``supported`` (exact match)."""
    known = set(supported)
    return next((p for p in offered if p in known), None)


class WebSocket:
    """One open WebSocket (server side). Use it from its own greenlet only, except
    :meth:`send_text`, :meth:`send_bytes`, :meth:`send_prepared` and :meth:`close`,
    which any greenlet of the worker may call (they never block)."""

    def __init__(
        self,
        sock: socket.socket,
        subprotocol: str,
        settings: WebSocketSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.subprotocol = subprotocol
        self.settings = settings
        self.close_code: int | None = None
        """Why it ended: the code of the close frame sent or received (1006: no frame)."""
        self.close_reason = ""
        self.messages_in = 0
        self.messages_out = 0
        self._clock = clock
        self._conn = Connection(ConnectionType.SERVER)
        self._pending = bytearray()
        self._flusher: gevent.Greenlet[Any, Any] | None = None
        self._dead = False  # the TCP connection is gone (or cut off)
        self._reader: Any = None  # the greenlet blocked in recv, while it is
        self._heard = clock()
        self._pinged_at: float | None = None
        self._closing_since: float | None = None
        self._parts: list[bytes | bytearray | str] = []
        self._size = 0
        self._events: deque[Event] = deque()
        self._failed = False  # broken framing: a close frame went out, no answer awaited
        self._eof = False

    # -- sending (any greenlet) ------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether messages can still be sent (no close frame sent or received)."""
        return not self._dead and self._conn.state is ConnectionState.OPEN

    def send_text(self, text: str) -> None:
        """Send one text message (dropped silently once the connection is closing)."""
        if self.open:
            self._write(self._conn.send(TextMessage(data=text)))
            self.messages_out += 1

    def send_bytes(self, data: bytes) -> None:
        """Send one binary message (dropped silently once the connection is closing)."""
        if self.open:
            self._write(self._conn.send(BytesMessage(data=data)))
            self.messages_out += 1

    def send_prepared(self, frame: Prepared) -> bool:
        """Send a message encoded by :func:`prepare_text`/:func:`prepare_bytes`; False if closed."""
        if not self.open:
            return False
        self._write(frame)
        self.messages_out += 1
        return True

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake: send a close frame; :meth:`receive` then returns None
        once the client answers (or after ``close_timeout`` s)."""
        if not self.open:
            return
        self.close_code, self.close_reason = code, reason
        self._write(self._conn.send(CloseConnection(code=code, reason=reason or None)))
        self._closing_since = self._clock()
        self._wake()

    def _wake(self) -> None:
        # The reader may be blocked in recv with a long timeout: interrupt it (from the
        # hub, and only if it is still in recv when the callback runs).
        if self._reader is not None and self._reader is not gevent.getcurrent():
            gevent.get_hub().loop.run_callback(self._interrupt_reader)

    def _interrupt_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.dead:
            reader.throw(_Wake())

    def _write(self, data: bytes | bytearray) -> None:
        if self._dead or not data:
            return
        if self._pending:
            self._pending += data
            if len(self._pending) > self.settings.max_pending:
                self.abort("send buffer full")
            return
        try:
            n = os.write(self.fd, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.abort()
            return
        if n < len(data):
            self._pending += data[n:]
            if len(self._pending) > self.settings.max_pending:
                self.abort("send buffer full")
            elif self._flusher is None:
                self._flusher = gevent.spawn(self._flush)

    def _flush(self) -> None:
        try:
            while self._pending and not self._dead:
                try:
                    gevent.socket.wait_write(self.fd, timeout=self.settings.send_timeout)
                except TimeoutError:
                    self.abort("send timeout")
                    return
                try:
                    n = os.write(self.fd, self._pending)
                except BlockingIOError:
                    continue
                except OSError:
                    self.abort()
                    return
                del self._pending[:n]
        finally:
            self._flusher = None

    def abort(self, why: str = "") -> None:
        """Cut the TCP connection now (no closing handshake)."""
        if self._dead:
            return
        if why:
            log.info("websocket cut off: %s", why)
        self._dead = True
        self._pending.clear()
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._wake()

    # -- receiving (the connection's greenlet) ----------------------------------------------

    def receive(self) -> str | bytes | None:
        """The next whole message (text as str, binary as bytes); None once closed.

        Answers pings, pings an idle client, enforces the size limit and the timers,
        and answers the client's close frame. After None, :attr:`close_code` says why.
        """
        events = self._events
        while True:
            while events and not self._over():
                message = self._handle(events.popleft())
                if message is not None:
                    return message
            if self._over():
                events.clear()
                self._finish_closed()
                return None
            data = self._recv()
            if data is None:
                continue  # a timer ran out or a close began: look at the state again
            if not data:
                self._conn.receive_data(None)  # EOF: wsproto reports 1006
                self._eof = True
            else:
                self._heard = self._clock()
                self._pinged_at = None
                self._conn.receive_data(data)
            events.extend(self._conn.events())

    def _over(self) -> bool:
        """Nothing more to read: TCP gone, framing failed, or the closing handshake done."""
        return self._dead or self._failed or self._conn.state is ConnectionState.CLOSED

    def _recv(self) -> bytes | None:
        """Bytes from the socket, b"" at EOF, None when a timer ran out (acted on here)."""
        now = self._clock()
        s = self.settings
        if self._closing_since is not None:
            wait = self._closing_since + s.close_timeout - now
            if wait <= 0:
                self.abort()  # the client never answered our close frame
                return None
        else:
            silent = now - self._heard
            if silent >= s.idle_timeout:
                self.close(CLOSE_INTERNAL, "keepalive ping timeout")
                return None
            if self._pinged_at is None and silent >= s.ping_interval:
                self._pinged_at = now
                self._write(self._conn.send(Ping(payload=b"r13")))
            next_ping = s.ping_interval - silent if self._pinged_at is None else s.idle_timeout
            wait = min(next_ping, s.idle_timeout - silent)
        self._reader = gevent.getcurrent()
        try:
            self.sock.settimeout(max(wait, 0.001))
            return self.sock.recv(_RECV_SIZE)
        except (TimeoutError, _Wake):
            return None
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.EBADF):
                log.info("websocket read failed: %s", exc)
            return b""
        finally:
            self._reader = None

    def _handle(self, event: Event) -> str | bytes | None:
        if isinstance(event, TextMessage | BytesMessage):
            if self._closing_since is not None:
                return None  # after our close frame, data is read and dropped (RFC 6455 1.4)
            piece = event.data
            self._size += len(piece.encode("utf-8")) if isinstance(piece, str) else len(piece)
            if self._size > self.settings.max_message:
                self._parts, self._size = [], 0
                self.close(CLOSE_TOO_BIG, f"message over {self.settings.max_message} bytes")
                return None
            if not event.message_finished:
                self._parts.append(piece)
                return None
            parts, self._parts, self._size = self._parts, [], 0
            self.messages_in += 1
            if not parts:
                return piece if isinstance(piece, str) else bytes(piece)
            parts.append(piece)
            if isinstance(piece, str):
                return "".join(p for p in parts if isinstance(p, str))
            return b"".join(p for p in parts if isinstance(p, bytes | bytearray))
        if isinstance(event, Ping):
            if self.open:
                self._write(self._conn.send(event.response()))
            return None
        if isinstance(event, Pong):
            return None
        if isinstance(event, CloseConnection):
            self._closed_by(event)
        return None

    def _closed_by(self, event: CloseConnection) -> None:
        state = self._conn.state
        if state is ConnectionState.OPEN:
            # wsproto found broken framing (its ParseFailed): fail the connection
            # with its RFC code, then drop TCP (RFC 6455 7.1.7).
            self.close_code, self.close_reason = event.code, event.reason or ""
            self._write(self._conn.send(CloseConnection(code=event.code, reason=event.reason)))
            self._failed = True
        elif state is ConnectionState.REMOTE_CLOSING:
            # The client closes: answer with its code (1005 "no code" becomes 1000).
            self.close_code, self.close_reason = event.code, event.reason or ""
            self._write(self._conn.send(event.response()))
        elif self.close_code is None:  # CLOSED: the answer to our close, or EOF (1006)
            self.close_code, self.close_reason = event.code, event.reason or ""

    def _finish_closed(self) -> None:
        """Flush what is left (briefly) and shut the socket down: the server closes TCP first."""
        deadline = self._clock() + self.settings.close_timeout
        while self._pending and self._flusher is not None and self._clock() < deadline:
            gevent.sleep(0.01)
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        self._dead = True
        self._pending.clear()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class _Upgrade:
    sockets: WebSockets
    subprotocol: str
    session: Callable[[WebSocket], None]


class WebSockets:
    """The WebSockets of one worker: handshakes, the session runner, the shutdown watch.

    ``alive`` says whether the worker is still serving (gunicorn's
    ``worker.alive``, app/live/lifecycle.py); when it turns False every open
    socket gets close 1001 and new handshakes get 503.
    """

    def __init__(
        self,
        settings: WebSocketSettings | None = None,
        *,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings or WebSocketSettings()
        self.alive: Callable[[], bool] = alive if alive is not None else (lambda: True)
        self.connections: set[WebSocket] = set()
        self._watcher: gevent.Greenlet[Any, Any] | None = None
        self.stopping = False

    # -- the handshake (in the falcon responder) -----------------------------------------

    def accept(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        subprotocols: Sequence[str],
        session: Callable[[WebSocket], None],
    ) -> str:
        """Answer ``req`` with 101 and run ``session(ws)`` on the socket after it; the
        subprotocol chosen. falcon.HTTPError (426, 400, 503) if it cannot be a WebSocket."""
        env = req.env
        if req.method != "GET":
            raise falcon.HTTPMethodNotAllowed(["GET"])
        upgrade = [t.lower() for t in _tokens(req.get_header("Upgrade"))]
        connection = [t.lower() for t in _tokens(req.get_header("Connection"))]
        if "websocket" not in upgrade or "upgrade" not in connection:
            raise _refuse(
                "426 Upgrade Required",
                "this is a WebSocket endpoint: send Upgrade: websocket and Connection: Upgrade",
                {"Upgrade": "websocket", "Sec-WebSocket-Version": "13"},
            )
        if req.get_header("Sec-WebSocket-Version") != "13":
            raise _refuse(
                "426 Upgrade Required",
                "Sec-WebSocket-Version must be 13",
                {"Upgrade": "websocket", "Sec-WebSocket-Version": "13"},
            )
        key = (req.get_header("Sec-WebSocket-Key") or "").strip()
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == _GUID_KEY_BYTES
        except (binascii.Error, ValueError):
            valid_key = False
        if not valid_key:
            raise _refuse(falcon.HTTP_400, "Sec-WebSocket-Key must be 16 bytes in base64")
        offered = _tokens(req.get_header("Sec-WebSocket-Protocol"))
        chosen = choose_subprotocol(offered, subprotocols)
        if chosen is None:
            what = ", ".join(offered) if offered else "none"
            raise _refuse(
                falcon.HTTP_400,
                f"no supported subprotocol (offered: {what}; this server speaks "
                f"{', '.join(subprotocols)})",
            )
        if self.stopping or not self.alive():
            raise _refuse(falcon.HTTP_503, "the server is shutting down", {"Retry-After": "1"})
        if env.get("gunicorn.socket") is None or not is_module_patched("socket"):
            raise _refuse(falcon.HTTP_503, "WebSockets need r13's server (the gevent worker)")
        if len(self.connections) >= self.settings.max_connections:
            raise _refuse(
                falcon.HTTP_503,
                "too many WebSocket connections on this worker; retry later",
                {"Retry-After": "5"},
            )
        env[_ENV_KEY] = _Upgrade(self, chosen, session)
        resp.status = falcon.HTTP_101
        resp.set_header("Upgrade", "websocket")
        resp.set_header("Connection", "Upgrade")
        resp.set_header("Sec-WebSocket-Accept", generate_accept_token(key.encode("ascii")).decode())
        resp.set_header("Sec-WebSocket-Protocol", chosen)
        return chosen

    def run(
        self, sock: socket.socket, status: str, headers: list[tuple[str, str]], up: _Upgrade
    ) -> None:
        """Write the 101 and serve one accepted connection until it ends (the wrapper's
        part, :func:`serve_upgrades`)."""
        head = [f"HTTP/1.1 {status}"]
        # A 101 has no body: falcon's default content type means nothing here.
        head += [f"{n}: {v}" for n, v in headers if n.lower() not in _NO_BODY_HEADERS]
        ws = WebSocket(sock, up.subprotocol, self.settings)
        self.connections.add(ws)
        self._ensure_watcher()
        try:
            ws._write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            up.session(ws)
            if ws.open:
                ws.close(CLOSE_NORMAL)
            while ws.receive() is not None:  # drain until the client answers the close
                pass
        except Exception:
            log.exception("websocket session failed")
            if ws.open:
                ws.close(CLOSE_INTERNAL, "internal error")
                while ws.receive() is not None:
                    pass
        finally:
            self.connections.discard(ws)
            ws.abort()

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.dead:
            self._watcher = gevent.spawn(self._watch)

    def _watch(self) -> None:
        while not self.stopping:
            if not self.alive():
                self.shutdown()
                return
            gevent.sleep(_WATCH_INTERVAL)

    def shutdown(self) -> None:
        """Close every open socket with 1001 and refuse new ones (the worker stops)."""
        self.stopping = True
        for ws in list(self.connections):
            ws.close(CLOSE_GOING_AWAY, "server shutting down")


def serve_upgrades(app: Callable[..., Any]) -> Callable[..., Any]:
    """The WSGI app gunicorn runs (app/wsgi.py): ``app``, and after it, for a request
    that a route accepted (:meth:`WebSockets.accept`), the WebSocket on its socket."""
    from gunicorn.workers.base_async import ALREADY_HANDLED

    def application(env: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "HTTP_UPGRADE" not in env:
            return app(env, start_response)
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers, exc_info]
            return _no_write  # nothing may be written before the 101

        body = app(env, capture)
        upgrade: _Upgrade | None = env.pop(_ENV_KEY, None)
        if upgrade is None or not captured or not str(captured[0]).startswith("101"):
            if captured:
                start_response(*captured)
            return body
        if hasattr(body, "close"):
            body.close()
        upgrade.sockets.run(env["gunicorn.socket"], captured[0], captured[1], upgrade)
        return ALREADY_HANDLED

    return application


def _no_write(data: bytes) -> None:
    raise RuntimeError("a WebSocket route wrote a body before its 101")
