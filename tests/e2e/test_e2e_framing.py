"""Broken HTTP framing against a real gunicorn: a JSON 400 every time, never a 500.

Raw sockets send what no HTTP library would: bad chunk sizes, missing chunk
terminators, bodies cut short, contradictory lengths. Errors gunicorn finds in
the headers are answered by gunicorn itself (app/gunicorn_conf.py makes those
JSON too); errors in the body surface while the app reads ``wsgi.input`` and
are answered by app/http.py ``read_body``. The session's server fixture then
checks that its log holds no traceback.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.e2e.conftest import Server
from tests.e2e.publish_body import publish_body, tarball

pytestmark = pytest.mark.slow


def exchange(srv: Server, head: str, body: bytes = b"", *, half_close: bool = False) -> bytes:
    """Send raw bytes, optionally end our side, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as sock:
        sock.sendall(head.encode("latin-1") + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return status, headers, body


def request_head(srv: Server, key: str, *extra: str, path: str = "/framing-pkg") -> str:
    lines = [
        f"PUT {path} HTTP/1.1",
        f"Host: 127.0.0.1:{srv.port}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        "Connection: close",
        *extra,
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def json_error(answer: bytes, status: int = 400) -> str:
    got, headers, body = parse(answer)
    assert got == status, answer[:500]
    assert headers["content-type"].startswith("application/json"), headers
    doc = json.loads(body)
    assert set(doc) == {"error"}
    return str(doc["error"])


CHUNKED = "Transfer-Encoding: chunked"

BROKEN_CHUNKS = [
    ("a chunk size that is not hex", b"zz\r\n{}\r\n0\r\n\r\n", "chunk size"),
    ("a negative chunk size", b"-2\r\n{}\r\n0\r\n\r\n", "chunk size"),
    ("a chunk without its CRLF", b"2\r\n{}XX0\r\n\r\n", "ChunkMissingTerminator"),
    ("a control byte in a chunk extension", b"2;\x01\r\n{}\r\n0\r\n\r\n", "Chunk"),
    ("a bare LF after the chunk size", b"2\n{}\r\n0\r\n\r\n", ""),
]


@pytest.mark.parametrize(
    ("body", "reason"), [c[1:] for c in BROKEN_CHUNKS], ids=[c[0] for c in BROKEN_CHUNKS]
)
def test_a_broken_chunked_body_is_a_json_400(server: Server, body: bytes, reason: str) -> None:
    answer = exchange(server, request_head(server, server.key("write"), CHUNKED), body)
    message = json_error(answer)
    assert reason.lower() in message.lower()


def test_a_chunked_body_cut_short_is_a_json_400(server: Server) -> None:
    head = request_head(server, server.key("write"), CHUNKED)
    answer = exchange(server, head, b'100\r\n{"name": "framing', half_close=True)
    assert "connection ended inside a chunked body" in json_error(answer)


def test_a_huge_chunk_size_then_a_hang_up_is_a_json_400(server: Server) -> None:
    head = request_head(server, server.key("write"), CHUNKED)
    answer = exchange(server, head, b"f" * 40 + b"\r\n{}", half_close=True)
    assert "connection ended inside a chunked body" in json_error(answer)


def test_a_chunked_body_without_its_last_chunk_is_a_json_400(server: Server) -> None:
    head = request_head(server, server.key("write"), CHUNKED)
    answer = exchange(server, head, b"2\r\n{}\r\n", half_close=True)
    assert "connection ended inside a chunked body" in json_error(answer)


def test_a_body_shorter_than_its_content_length_is_a_json_400(server: Server) -> None:
    head = request_head(server, server.key("write"), "Content-Length: 100")
    answer = exchange(server, head, b"{}", half_close=True)
    assert "ended after 2 of its 100 declared bytes" in json_error(answer)


@pytest.mark.parametrize(
    "headers",
    [
        ("Content-Length: abc",),
        ("Content-Length: -1",),
        ("Content-Length: 1e3",),
        ("Content-Length: 2", "Content-Length: 3"),
        ("Content-Length: 2", CHUNKED),
        ("Transfer-Encoding: chunked, chunked",),
        ("Transfer-Encoding: identity",),
    ],
    ids=["not a number", "negative", "exponent", "two lengths", "length and chunked",
         "chunked twice", "identity coding"],
)  # fmt: skip
def test_contradictory_or_malformed_lengths_are_a_json_400(
    server: Server, headers: tuple[str, ...]
) -> None:
    answer = exchange(server, request_head(server, server.key("write"), *headers), b"{}")
    json_error(answer)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "compress"])
def test_a_compressed_transfer_coding_is_refused_not_parsed_as_plain(
    server: Server, coding: str
) -> None:
    # gunicorn removes the chunking and hands the still-coded bytes to the app.
    head = request_head(server, server.key("write"), f"Transfer-Encoding: {coding}, chunked")
    answer = exchange(server, head, b"2\r\n{}\r\n0\r\n\r\n")
    assert f"Transfer-Encoding {coding} is not supported" in json_error(answer)


def test_an_unknown_transfer_coding_is_refused_as_json_not_a_500(server: Server) -> None:
    head = request_head(server, server.key("write"), "Transfer-Encoding: br, chunked")
    status, headers, body = parse(exchange(server, head, b"2\r\n{}\r\n0\r\n\r\n"))
    assert status == 501  # gunicorn: a coding it does not implement
    assert headers["content-type"].startswith("application/json")
    assert set(json.loads(body)) == {"error"}


def test_oversized_chunk_trailers_are_a_json_400(server: Server) -> None:
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(200))
    head = request_head(server, server.key("write"), CHUNKED)
    answer = exchange(server, head, b"2\r\n{}\r\n0\r\n" + trailers + b"\r\n")
    json_error(answer)


def test_a_well_formed_chunked_publish_still_works(server: Server) -> None:
    name = f"framing-ok-{server.port}"
    doc = json.dumps(publish_body(name, "1.0.0", tarball(name, "1.0.0"))).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (doc[:1000], doc[1000:]))
    head = request_head(server, server.key("write"), CHUNKED, path=f"/{name}")
    status, _, body = parse(exchange(server, head, chunks + b"0\r\n\r\n"))
    assert status == 201, body
    assert json.loads(body)["ok"] is True
