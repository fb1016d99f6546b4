"""app/gunicorn_response.py: the same bytes as gunicorn's own Response, in fewer writes."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.http import wsgi
from hypothesis import given, settings
from hypothesis import strategies as st

from app import gunicorn_response
from app.gunicorn_response import CoalescingResponse

BASE: Any = gunicorn_response._BaseResponse


class Sock:
    """A socket that takes at most ``takes`` bytes per send (all by default)."""

    def __init__(self, takes: int | None = None) -> None:
        self.writes: list[bytes] = []
        self.takes = takes

    def send(self, data: bytes) -> int:
        taken = bytes(data[: self.takes])
        self.writes.append(taken)
        return len(taken)

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _request(method: str = "GET", version: tuple[int, int] = (1, 1), close: bool = False) -> Any:
    return SimpleNamespace(method=method, version=version, should_close=lambda: close)


def _run(
    cls: Any,
    req: Any,
    status: str,
    headers: list[tuple[str, str]],
    body: list[bytes],
    sock: Sock | None = None,
) -> Sock:
    sock = sock or Sock()
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


@pytest.mark.parametrize("takes", [0, 1, 17, 120])
def test_what_one_send_leaves_goes_out_with_sendall(
    takes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_764_331_200.75)  # one Date for both
    req, status, headers, body = CASES["whole body"]
    ours = _run(CoalescingResponse, req, status, headers, body, Sock(takes))
    theirs = _run(BASE, req, status, headers, body)
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert len(ours.writes) == 2 and len(ours.writes[0]) == takes


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


# Headers as r13 sends them, and every kind gunicorn treats apart: names that are not
# tokens, values with control bytes or surrounding blanks, hop-by-hop and Upgrade headers in
# any case, Content-Length, and things that are not exactly a str.
NAMES = [
    "Content-Type", "vary", "etag", "x-ratelimit-remaining", "ratelimit", "Content-Length",
    "content-length", "Connection", "connection", "Upgrade", "UPGRADE", "Keep-Alive",
    "Transfer-Encoding", "te", "bad name", "x\r\ny", "", "x:y", "ünï", " vary",
]  # fmt: skip
VALUES = [
    "application/json", '"4afa7de6-gz"', "Accept, Accept-Encoding", "1093", "0", "2147483646",
    "upgrade", "Upgrade", "websocket", "close", " padded\t", "a\r\nb", "nul\x00", "tab\tin",
    "", " ", "\x7f", "latin-1 é", "12x",
]  # fmt: skip


class Text(str):
    """A str that is not exactly a str (gunicorn takes it; the memo must not)."""


def _header() -> st.SearchStrategy[Any]:
    name = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES).map(Text), st.just(b"etag"))
    value = st.one_of(
        st.sampled_from(VALUES), st.sampled_from(VALUES).map(Text), st.just(7), st.text(max_size=8)
    )
    return st.tuples(name, value)


def _process(cls: Any, headers: list[Any]) -> tuple[Any, ...]:
    """What process_headers leaves (or raises) for this header list; each header kept with
    its types (a str subclass equals its str: the memo must not let one through as a str)."""
    resp = cls(_request(), Sock(), SimpleNamespace(protocol="http", sendfile=False))
    try:
        resp.process_headers(headers)
        error: tuple[Any, ...] = ()
    except Exception as exc:
        error = (type(exc), str(exc))
    kept = [(type(n), n, type(v), v) for n, v in resp.headers]
    return error, kept, resp.response_length, resp.upgrade


@settings(max_examples=400)
@given(st.lists(_header(), max_size=12))
def test_headers_are_processed_as_gunicorn_does(headers: list[Any]) -> None:
    theirs = _process(BASE, headers)
    assert _process(CoalescingResponse, headers) == theirs  # first sight: gunicorn's checks
    assert _process(CoalescingResponse, headers) == theirs  # again: what was remembered


def test_a_remembered_header_skips_gunicorns_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = [("content-type", "application/json"), ("content-length", "2")]
    theirs = _process(BASE, headers)
    _process(CoalescingResponse, headers)  # seen once
    checked: list[Any] = []
    real = BASE.process_headers

    def counting(self: Any, some: Any) -> None:
        checked.extend(some)
        real(self, some)

    monkeypatch.setattr(BASE, "process_headers", counting)
    assert _process(CoalescingResponse, headers) == theirs
    # Content-Length always goes through gunicorn (it sets the response's length).
    assert checked == [("content-length", "2")]


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gunicorn_response, "_PLAIN_VALUES", set())
    for n in range(gunicorn_response.VALUES_KEPT + 10):
        _process(CoalescingResponse, [("x-count", str(n))])
    assert len(gunicorn_response._PLAIN_VALUES) <= gunicorn_response.VALUES_KEPT
    monkeypatch.setattr(gunicorn_response, "_PLAIN_NAMES", set())
    for n in range(gunicorn_response.NAMES_KEPT + 10):
        _process(CoalescingResponse, [(f"x-name-{n}", "v")])
    assert len(gunicorn_response._PLAIN_NAMES) == gunicorn_response.NAMES_KEPT
