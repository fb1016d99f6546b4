"""The HTTP client r13 talks to its upstream registry with.

Plain ``http.client`` over the standard library's sockets: under gunicorn's
gevent worker those are gevent's (the worker monkey-patches the process), so a
greenlet waiting for the upstream lets every other request of the worker run;
nothing here blocks the hub. Each worker keeps a few idle keep-alive
connections (``pool_size``), so a proxied miss does not pay a TCP (and TLS)
handshake each time.

Timeouts are tight (docs/uplinks.md): ``connect_timeout`` for the TCP connect,
``timeout`` for every read (a response head, a chunk of body), and, for JSON
documents, ``timeout`` for the whole body too, so an upstream trickling bytes
cannot hold a client for long. Every failure becomes one of r13core's errors:
:class:`~r13core.errors.UpstreamTimeout` (a timeout) or
:class:`~r13core.errors.UpstreamError` (refused, reset, cut short, a 5xx, a
body too big or malformed); a 404 or 410 is ``None`` (the upstream does not
have it), never an error.

Every request carries ``Via: 1.1 <this registry>`` after whatever ``Via`` the
incoming request had, so two registries proxying each other notice the loop
(:meth:`Upstream.via`), and the uplink's token if one is set — only to the
uplink's own origin.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

from r13core.errors import UpstreamError, UpstreamTimeout

MAX_DOCUMENT: Final = 256 * 1024 * 1024
"""The largest packument r13 reads from the upstream (decompressed)."""
CHUNK: Final = 64 * 1024
USER_AGENT: Final = "r13-uplink/1"


@dataclass(frozen=True)
class Document:
    """A JSON answer: status (200 or 304), the body (empty for 304), the upstream's ETag."""

    status: int
    body: bytes
    etag: str | None
    elapsed: float


def _timeout_error(what: str, exc: BaseException) -> UpstreamError:
    if isinstance(exc, TimeoutError | socket.timeout):
        return UpstreamTimeout(f"the upstream did not answer in time ({what})")
    text = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
    return UpstreamError(f"the upstream failed ({what}): {text}")


