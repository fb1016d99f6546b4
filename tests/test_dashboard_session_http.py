"""``/_api/session`` over HTTP (app/resources/session.py) and the cookie's one entry point
(app/security_middleware.py): cookie flags, the CSRF check, same-origin only, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

from app.main import create_app
from r13core.audit import Actor
from r13core.keys import Permission
from r13core.services import open_services
from r13core.settings import Settings

ROOT = Actor("root", "127.0.0.1")


def _client(data: Path, public_url: str) -> Iterator[tuple[falcon.testing.TestClient, str, str]]:
    env = {
        "R13_DATA": str(data),
        "R13_PUBLIC_URL": public_url,
        "SECURITY_RATE_LIMIT_MAX": "1000000",
        "R13_AUTH_RATE_LIMIT_MAX": "1000000",
        "R13_BLOCK_AUTH_FAILURES": "0",
    }
    with open_services(Settings.from_env(env)) as services:
        _, admin = services.identity.create_key(ROOT, "boss", Permission.ADMIN, None)
        _, reader = services.identity.create_key(ROOT, "peek", Permission.READ, None)
        yield falcon.testing.TestClient(create_app(services)), admin, reader


@pytest.fixture
def http(tmp_path: Path) -> Iterator[tuple[falcon.testing.TestClient, str, str]]:
    yield from _client(tmp_path / "data", "http://r13.test")


def _sign_in(client: falcon.testing.TestClient, key: str, **kw: object) -> falcon.testing.Result:
    return client.simulate_post("/_api/session", json={"key": key}, **kw)


def test_the_cookie_is_httponly_strict_and_secure_only_over_https(
    http: tuple[falcon.testing.TestClient, str, str], tmp_path: Path
) -> None:
    client, admin, _ = http
    r = _sign_in(client, admin)
    assert r.status_code == 201
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    secret = r.cookies["r13_session"].value
    assert secret not in r.text and r.json["csrf"] and r.json["signed_in"] is True
    assert "Secure" in _sign_in(client, admin, protocol="https").headers["set-cookie"]
    for tls_client, tls_admin, _ in _client(tmp_path / "tls", "https://r13.test"):
        assert "Secure" in _sign_in(tls_client, tls_admin).headers["set-cookie"]


def test_writes_with_the_cookie_need_the_csrf_token(
    http: tuple[falcon.testing.TestClient, str, str],
) -> None:
    client, admin, _ = http
    r = _sign_in(client, admin)
    cookie = {"Cookie": f"r13_session={r.cookies['r13_session'].value}"}
    who = client.simulate_get("/_api/session", headers=cookie)
    assert who.json["signed_in"] is True and who.json["csrf"] == r.json["csrf"]
    refused = client.simulate_delete("/_api/session", headers=cookie)
    assert refused.status_code == 403 and "CSRF" in refused.json["error"]
    wrong = client.simulate_delete("/_api/session", headers={**cookie, "X-R13-CSRF": "0" * 32})
    assert wrong.status_code == 403
    done = client.simulate_delete("/_api/session", headers={**cookie, "X-R13-CSRF": r.json["csrf"]})
    assert done.status_code == 200 and done.json["ended"] == [r.json["session"]]
    cleared = done.headers["set-cookie"]
    assert cleared.startswith('r13_session=""') and "expires=" in cleared
    assert "SameSite=Strict" in cleared
    # The ended session's cookie is no credential any more (and no strike).
    assert client.simulate_get("/_api/session", headers=cookie).json == {"signed_in": False}


def test_the_cookie_counts_only_from_the_same_site_and_only_for_sessions(
    http: tuple[falcon.testing.TestClient, str, str],
) -> None:
    client, admin, _ = http
    r = _sign_in(client, admin)
    cookie = f"r13_session={r.cookies['r13_session'].value}"
    for other in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
        got = client.simulate_get("/_api/session", headers={"Cookie": cookie, **other})
        assert got.json == {"signed_in": False}, other
    same = client.simulate_get(
        "/_api/session", headers={"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}
    )
    assert same.json["signed_in"] is True
    # A key (not a session) in the cookie is ignored: a cookie never carries keys.
    bare = client.simulate_get("/_api/session", headers={"Cookie": f"r13_session={admin}"})
    assert bare.json == {"signed_in": False}


def test_bad_sign_ins_get_clear_errors(http: tuple[falcon.testing.TestClient, str, str]) -> None:
    client, _, reader = http
    assert _sign_in(client, "r13_nope").status_code == 401
    refused = _sign_in(client, reader)
    assert refused.status_code == 403 and "admin" in refused.json["error"]
    bad = client.simulate_post("/_api/session", json={"username": "x"})
    assert bad.status_code == 400 and "password" in bad.json["error"]
    assert client.simulate_post("/_api/session", json={"key": 7}).status_code == 400
    assert client.simulate_post("/_api/session", json={}).status_code == 400
    wrong = client.simulate_post("/_api/session", json={"username": "nobody", "password": "x"})
    assert wrong.status_code == 401 and "error" in wrong.json
