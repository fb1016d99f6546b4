"""app/gunicorn_response.py: the same bytes as gunicorn's own Response, in fewer writes."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.http import wsgi

from app import gunicorn_response
from app.gunicorn_response import CoalescingResponse

BASE: Any = gunicorn_response._BaseResponse


class Sock:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _request(method: str = "GET", version: tuple[int, int] = (1, 1), close: bool = False) -> Any:
    return SimpleNamespace(method=method, version=version, should_close=lambda: close)


def _run(
    cls: Any, req: Any, status: str, headers: list[tuple[str, str]], body: list[bytes]
) -> Sock:
    sock = Sock()
    resp = cls(req, sock, SimpleNamespace(protocol="http", sendfile=False))
    resp.start_response(status, headers)
    for chunk in body:
        resp.write(chunk)
    resp.close()
    return sock


JSON = [("Content-Type", "application/json"), ("ETag", '"abc"'), ("Vary", "Accept")]
CASES = {
    "whole body": (_request(), "200 OK", [*JSON, ("Content-Length", "11")], [b'{"a":"bcd"}']),
    "body in two chunks": (
        _request(),
        "200 OK",
        [*JSON, ("Content-Length", "11")],
        [b'{"a":', b'"bcd"}'],
    ),
    "longer than declared": (_request(), "200 OK", [("Content-Length", "3")], [b"abcdef"]),
    "not modified": (_request(), "304 Not Modified", [("ETag", '"abc"')], []),
    "HEAD": (_request("HEAD"), "200 OK", [*JSON, ("Content-Length", "11")], [b'{"a":"bcd"}']),
    "no length: chunked": (_request(), "200 OK", JSON, [b"abc", b"def"]),
    "HTTP/1.0 without length": (_request(version=(1, 0)), "200 OK", JSON, [b"abc"]),
    "client asked to close": (
        _request(close=True),
        "404 Not Found",
        [("Content-Type", "application/json"), ("Content-Length", "2")],
        [b"{}"],
    ),
    "empty body": (_request(), "200 OK", [("Content-Length", "0")], [b""]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_bytes_as_gunicorns_response(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_764_331_200.75)
    req, status, headers, body = CASES[case]
    ours = _run(CoalescingResponse, req, status, headers, body)
    theirs = _run(BASE, req, status, headers, body)
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert b"Date: Fri, 28 Nov 2025 12:00:00 GMT\r\n" in b"".join(ours.writes)
    assert len(ours.writes) <= len(theirs.writes)


def test_a_whole_body_leaves_with_its_head_in_one_write() -> None:
    req, status, headers, body = CASES["whole body"]
    ours = _run(CoalescingResponse, req, status, headers, body)
    theirs = _run(BASE, req, status, headers, body)
    assert len(ours.writes) == 1 and ours.writes[0].endswith(b'\r\n\r\n{"a":"bcd"}')
    assert len(theirs.writes) == 2


def test_the_date_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_764_331_200.1]
    monkeypatch.setattr(time, "time", lambda: now[0])
    req, status, headers, body = CASES["whole body"]
    first = _run(CoalescingResponse, req, status, headers, body).writes[0]
    now[0] += 1.0
    second = _run(CoalescingResponse, req, status, headers, body).writes[0]
    assert b"12:00:00 GMT" in first and b"12:00:01 GMT" in second


def test_install_puts_it_where_gunicorn_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsgi, "Response", BASE)
    assert gunicorn_response.install() is True
    assert wsgi.Response is CoalescingResponse
