""" "Local" means this machine, never a proxy on it.

/metrics, /_api/performance/* and /_api/config are open to local clients
without a key while PRIVATE_REGISTRY is on, and so is the bootstrap admin
key route while no admin key is live. A reverse proxy on the same host
connects from loopback, so everything it forwards used to count as local.
The real-deployment version (gunicorn behind a proxy process) is in
tests/e2e/test_e2e_hardening.py.
"""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from app.main import create_app
from r13core.abuse import is_local
from r13core.services import open_services
from r13core.settings import Settings
from tests.security_app import PUBLIC, build

LOCAL_ONLY = ["/metrics", "/_api/config", "/_api/performance/alerts"]
# What proxies add (any one of them marks a request as proxied).
PROXY_HEADERS = [
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Forwarded-For": "127.0.0.1"},
    {"Forwarded": "for=203.0.113.9;proto=https"},
    {"X-Real-IP": "203.0.113.9"},
    {"Via": "1.1 nginx"},
    {"X-Forwarded-Host": "registry.example"},
    {"X-Forwarded-Proto": "https"},
]


@pytest.mark.parametrize("headers", PROXY_HEADERS, ids=[next(iter(h)) for h in PROXY_HEADERS])
def test_proxied_loopback_is_not_local(tmp_path: Path, headers: dict[str, str]) -> None:
    app = build(tmp_path)
    for path in LOCAL_ONLY:
        direct = app.get(path, "127.0.0.1")
        assert direct.status_code in (200, 503), (path, direct.text)  # 503: no sample yet
        proxied = app.get(path, "127.0.0.1", headers=headers)
        assert proxied.status_code == 403, (path, headers, proxied.text)
        assert "this machine" in proxied.json["error"]


def test_a_trusted_proxy_on_loopback_is_never_local(tmp_path: Path) -> None:
    # A proxy that adds no header at all (nginx's default) is only known by its address.
    app = build(tmp_path, {"R13_TRUSTED_PROXIES": "127.0.0.1/32"})
    for path in LOCAL_ONLY:
        assert app.get(path, "127.0.0.1").status_code == 403
    assert app.get("/metrics", "::1").status_code in (200, 503)  # not the listed proxy
    # A key still works from anywhere.
    assert app.get("/metrics", "127.0.0.1", headers=app.admin).status_code == 200


def test_loopback_forms_and_non_addresses() -> None:
    assert is_local("127.0.0.1", (), forwarded=False)
    assert is_local("127.8.9.10", (), forwarded=False)
    assert is_local("::1", (), forwarded=False)
    assert is_local("::ffff:127.0.0.1", (), forwarded=False)
    assert not is_local("::1", (), forwarded=True)
    assert not is_local("10.0.0.1", (), forwarded=False)
    assert not is_local("", (), forwarded=False)  # a Unix socket: behind something
    assert not is_local("unix:/run/r13.sock", (), forwarded=False)


def test_bootstrap_key_route_refuses_anything_proxied(tmp_path: Path) -> None:
    env = {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC}
    client = falcon.testing.TestClient(create_app(open_services(Settings.from_env(env))))
    body = {"id": "boot", "permissions": "admin"}
    for headers in PROXY_HEADERS:
        proxied = client.simulate_post(
            "/_api/security/keys", json=body, headers=headers, remote_addr="127.0.0.1"
        )
        assert proxied.status_code == 401, (headers, proxied.text)
    first = client.simulate_post("/_api/security/keys", json=body, remote_addr="127.0.0.1")
    assert first.status_code == 201 and first.json["key"].startswith("r13_")


def test_bootstrap_key_route_refuses_a_trusted_proxy(tmp_path: Path) -> None:
    env = {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC}
    client = falcon.testing.TestClient(
        create_app(open_services(Settings.from_env({**env, "R13_TRUSTED_PROXIES": "127.0.0.0/8"})))
    )
    r = client.simulate_post(
        "/_api/security/keys", json={"id": "boot", "permissions": "admin"}, remote_addr="127.0.0.1"
    )
    assert r.status_code == 401
