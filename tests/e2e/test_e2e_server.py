"""HTTP behaviour through real gunicorn: raw paths, forged hosts, live flags, errors."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess

import pytest

from tests.e2e.conftest import R13, Sandbox, Server
from tests.e2e.publish_body import publish_body, tarball
from tests.workers import until_answered_by

pytestmark = pytest.mark.slow


def raw_get(srv: Server, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A GET with exactly these headers (Host included): urllib would set its own Host."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def scoped(server: Server) -> str:
    name = "@raw/pkg"
    doc = publish_body(name, "1.0.0", tarball(name, "1.0.0"))
    status, _, body = server.request("PUT", "/@raw%2fpkg", doc, key=server.key("write"))
    assert status == 201, body
    return name


@pytest.mark.parametrize("path", ["/@raw%2fpkg", "/@raw%2Fpkg", "/@raw/pkg"])
def test_every_scoped_url_form_through_gunicorn(server: Server, scoped: str, path: str) -> None:
    status, _, body = server.request("GET", path, key=server.key("read"))
    assert status == 200
    assert json.loads(body)["name"] == scoped
    tgz_status, headers, data = server.request(
        "GET", f"{path}/-/pkg-1.0.0.tgz", key=server.key("read")
    )
    assert tgz_status == 200
    assert int(headers["content-length"]) == len(data) > 0


def test_a_forged_host_never_reaches_the_document(server: Server, scoped: str) -> None:
    status, _, body = raw_get(
        server,
        "/@raw%2fpkg",
        {
            "Host": "evil.example",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "Authorization": f"Bearer {server.key('read')}",
        },
    )
    assert status == 200
    assert b"evil.example" not in body
    assert f"{server.url}/@raw/pkg/-/pkg-1.0.0.tgz".encode() in body


def test_the_private_flag_changes_every_worker_without_restart(server: Server, scoped: str) -> None:
    config = [str(R13), "--data", str(server.data), "config"]

    def flip(action: str, flag: str) -> None:
        subprocess.run([*config, action, flag], check=True, env=server.env(), timeout=60)

    def anonymous() -> set[int]:
        """Statuses of anonymous reads, a fresh connection each, until both workers
        answered (DEBUG names the worker: tests/workers.py)."""

        def ask() -> tuple[int, str]:
            status, headers, _ = server.request("GET", "/@raw%2fpkg")
            return status, headers.get("x-r13-worker", "")

        return {status for status, _ in until_answered_by(2, ask, lambda a: a[1], at_least=20)}

    status, _, body = server.request("GET", "/_api/config", key=server.admin_key)
    assert status == 200, body
    debug_was_on = json.loads(body)["features"]["DEBUG"]
    flip("enable", "DEBUG")
    try:
        assert anonymous() == {401}
        flip("disable", "PRIVATE_REGISTRY")
        try:
            assert anonymous() == {200}
        finally:
            flip("enable", "PRIVATE_REGISTRY")
        assert anonymous() == {401}
    finally:
        if not debug_was_on:
            flip("disable", "DEBUG")


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("GET", "/-/nothing/here", None, {}, 404),
        ("GET", "/%2e%2e%2fetc", None, {}, 400),
        ("PUT", "/bad-json", b"{", {"Content-Type": "application/json"}, 400),
        ("PUT", "/bad-type", b"{}", {"Content-Type": "text/plain"}, 415),
        ("PUT", "/deep", b"[" * 5000, {"Content-Type": "application/json"}, 400),
    ],
)
def test_errors_are_json_through_gunicorn(
    server: Server,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
) -> None:
    got, hdrs, answer = server.request(method, path, body, key=server.key("write"), headers=headers)
    assert got == status
    assert hdrs["content-type"].startswith("application/json")
    assert set(json.loads(answer)) == {"error"}


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("PUT", "/huge")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Authorization", f"Bearer {server.key('write')}")
        conn.putheader("Content-Length", str(200 * 1024 * 1024))
        conn.endheaders()
        r = conn.getresponse()  # answered without reading the (never sent) body
        assert r.status == 413
        assert "error" in json.loads(r.read())
    finally:
        conn.close()


def test_npm_whoami(sandbox: Sandbox) -> None:
    out = sandbox.run("npm", "whoami", cwd=sandbox.project("who"))
    assert out.stdout.strip() == "key:e2e-write"  # a bare key is named key:<id>


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /x HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"NOT A REQUEST\r\n\r\n", 400),
    ],
)
def test_requests_gunicorn_cannot_parse_get_json_too(
    server: Server, request_bytes: bytes, status: int
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(request_bytes)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Content-Type: application/json" in head
    assert set(json.loads(body)) == {"error"}