class Upstream:
    """One upstream registry at ``url`` (``https://registry.npmjs.org``)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        via: str = "r13",
        connect_timeout: float = 3.0,
        timeout: float = 15.0,
        pool_size: int = 8,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.token = token
        self.via_token = via
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        # Made on the first HTTPS connection: loading the system's CA certificates costs
        # ~50-100 ms of CPU and ~2 MB in every process that opens its services (each
        # worker, `r13 serve` itself), most of which never reach the upstream.
        self._ssl: ssl.SSLContext | None = None

    # -- connections ------------------------------------------------------------------

    def _new(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=self._tls()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self.timeout)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _tls(self) -> ssl.SSLContext:
        """The TLS context of this upstream's connections (one, shared, made once)."""
        if self._ssl is None:
            with self._lock:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
        return self._ssl

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- requests ---------------------------------------------------------------------

    def via(self, incoming: str = "") -> str:
        """The ``Via`` header to send: the incoming one, then this registry."""
        mine = f"1.1 {self.via_token}"
        return f"{incoming}, {mine}" if incoming.strip() else mine

    def loops(self, incoming: str) -> bool:
        """Whether ``incoming`` (a request's ``Via``) already passed through this registry."""
        return any(
            hop.strip().split(" ", 1)[-1].strip() == self.via_token for hop in incoming.split(",")
        )

    def package_path(self, name: str) -> str:
        """The upstream path of a packument (``@scope%2fname``, as npm sends it)."""
        return f"{self.base_path}/{quote(name, safe='@')}"

    def path_of(self, url: str) -> str:
        """The path to ask the uplink for a tarball the upstream names by ``url``.

        Only the uplink's own origin is ever contacted: a tarball URL on another
        host (a mirror, a CDN) is asked of the uplink by its path, the npm layout
        ``/<name>/-/<file>.tgz`` every registry serves.
        """
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return path

    def _headers(self, accept: str, via: str) -> dict[str, str]:
        headers = {
            "Accept": accept,
            "User-Agent": USER_AGENT,
            "Via": self.via(via),
            "Accept-Encoding": "gzip",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send and read the head; one retry on a fresh connection if a pooled one was stale."""
        for attempt in (0, 1):
            try:
                conn, reused = self._take()
            except OSError as exc:
                raise _timeout_error("connect", exc) from None
            try:
                conn.request(method, path, body=body, headers=headers)
                return conn, conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # the upstream closed an idle connection: not its failure
                raise _timeout_error("response", exc) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _timeout_error("response", exc) from None
        raise AssertionError("unreachable")

    def get_document(
        self,
        path: str,
        *,
        accept: str = "application/json",
        etag: str | None = None,
        via: str = "",
        max_bytes: int = MAX_DOCUMENT,
    ) -> Document | None:
        """GET a JSON document; None for 404/410; a 304 when ``etag`` still holds."""
        headers = self._headers(accept, via)
        if etag:
            headers["If-None-Match"] = etag
        return self._exchange("GET", path, headers, None, max_bytes)

    def post_json(
        self, path: str, body: bytes, *, via: str = "", max_bytes: int = MAX_DOCUMENT
    ) -> Document | None:
        """POST a JSON body (npm audit), read the JSON answer; None for 404/410."""
        headers = self._headers("application/json", via)
        headers["Content-Type"] = "application/json"
        return self._exchange("POST", path, headers, body, max_bytes)

    def _exchange(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        max_bytes: int,
    ) -> Document | None:
        started = time.monotonic()
        conn, resp = self._send(method, path, headers, body)
        try:
            status = resp.status
            if status in (404, 410):
                resp.read()
                self._finish(conn, resp)
                return None
            if status == 304:
                resp.read()
                self._finish(conn, resp)
                return Document(304, b"", resp.getheader("ETag"), time.monotonic() - started)
            if status != 200:
                conn.close()
                raise UpstreamError(f"the upstream answered {status} {resp.reason}".rstrip())
            data = self._read_all(resp, started, max_bytes)
            etag = resp.getheader("ETag")
            self._finish(conn, resp)
            return Document(200, data, etag, time.monotonic() - started)
        except UpstreamError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException, zlib.error) as exc:
            conn.close()
            raise _timeout_error("body", exc) from None

    def _read_all(self, resp: http.client.HTTPResponse, started: float, max_bytes: int) -> bytes:
        gz = (resp.getheader("Content-Encoding") or "").lower() == "gzip"
        inflate = zlib.decompressobj(wbits=31) if gz else None
        parts: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() - started > self.timeout:
                raise UpstreamTimeout("the upstream did not send the whole document in time")
            chunk = resp.read1(CHUNK) if hasattr(resp, "read1") else resp.read(CHUNK)
            if not chunk:
                break
            if inflate is not None:
                chunk = inflate.decompress(chunk, max_bytes + 1 - size)
            size += len(chunk)
            if size > max_bytes:
                raise UpstreamError(f"the upstream's document is larger than {max_bytes} bytes")
            parts.append(chunk)
        if resp.length:  # read1 ends quietly when the peer closes early
            raise UpstreamError("the upstream's document was cut short")
        if inflate is not None:
            tail = inflate.flush()
            if not inflate.eof:
                raise UpstreamError("the upstream's gzip body was cut short")
            parts.append(tail)
        return b"".join(parts)

    def _finish(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        if resp.will_close or not resp.isclosed():
            conn.close()  # a closing server, or unread bytes: not reusable
            return
        self._give_back(conn)

    @contextmanager
    def stream(self, path: str, *, via: str = "") -> Iterator[tuple[int | None, Iterator[bytes]]]:
        """GET raw bytes (a tarball): ``(Content-Length or None, chunks)``.

        NotFound-like answers raise :class:`UpstreamError` here: a tarball the
        packument names must exist. Each read waits at most ``timeout``; a body
        shorter than its Content-Length is an error.
        """
        headers = self._headers("application/octet-stream", via)
        headers["Accept-Encoding"] = "identity"
        conn, resp = self._send("GET", path, headers)
        ok = False
        try:
            if resp.status != 200:
                raise UpstreamError(f"the upstream answered {resp.status} for a tarball")
            length_header = resp.getheader("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None

            def chunks() -> Iterator[bytes]:
                got = 0
                try:
                    while True:
                        chunk = resp.read1(CHUNK)
                        if not chunk:
                            break
                        got += len(chunk)
                        yield chunk
                except (OSError, http.client.HTTPException) as exc:
                    raise _timeout_error("tarball body", exc) from None
                if length is not None and got != length:
                    raise UpstreamError(f"the upstream sent {got} of {length} tarball bytes")

            yield length, chunks()
            ok = resp.isclosed() and not resp.will_close
        finally:
            if ok:
                self._give_back(conn)
            else:
                conn.close()


__all__ = ["CHUNK", "MAX_DOCUMENT", "Document", "Upstream"]
