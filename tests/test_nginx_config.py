"""`r13 nginx-config` and R13_ACCEL_REDIRECT: the config nginx itself accepts, the setting's
checks, and the tarball route's answer with and without it (tests/e2e/test_e2e_nginx_front.py
runs the front for real)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import falcon.testing
import pytest

from app.cli import main
from app.main import create_app
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.npm_pack import package_tarball, publish_document
from r13core.services import Services, open_services
from r13core.settings import Settings, SettingsError
from tests.pgserver import NGINX, ensure_installed


def _config(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["--data", str(tmp_path / "data"), "nginx-config", *extra]) == 0
    return capsys.readouterr().out


def _nginx_accepts(prefix: Path, text: str) -> None:
    ensure_installed()
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    out = subprocess.run(
        [str(NGINX), "-t", "-p", str(prefix), "-c", str(conf)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0 and "test is successful" in out.stderr, out.stderr


def test_the_standalone_config_is_valid_nginx_with_and_without_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R13_ACCEL_REDIRECT", "/_tgz/")
    monkeypatch.setenv("REGISTRY_PORT", "4999")
    monkeypatch.setenv("R13_MAX_BODY", "2048")
    plain = tmp_path / "plain"
    plain.mkdir()
    text = _config(tmp_path, capsys, "--standalone", "--prefix", str(plain), "--listen", "8088")
    blobs = (tmp_path / "data" / "blobs").resolve()
    assert f"location /_tgz/ {{\n            internal;\n            alias {blobs}/;" in text
    assert "server localhost:4999;" in text and "client_max_body_size 2048;" in text
    assert "proxy_request_buffering on;" in text and "proxy_buffering on;" in text
    assert "listen 8088;" in text and "ssl" not in text
    _nginx_accepts(plain, text)

    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = tls / "cert.pem", tls / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=registry.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    text = _config(
        tmp_path, capsys, "--standalone", "--prefix", str(tls), "--server-name", "registry.test",
        "--ssl-certificate", str(cert), "--ssl-certificate-key", str(key),
    )  # fmt: skip
    assert "listen 443 ssl;" in text and f"ssl_certificate {cert.resolve()};" in text
    assert "server_name registry.test;" in text
    _nginx_accepts(tls, text)

    # Without --standalone: the blocks for nginx's http context only.
    text = _config(tmp_path, capsys)
    assert text.count("upstream r13 {") == 1 and "events" not in text and "pid " not in text


def test_a_certificate_needs_its_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--data", str(tmp_path / "data"), "nginx-config", "--ssl-certificate", "c.pem"])
    assert status == 2
    assert "--ssl-certificate and --ssl-certificate-key go together" in capsys.readouterr().err


@pytest.mark.parametrize(
    "value",
    ["_blobs/", "/_blobs", "/blobs/", "/_api/", "/_dashboard/x/", "/_a/../b/", "/_a b/", "/_x//"],
)
def test_accel_redirect_must_be_an_own_location(value: str) -> None:
    with pytest.raises(SettingsError, match="R13_ACCEL_REDIRECT"):
        Settings.from_env({"R13_ACCEL_REDIRECT": value})


def _published(tmp_path: Path, accel: str) -> tuple[Services, falcon.testing.TestClient, bytes]:
    """An app over ``tmp_path`` (R13_ACCEL_REDIRECT=``accel``) with ``accel-me@1.0.0``
    published; the caller closes the services."""
    env = {"R13_DATA": str(tmp_path), "R13_FEATURE_PRIVATE_REGISTRY": "0"}
    services = open_services(Settings.from_env({**env, "R13_ACCEL_REDIRECT": accel}))
    _, secret = KeyStore(open_database(tmp_path)).create("w", Permission.WRITE, None)
    client = falcon.testing.TestClient(create_app(services))
    manifest = {"name": "accel-me", "version": "1.0.0"}
    tgz = package_tarball(manifest, {"index.js": "1;\n"})
    doc = publish_document(manifest, tgz, registry="http://localhost:4873")
    put = client.simulate_put(
        "/accel-me", body=json.dumps(doc), headers={"Authorization": f"Bearer {secret}",
        "Content-Type": "application/json"},
    )  # fmt: skip
    assert put.status_code == 201, put.text
    return services, client, tgz


@pytest.mark.parametrize("accel", ["", "/_blobs/"])
def test_the_tarball_route_with_and_without_accel_redirect(tmp_path: Path, accel: str) -> None:
    services, client, tgz = _published(tmp_path, accel)
    try:
        path = "/accel-me/-/accel-me-1.0.0.tgz"
        for method in ("GET", "HEAD"):
            got = client.simulate_request(method, path)
            assert got.status_code == 200 and got.headers["etag"]
            assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
            if accel:
                # No bytes from r13: nginx sends the file the header names.
                internal = got.headers["x-accel-redirect"]
                assert got.content == b"" and internal.startswith("/_blobs/objects/")
                assert (tmp_path / "blobs" / internal[len("/_blobs/") :]).read_bytes() == tgz
            else:
                assert "x-accel-redirect" not in got.headers
                assert got.content == (tgz if method == "GET" else b"")
                assert int(got.headers["content-length"]) == len(tgz)
        etag = client.simulate_get(path).headers["etag"]
        cached = client.simulate_get(path, headers={"If-None-Match": etag})
        assert cached.status_code == 304 and "x-accel-redirect" not in cached.headers
        missing = client.simulate_get("/accel-me/-/accel-me-2.0.0.tgz")
        assert missing.status_code == 404 and "x-accel-redirect" not in missing.headers
    finally:
        services.config.close()


def test_a_tarball_of_the_older_layout_is_redirected_to_where_it_is(tmp_path: Path) -> None:
    """A tarball a store from before 2026-11-28 holds (or a restored backup's), at
    ``sha512/ab/cd/<hex>``: nginx is sent to that file."""
    services, client, tgz = _published(tmp_path, "/_blobs/")
    try:
        h = hashlib.sha512(tgz).hexdigest()
        old = tmp_path / "blobs" / "sha512" / h[:2] / h[2:4] / h
        old.parent.mkdir(parents=True)
        (tmp_path / "blobs" / "objects" / h[:2] / h).rename(old)  # before any GET of it
        got = client.simulate_get("/accel-me/-/accel-me-1.0.0.tgz")
        assert got.status_code == 200 and got.content == b""
        internal = got.headers["x-accel-redirect"]
        assert internal == f"/_blobs/sha512/{h[:2]}/{h[2:4]}/{h}"
        assert (tmp_path / "blobs" / internal[len("/_blobs/") :]).read_bytes() == tgz
    finally:
        services.config.close()
