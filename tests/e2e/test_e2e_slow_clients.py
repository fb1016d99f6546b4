"""Slow and idle clients against a real gunicorn (gevent worker, 2 workers).

A client that trickles header or body bytes is dropped after R13_HEADER_TIMEOUT /
R13_BODY_TIMEOUT; while 64 of them trickle, `GET /-/ping` keeps answering; a worker
serves at most R13_WORKER_CONNECTIONS connections at once. Nothing here is timed: the
tests wait for what must happen (bounded by generous deadlines) and check it happened.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, start_server
from tests.readiness import readable

pytestmark = pytest.mark.slow

GENEROUS = 120.0
REQUEST_LINE = b"GET /-/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Tricklers:
    """``n`` connections that send a request line, then one header byte at a time, for
    ever: a header that never ends. A connection the server closes is counted."""

    def __init__(self, port: int, n: int, *, pause: float = 0.2) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]
        for s in self.socks:
            s.sendall(REQUEST_LINE)
        self.pause = pause
        self.closed: set[int] = set()
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _gone(self, s: socket.socket) -> bool:
        if not readable(s, 0):
            return False
        try:
            return s.recv(4096) == b""  # the server said nothing and closed
        except OSError:
            return True

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, s in enumerate(self.socks):
                if i in self.closed:
                    continue
                try:
                    if self._gone(s):
                        self.closed.add(i)
                        continue
                    s.sendall(b"a")  # part of a header name that never ends
                except OSError:
                    self.closed.add(i)
            self.rounds += 1
            self._stop.wait(self.pause)

    def wait_rounds(self, n: int) -> None:
        deadline = time.monotonic() + GENEROUS
        start = self.rounds
        while self.rounds < start + n:
            assert time.monotonic() < deadline, "the trickling thread stalled"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for s in self.socks:
            s.close()


@contextlib.contextmanager
def trickling(port: int, n: int) -> Iterator[Tricklers]:
    t = Tricklers(port, n)
    try:
        yield t
    finally:
        t.stop()


def ping(srv: Server) -> int:
    """A `GET /-/ping` on a fresh connection; a generous timeout (a loaded machine is slow)."""
    with urllib.request.urlopen(srv.url + "/-/ping", timeout=60) as r:
        r.read()
        return int(r.status)


def wait_until(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + GENEROUS
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_ping_answers_while_64_connections_trickle_headers(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    # A header timeout longer than the test: the 64 stay connected throughout.
    srv = start_server(tmp_path, R13_HEADER_TIMEOUT="600000")
    stop_later.append(srv)
    with trickling(srv.port, 64) as slow:
        slow.wait_rounds(3)  # every one of them has started trickling
        statuses = [ping(srv) for _ in range(20)]
        slow.wait_rounds(1)
        still_open = 64 - len(slow.closed)
    assert statuses == [200] * 20
    assert still_open == 64  # they were holding their connections all along


def test_a_client_trickling_headers_is_disconnected_after_the_header_timeout(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    srv = start_server(tmp_path, R13_HEADER_TIMEOUT="1000")
    stop_later.append(srv)
    with trickling(srv.port, 64) as slow:
        # The clients never finish their headers: only the timeout can end them.
        wait_until(lambda: len(slow.closed) == 64, "every trickling connection was closed")
        assert ping(srv) == 200  # the server itself carries on


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_client_trickling_a_body_gets_408_and_is_disconnected(
    tmp_path: Path, stop_later: list[Server], worker_class: str
) -> None:
    srv = start_server(
        tmp_path,
        R13_WORKER_CLASS=worker_class,
        R13_BODY_TIMEOUT="1000",
        R13_HEADER_TIMEOUT="600000",
    )
    stop_later.append(srv)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=GENEROUS)
    try:
        s.sendall(
            b"POST /-/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
        )
        received = b""
        deadline = time.monotonic() + GENEROUS
        # Trickle the body until the server answers; then read until it closes.
        while True:
            assert time.monotonic() < deadline, f"no answer, no close: {received!r}"
            if readable(s, 0.2):
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += chunk
                continue
            with contextlib.suppress(OSError):  # after the answer, the server stops reading
                s.sendall(b" ")
    finally:
        s.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert "request body did not arrive" in json.loads(body)["error"]


def test_a_worker_serves_at_most_its_connection_cap(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    srv = start_server(tmp_path, R13_WORKER_CONNECTIONS="4", R13_HEADER_TIMEOUT="600000")
    stop_later.append(srv)
    held: list[http.client.HTTPConnection] = []
    try:
        # 2 workers x 4: eight kept-alive connections fill both workers.
        for _ in range(8):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=GENEROUS)
            conn.request("GET", "/-/ping")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            held.append(conn)
        ninth = socket.create_connection(("127.0.0.1", srv.port), timeout=GENEROUS)
        try:
            ninth.sendall(b"GET /-/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            # No worker takes it while the eight are held (a slow machine only answers later).
            assert not readable(ninth, 1.0)
            held.pop().close()  # one slot frees: the ninth is served
            assert readable(ninth, GENEROUS)
            assert ninth.recv(4096).startswith(b"HTTP/1.1 200 ")
        finally:
            ninth.close()
    finally:
        for conn in held:
            conn.close()


def test_the_gthread_worker_stays_selectable(tmp_path: Path, stop_later: list[Server]) -> None:
    srv = start_server(tmp_path, R13_WORKER_CLASS="gthread")
    stop_later.append(srv)
    assert ping(srv) == 200
    assert "Using worker: gthread" in srv.log.read_text()


def test_the_default_worker_is_gevent(tmp_path: Path, stop_later: list[Server]) -> None:
    srv = start_server(tmp_path)
    stop_later.append(srv)
    assert ping(srv) == 200
    assert "Using worker: gevent" in srv.log.read_text()
