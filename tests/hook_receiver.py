"""A real webhook receiver on loopback for the tests: verifies each signature, records
each request, and can fail (500), refuse connections (stopped), or hold requests open."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    delivery: str
    signature_ok: bool
    body: dict[str, Any]
    headers: dict[str, str]
    answered: int


class Receiver:
    """``mode``: "ok" (204), "fail" (500), "hold" (keep the request until released).

    :meth:`stop` closes the listening socket (connections are refused); :meth:`start`
    listens again on the same port.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.mode = "ok"
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                want = "sha256=" + hmac.new(receiver.secret, raw, hashlib.sha256).hexdigest()
                got = self.headers.get("x-npm-signature", "")
                mode = receiver.mode
                status = 500 if mode == "fail" else 204
                record = Received(
                    self.headers.get("x-r13-delivery", ""),
                    hmac.compare_digest(want, got),
                    json.loads(raw),
                    {k.lower(): v for k, v in self.headers.items()},
                    status,
                )
                with receiver.lock:
                    receiver.received.append(record)
                if mode == "hold":
                    receiver.release.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def refuses(self) -> bool:
        """Whether a connection to the port is refused now."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        return False

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def unique(self) -> list[Received]:
        """Successful requests, first of each delivery id, in arrival order (deduplicated)."""
        seen: set[str] = set()
        out = []
        for r in self.snapshot():
            if r.answered == 204 and r.delivery not in seen:
                seen.add(r.delivery)
                out.append(r)
        return out


def wait_for(condition: Callable[[], bool], timeout: float = 120.0, what: str = "") -> None:
    """Poll ``condition`` until true; a generous timeout, no fixed sleep asserted on."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
