"""The security review's deployment findings against a real `r13 serve`.

Real gunicorn with several workers: file modes after a real serve and
publish, a real reverse proxy process in front of it on the same host, and
the browser requests of a hostile page replayed byte for byte.
"""

from __future__ import annotations

import http.client
import os
import socket
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from r13core._ffi import segment_name
from tests.e2e.conftest import R13, Server
from tests.e2e.conftest import start_server as start
from tests.e2e.publish_body import publish_body, tarball
from tests.ports import free_port

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"


def r13(srv: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(R13), "--data", str(srv.data), *args],
        input=stdin,
        env=srv.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# -- item 9: file modes -----------------------------------------------------------------------


def test_data_dir_file_modes(tmp_path: Path, stop_later: list[Server]) -> None:
    srv = start(tmp_path, R13_FEATURE_LOGGING="1", METRICS_COLLECTION_INTERVAL="100")
    stop_later.append(srv)
    write = srv.key("write")
    data = tarball("modes", "1.0.0")
    status, _, body = srv.request("PUT", "/modes", publish_body("modes", "1.0.0", data), key=write)
    assert status == 201, body
    assert r13(srv, "users", "add", "mo", "--role", "reader", "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 0  # fmt: skip
    login = {"name": "mo", "password": PASSWORD}
    assert srv.request("PUT", "/-/user/org.couchdb.user:mo", login)[0] == 201
    assert srv.request("GET", "/modes/-/modes-1.0.0.tgz", key=write)[0] == 200
    # The sampler's files and the access log exist by now (written by the workers); the
    # sampler's first sample may come late on a loaded machine: wait for it, generously.
    deadline = time.monotonic() + 120
    while not ((srv.data / "run").is_dir() and any((srv.data / "run").iterdir())):
        assert time.monotonic() < deadline, "the sampler wrote nothing"
        time.sleep(0.1)
    found = {p.name for p in srv.data.rglob("*")}
    assert {"registry.sqlite3", "registry.sqlite3-wal", "admin.key", "config.r13"} <= found
    assert any(p.is_file() for p in (srv.data / "blobs" / "objects").rglob("*"))  # the tarball
    assert (srv.data / "logs" / "access.log").exists()

    wrong = []
    for path in [srv.data, *srv.data.rglob("*")]:
        st = os.lstat(path)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            ok = mode == 0o700
        elif stat.S_ISREG(st.st_mode):
            ok = mode == 0o600
        else:  # gunicorn's control socket
            ok = mode & 0o077 == 0
        if not ok:
            wrong.append(f"{path.relative_to(srv.data.parent)} {mode:04o}")
    assert not wrong, wrong
    # The live state in shared memory is private too.
    for part in ("record", "metrics", "rl-security"):
        seg = Path("/dev/shm") / segment_name(srv.data, part).lstrip("/")
        assert stat.S_IMODE(os.stat(seg).st_mode) == 0o600, part


def test_a_world_writable_data_dir_stops_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    srv = Server(data=data, port=free_port(), log=tmp_path / "server.log")
    out = subprocess.run(
        [str(R13), "serve"], env=srv.env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2
    assert "group or other users may write it" in out.stderr and "chmod 700" in out.stderr
    assert not (data / "registry.sqlite3").exists()


# -- item 6: a proxy on the same host ------------------------------------------------------------


class Proxy:
    """A reverse proxy in front of ``srv`` on 127.0.0.1 (like nginx on the same host).

    ``forward``: add X-Forwarded-For (nginx with ``proxy_set_header``; nothing
    by default).
    """

    def __init__(self, srv: Server, *, forward: bool) -> None:
        target = srv.port

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                if forward:
                    headers["X-Forwarded-For"] = self.client_address[0]
                conn = http.client.HTTPConnection("127.0.0.1", target, timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _relay

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request(method, path, body=body, headers=headers or {})
        status = conn.getresponse().status
        conn.close()
        return status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def direct(srv: Server, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_proxied_loopback_is_not_local_behind_a_real_proxy(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    srv = start(tmp_path)
    stop_later.append(srv)
    proxy = Proxy(srv, forward=True)
    try:
        for path in ("/metrics", "/_api/config", "/_api/performance/alerts"):
            assert direct(srv, "GET", path) in (200, 503), path  # this machine itself
            assert proxy.request("GET", path) == 403, path  # anyone, through the proxy
        # The bootstrap admin-key route, once no admin key is live.
        assert r13(srv, "keys", "revoke", "admin").returncode == 0
        body = b'{"id": "boot", "permissions": "admin"}'
        json = {"Content-Type": "application/json"}
        assert proxy.request("POST", "/_api/security/keys", body, json) == 401
        assert direct(srv, "POST", "/_api/security/keys", body) == 201
    finally:
        proxy.close()


def test_a_proxy_that_adds_no_header_is_known_by_its_address(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    srv = start(tmp_path, R13_TRUSTED_PROXIES="127.0.0.1/32")
    stop_later.append(srv)
    proxy = Proxy(srv, forward=False)
    try:
        assert proxy.request("GET", "/metrics") == 403
        assert proxy.request("GET", "/_api/config") == 403
        # With a key, from anywhere.
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {srv.admin_key}"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proxy.close()


# -- item 7: a hostile page's <img> tags -------------------------------------------------------


def test_img_tags_do_not_block_visitor_on_a_real_server(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    srv = start(
        tmp_path,
        R13_BLOCK_ANOMALIES="2",
        R13_BLOCK_AUTH_FAILURES="2",
        R13_BLOCK_LIMIT_VIOLATIONS="2",
        SECURITY_RATE_LIMIT_MAX="40",
        SECURITY_RATE_LIMIT_WINDOW="600000",
    )
    stop_later.append(srv)
    img = (
        "Accept: image/avif,image/webp,*/*;q=0.8\r\nSec-Fetch-Site: cross-site\r\n"
        "Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n"
        "Referer: https://evil.example/\r\n"
    )
    statuses = []
    for path in ["/%5c", "/favicon.ico", "/..%2f..%2fetc", "/%00", "/-/v1/login/x"] * 12:
        # Exactly what a browser writes for the <img>, on a connection of its own.
        with socket_to(srv) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n{img}"
                "Connection: close\r\n\r\n".encode()
            )
            head = sock.makefile("rb").readline().decode()
        statuses.append(int(head.split()[1]))
    assert 429 in statuses and 403 not in statuses, statuses
    out = r13(srv, "security", "blocks")
    assert out.returncode == 0 and out.stdout == "", out.stdout


def socket_to(srv: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=60)
