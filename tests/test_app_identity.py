"""The security layer in process: logins, tokens, admin API, limits, blocks, audit, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.main import create_app
from r13core.keys import Permission
from r13core.services import open_services
from r13core.settings import Settings
from r13core.users import Role
from tests.security_app import PUBLIC, PW, App, build


@pytest.fixture
def real(tmp_path: Path) -> Iterator[App]:
    yield build(tmp_path)


def login(real: App, name: str, password: str = PW, **kw: Any) -> falcon.testing.Result:
    return real.client.simulate_put(
        f"/-/user/org.couchdb.user:{name}", json={"name": name, "password": password}, **kw
    )


def test_legacy_login_gives_a_token_capped_by_the_role(real: App) -> None:
    real.users.add("rea", PW, Role.READER)
    r = login(real, "rea")
    assert r.status_code == 201 and r.json["ok"] is True
    token = r.json["token"]
    who = real.client.simulate_get("/-/whoami", headers=real.bearer(token))
    assert who.json == {"username": "rea"}
    (info,) = real.keys.owned_by("rea")
    assert info.permission is Permission.READ and info.expires is not None
    assert login(real, "rea", "wrong password!").status_code == 401
    assert login(real, "ghost").status_code == 401


def test_adduser_creates_a_user_only_with_open_signup(tmp_path: Path) -> None:
    real = build(tmp_path, {"R13_OPEN_SIGNUP": "1", "R13_SIGNUP_ROLE": "publisher"})
    r = login(real, "newbie")
    assert r.status_code == 201
    assert real.users.get("newbie").role is Role.PUBLISHER


def test_web_login_polls_202_until_the_form_is_posted(real: App) -> None:
    real.users.add("webby", PW, Role.PUBLISHER)
    start = real.client.simulate_post("/-/v1/login", json={}).json
    login_path = start["loginUrl"].removeprefix(PUBLIC)
    done_path, _, query = start["doneUrl"].removeprefix(PUBLIC).partition("?")
    pending = real.client.simulate_get(done_path, query_string=query)
    assert pending.status_code == 202 and pending.headers["Retry-After"] == "1"
    assert real.client.simulate_get(done_path, query_string="secret=guess").status_code == 404
    page = real.client.simulate_get(login_path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad = real.client.simulate_post(
        login_path, body="username=<script>&password=nope", headers=form
    )
    assert bad.status_code == 401 and "<script>" not in bad.text and "&lt;script&gt;" in bad.text
    ok = real.client.simulate_post(login_path, body=f"username=webby&password={PW}", headers=form)
    assert ok.status_code == 200
    done = real.client.simulate_get(done_path, query_string=query)
    assert done.status_code == 200 and done.json["token"].startswith("r13_")
    assert real.client.simulate_get(done_path, query_string=query).status_code == 404  # once


def test_npm10_token_body_and_revoke(real: App) -> None:
    real.users.add("tok", PW, Role.PUBLISHER)
    session = real.bearer(login(real, "tok").json["token"])
    r = real.client.simulate_post(
        "/-/npm/v1/tokens",
        json={"password": PW, "readonly": True, "cidr_whitelist": ["10.0.0.0/8"]},
        headers=session,
    )
    assert r.status_code == 201 and r.json["readonly"] is True
    assert r.json["cidr_whitelist"] == ["10.0.0.0/8"]
    wrong = real.client.simulate_post(
        "/-/npm/v1/tokens", json={"password": "bad password"}, headers=session
    )
    assert wrong.status_code == 401
    listed = real.client.simulate_get("/-/npm/v1/tokens", headers=session).json
    assert listed["total"] == 2
    gone = real.client.simulate_delete(f"/-/npm/v1/tokens/token/{r.json['key']}", headers=session)
    assert gone.status_code == 204
    # From 127.0.0.1 (outside 10/8) the new token was refused anyway: 401 ipaddress.
    outside = real.client.simulate_get("/-/whoami", headers=real.bearer(r.json["token"]))
    assert outside.status_code == 401


def test_cidr_and_scope_answers(real: App) -> None:
    _, secret = real.keys.create("ci", Permission.WRITE, None, cidr=["10.0.0.0/8"],
                                 packages=["@acme/*"])  # fmt: skip
    h = real.bearer(secret)
    far = real.client.simulate_get("/-/package/@acme%2fx/dist-tags", headers=h)
    assert far.status_code == 401 and far.headers["WWW-Authenticate"] == "ipaddress"
    near = real.client.simulate_get("/@other%2fx", headers=h, remote_addr="10.2.3.4")
    assert near.status_code == 403
    inside = real.client.simulate_get("/@acme%2fx", headers=h, remote_addr="10.2.3.4")
    assert inside.status_code == 404  # allowed; the package does not exist


def test_every_bad_key_gets_the_same_401(real: App) -> None:
    _, revoked = real.keys.create("rv", Permission.READ, None)
    real.keys.revoke("rv")
    bodies = set()
    for header in ("Bearer r13_nope", "Bearer " + revoked, "Basic !!!", "Token abc", "Bearer "):
        r = real.client.simulate_get("/some-pkg", headers={"Authorization": header})
        assert r.status_code == 401, header
        bodies.add(r.text)
    assert len(bodies) == 1


def test_admin_keys_api_create_list_rotate_revoke(real: App) -> None:
    r = real.client.simulate_post(
        "/_api/security/keys",
        json={"id": "ci", "permissions": ["read", "write"], "rateLimit": 50,
              "expiresIn": "30d", "cidr": ["127.0.0.1/32"], "packages": ["@mycompany/*"]},
        headers=real.admin,
    )  # fmt: skip
    assert r.status_code == 201 and r.json["key"].startswith("r13_")
    assert r.json["permission"] == "write" and r.json["rateLimit"] == 50
    listed = real.client.simulate_get("/_api/security/keys", headers=real.admin).json["keys"]
    assert {k["id"] for k in listed} == {"root", "ci"} and "key" not in listed[0]
    rotated = real.client.simulate_post("/_api/security/keys/ci/rotate", headers=real.admin)
    assert rotated.status_code == 201
    old = real.client.simulate_get("/-/whoami", headers=real.bearer(r.json["key"]))
    assert old.status_code == 401
    limited = real.client.simulate_get("/-/whoami", headers=real.bearer(rotated.json["key"]))
    assert limited.headers["X-RateLimit-Limit"] == "50"
    assert (
        real.client.simulate_delete("/_api/security/keys/ci", headers=real.admin).status_code == 200
    )
    assert real.client.simulate_post("/_api/security/keys", json={"id": "x"}).status_code == 401


def test_bootstrap_key_from_loopback_only_while_no_admin_exists(tmp_path: Path) -> None:
    env = {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC}
    client = falcon.testing.TestClient(create_app(open_services(Settings.from_env(env))))
    remote = client.simulate_post(
        "/_api/security/keys", json={"id": "a", "permissions": "admin"}, remote_addr="192.0.2.1"
    )
    assert remote.status_code == 401
    body = {"id": "a", "permissions": "admin"}
    first = client.simulate_post("/_api/security/keys", json=body, remote_addr="127.0.0.1")
    assert first.status_code == 201
    body = {"id": "b", "permissions": "admin"}
    again = client.simulate_post("/_api/security/keys", json=body, remote_addr="::1")
    assert again.status_code == 401


def test_rate_limit_headers_and_429(tmp_path: Path) -> None:
    # A day's window: no token comes back (one every 4.8 h) while the seven requests run,
    # however slow the machine (a minute's came back every 12 s).
    day = {"SECURITY_RATE_LIMIT_MAX": "5", "SECURITY_RATE_LIMIT_WINDOW": "86400000"}
    real = build(tmp_path, day)
    statuses = []
    for _ in range(7):
        r = real.client.simulate_get("/-/ping", remote_addr="198.51.100.1")
        statuses.append(r.status_code)
        assert r.headers["RateLimit-Policy"] == '"default";q=5;w=86400'
        assert "X-RateLimit-Remaining" in r.headers and r.headers["RateLimit"].startswith(
            '"default";r='
        )
    assert statuses == [200] * 5 + [429] * 2
    assert int(r.headers["Retry-After"]) >= 1
    # Another address has its own bucket.
    assert real.client.simulate_get("/-/ping", remote_addr="198.51.100.2").status_code == 200


def test_login_routes_have_the_stricter_limit(tmp_path: Path) -> None:
    real = build(tmp_path, {"SECURITY_RATE_LIMIT_MAX": "100", "R13_BLOCK_AUTH_FAILURES": "0"})
    codes = [login(real, "x", remote_addr="203.0.113.5").status_code for _ in range(12)]
    assert codes.count(429) == 2  # a tenth of 100


def test_repeated_auth_failures_block_the_address_until_unblocked(tmp_path: Path) -> None:
    real = build(tmp_path, {"R13_BLOCK_AUTH_FAILURES": "3"})
    ip = "203.0.113.9"
    codes = [
        real.client.simulate_get("/-/whoami", headers={"Authorization": "Bearer r13_x"},
                                 remote_addr=ip).status_code
        for _ in range(5)
    ]  # fmt: skip
    assert codes[:3] == [401, 401, 401] and codes[-1] == 403
    blocks = real.client.simulate_get("/_api/security/blocks", headers=real.admin).json["blocks"]
    assert [b["ip"] for b in blocks] == [ip]
    assert (
        real.client.simulate_delete(f"/_api/security/blocks/{ip}", headers=real.admin).status_code
        == 200
    )
    assert real.client.simulate_get("/-/ping", remote_addr=ip).status_code == 200


def test_forwarded_for_counts_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    real = build(tmp_path, {"R13_TRUSTED_PROXIES": "10.0.0.0/8"})
    real.client.simulate_post(
        "/_api/security/blocks", json={"ip": "192.0.2.50"}, headers=real.admin
    )
    via_proxy = real.client.simulate_get(
        "/-/ping", remote_addr="10.0.0.1", headers={"X-Forwarded-For": "192.0.2.50"}
    )
    assert via_proxy.status_code == 403
    spoofed = real.client.simulate_get(
        "/-/ping", remote_addr="192.0.2.99", headers={"X-Forwarded-For": "192.0.2.50"}
    )
    assert spoofed.status_code == 200


def test_audit_log_and_metrics(real: App) -> None:
    real.users.add("aud", PW, Role.PUBLISHER)
    login(real, "aud", remote_addr="127.0.0.1")
    login(real, "aud", "bad password", remote_addr="127.0.0.1")
    real.client.simulate_get("/../etc/passwd", remote_addr="127.0.0.1")
    page = real.client.simulate_get(
        "/_api/security/audit", params={"limit": "1"}, headers=real.admin
    ).json
    assert len(page["events"]) == 1 and page["next"] is not None
    rest = real.client.simulate_get(
        "/_api/security/audit", params={"before": str(page["next"])}, headers=real.admin
    ).json
    actions = [e["action"] for e in page["events"] + rest["events"]]
    assert "login" in actions and "login.failed" in actions
    assert all(e["ip"] == "127.0.0.1" for e in page["events"])
    m = real.client.simulate_get("/_api/security/metrics", headers=real.admin).json
    assert m["authFailures"]["total"] >= 1
    assert m["anomalies"]["byKind"].get("path_traversal", 0) >= 1
    assert m["requests"]["total"] >= 3 and m["topClients"][0]["name"] == "127.0.0.1"
    assert real.client.simulate_get("/_api/security/metrics").status_code == 401


def test_owners_are_enforced_on_publish_of_new_versions(real: App) -> None:
    from tests.npm_builders import publish_body

    real.users.add("owner", PW, Role.PUBLISHER)
    real.users.add("other", PW, Role.PUBLISHER)
    mine = real.bearer(login(real, "owner").json["token"])
    theirs = real.bearer(login(real, "other").json["token"])
    first = real.client.simulate_put("/owned", json=publish_body("owned", "1.0.0"), headers=mine)
    assert first.status_code == 201
    denied = real.client.simulate_put("/owned", json=publish_body("owned", "1.0.1"), headers=theirs)
    assert denied.status_code == 403 and "maintainer" in denied.json["error"]
    tag = real.client.simulate_put(
        "/-/package/owned/dist-tags/beta",
        body='"1.0.0"',
        headers={**theirs, "Content-Type": "application/json"},
    )
    assert tag.status_code == 403
    again = real.client.simulate_put("/owned", json=publish_body("owned", "1.0.1"), headers=mine)
    assert again.status_code == 201
    events = real.client.simulate_get(
        "/_api/security/audit", params={"action": "publish"}, headers=real.admin
    ).json["events"]
    assert [(e["actor"], e["target"]) for e in events] == [("owner", "owned")] * 2
