"""The nginx front (README "The nginx front"): a real nginx, started from the config
`r13 nginx-config --standalone` prints, over TLS in front of a real gunicorn r13 with
R13_ACCEL_REDIRECT — r13 decides, nginx sends the tarball bytes.

One nginx and one r13 serve the whole module. Clients connect from 127.0.0.2 and
127.0.0.3 (loopback addresses nginx is not) so the X-Forwarded-For path shows which
client r13 resolved: only nginx (127.0.0.1) is a trusted proxy.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from r13core.npm_pack import package_tarball, publish_document
from r13core.tarball import sri_sha512
from tests.e2e.clients import npm as machine_npm
from tests.e2e.conftest import R13, Server
from tests.pgserver import NGINX, ensure_installed
from tests.ports import free_port

RULES = [
    {"package": "secret-*", "access": ["key:e2e-write"], "publish": ["key:e2e-write"]},
    {"package": "**", "access": "$all", "publish": "$write", "unpublish": "$admin"},
]


@dataclass
class Front:
    server: Server
    port: int
    cert: Path
    ctx: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        source: str = "127.0.0.2",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.ctx, timeout=60, source_address=(source, 0)
        )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def _self_signed(d: Path) -> tuple[Path, Path]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return cert, key


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "nginx exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx did not listen on {port}")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    ensure_installed()
    root = tmp_path_factory.mktemp("nginx-front")
    rules = root / "rules.json"
    rules.write_text(json.dumps(RULES))
    cert, key = _self_signed(root)
    port = free_port()
    srv = Server(data=root / "data", port=free_port(), log=root / "server.log")
    srv.extra_env = {
        "R13_ACCEL_REDIRECT": "/_blobs/",
        "R13_TRUSTED_PROXIES": "127.0.0.1/32",
        "R13_PUBLIC_URL": f"https://127.0.0.1:{port}",
        "R13_ACCESS_RULES": str(rules),
        "R13_FEATURE_PRIVATE_REGISTRY": "0",  # anonymous reads, but for the rules above
    }
    srv.start()
    prefix = root / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    out = subprocess.run(
        [str(R13), "--data", str(srv.data), "nginx-config", "--standalone", "--prefix",
         str(prefix), "--listen", f"127.0.0.1:{port}", "--ssl-certificate", str(cert),
         "--ssl-certificate-key", str(key)],
        env=srv.env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    conf.write_text(out.stdout)
    proc = subprocess.Popen(
        [str(NGINX), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(prefix / "stderr.log").open("wb"),
        start_new_session=True,
    )
    ctx = ssl.create_default_context(cafile=str(cert))
    try:
        _wait_listening(port, proc)
        yield Front(srv, port, cert, ctx)
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: nginx's master stops its workers
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        srv.stop()
    assert "Traceback" not in srv.log.read_text(), srv.log.read_text()[-3000:]


def _publish(front: Front, name: str, files: dict[str, str]) -> bytes:
    """Publish ``name@1.0.0`` through nginx with the write key; its tarball."""
    manifest = {"name": name, "version": "1.0.0", "main": "index.js", "license": "MIT"}
    tgz = package_tarball(manifest, files)
    doc = publish_document(manifest, tgz, registry=front.url)
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {front.server.key('write')}",
    }
    status, _, body = front.request(
        "PUT", f"/{name}", headers=headers, body=json.dumps(doc).encode()
    )
    assert status == 201, body
    return tgz


def test_npm_publishes_and_installs_through_the_front_over_tls(
    front: Front, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    host = f"127.0.0.1:{front.port}"
    npmrc = (
        f"registry={front.url}/\n//{host}/:_authToken={front.server.key('write')}\n"
        f"cafile={front.cert}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")},
        "HOME": str(home),
        "npm_config_userconfig": str(home / ".npmrc"),
        "npm_config_update_notifier": "false",
    }
    (home / ".npmrc").write_text(npmrc)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "package.json").write_text(json.dumps({"name": "front-lib", "version": "1.0.0"}))
    (lib / "index.js").write_text("module.exports = 'through nginx';\n")
    npm = str(machine_npm())

    def run(cwd: Path, cache: str, *args: str) -> None:
        out = subprocess.run(
            [npm, *args], cwd=cwd, env={**env, "npm_config_cache": str(tmp_path / cache)},
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]

    run(lib, "publish-cache", "publish")
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "front-app", "version": "1.0.0"}))
    # A fresh cache: npm must fetch the tarball, not reuse the one it packed.
    run(app, "install-cache", "install", "front-lib@1.0.0")
    installed = app / "node_modules" / "front-lib" / "index.js"
    assert installed.read_text() == "module.exports = 'through nginx';\n"
    lock = json.loads((app / "package-lock.json").read_text())
    resolved = lock["packages"]["node_modules/front-lib"]["resolved"]
    assert resolved == f"{front.url}/front-lib/-/front-lib-1.0.0.tgz"
    # The bytes came from nginx: r13 itself answers the same tarball with a redirect only.
    status, headers, body = front.server.request("GET", "/front-lib/-/front-lib-1.0.0.tgz")
    assert status == 200 and body == b""
    assert headers["x-accel-redirect"].startswith("/_blobs/objects/")


def test_tarball_headers_head_range_and_revalidation(front: Front) -> None:
    tgz = _publish(front, "front-bytes", {"index.js": "x" * 5000})
    path = "/front-bytes/-/front-bytes-1.0.0.tgz"
    status, headers, body = front.request("GET", path)
    assert status == 200 and body == tgz, (status, body[:300])
    assert sri_sha512(body) == sri_sha512(tgz)
    assert headers["content-type"] == "application/octet-stream"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "x-accel-redirect" not in headers
    etag = headers["etag"]
    _, direct, _ = front.server.request("GET", path)
    assert etag == direct["etag"]  # r13's ETag, not nginx's own

    status, headers, body = front.request("HEAD", path)
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(tgz)

    status, headers, body = front.request("GET", path, headers={"Range": "bytes=10-99"})
    assert status == 206 and body == tgz[10:100]
    assert headers["content-range"] == f"bytes 10-99/{len(tgz)}"

    status, headers, body = front.request("GET", path, headers={"If-None-Match": etag})
    assert status == 304 and body == b""

    status, _, body = front.request("GET", "/front-bytes/-/front-bytes-9.9.9.tgz")
    assert status == 404 and "error" in json.loads(body)


def test_a_refused_tarball_is_refused_by_nginx(front: Front) -> None:
    tgz = _publish(front, "secret-plans", {"index.js": "module.exports = 42;\n"})
    path = "/secret-plans/-/secret-plans-1.0.0.tgz"
    status, headers, body = front.request("GET", path)
    assert status == 401 and "error" in json.loads(body)
    assert "x-accel-redirect" not in headers
    reader = {"Authorization": f"Bearer {front.server.key('read')}"}
    status, _, body = front.request("GET", path, headers=reader)
    assert status == 403 and "error" in json.loads(body)
    writer = {"Authorization": f"Bearer {front.server.key('write')}"}
    status, _, body = front.request("GET", path, headers=writer)
    assert status == 200 and body == tgz


def test_the_internal_location_cannot_be_fetched(front: Front) -> None:
    _publish(front, "front-hidden", {"index.js": "1;\n"})
    _, direct, _ = front.server.request("GET", "/front-hidden/-/front-hidden-1.0.0.tgz")
    internal = direct["x-accel-redirect"]
    assert (front.server.data / "blobs" / internal.removeprefix("/_blobs/")).is_file()
    for path in (
        internal,
        "/_blobs/",
        "/_blobs/objects/",
        "/_blobs/sha512/",
        "/_blobs/../registry.sqlite3",
    ):
        status, _, body = front.request("GET", path)
        assert status == 404, (path, body[:200])
        assert b"sha512" not in body


def test_forwarded_for_resolves_the_client_and_blocks_hold(front: Front) -> None:
    _publish(front, "front-blocks", {"index.js": "1;\n"})
    path = "/front-blocks/-/front-blocks-1.0.0.tgz"
    subprocess.run(
        [str(R13), "--data", str(front.server.data), "security", "block", "127.0.0.4",
         "--reason", "nginx front test"],
        env=front.server.env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    try:
        # 127.0.0.4 is refused, whatever address it claims to be forwarding for.
        spoof = {"X-Forwarded-For": "198.51.100.7"}
        for p in (path, "/front-blocks"):
            status, headers, body = front.request("GET", p, source="127.0.0.4", headers=spoof)
            assert status == 403 and "error" in json.loads(body), (p, status)
            assert "x-accel-redirect" not in headers
        # Another client naming the blocked one is itself, not the blocked address.
        claim = {"X-Forwarded-For": "127.0.0.4"}
        status, _, _ = front.request("GET", path, source="127.0.0.3", headers=claim)
        assert status == 200
    finally:
        subprocess.run(
            [str(R13), "--data", str(front.server.data), "security", "unblock", "127.0.0.4"],
            env=front.server.env(), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    status, _, _ = front.request("GET", path, source="127.0.0.4")
    assert status == 200
