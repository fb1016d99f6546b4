"""Token lifetimes: logout, password and role changes, expiry,
uncollected web logins, and the package-scoped admin key."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from r13core.access import Action, Policy
from r13core.config import Feature
from r13core.errors import Unauthorized
from r13core.keys import KeyInfo, KeyStore, Permission, hash_secret, new_secret
from r13core.storage.base import KeyRecord
from r13core.users import Role
from tests.identity_app import PUBLIC, PW, Served, bearer, serve


def limited(tmp_path: Path, **env: str) -> Served:
    """Login routes limited to 3 requests per window; blocks as ``env`` says (off by default)."""
    base = {
        "R13_AUTH_RATE_LIMIT_MAX": "3",
        "R13_BLOCK_AUTH_FAILURES": "0",
        "R13_BLOCK_LIMIT_VIOLATIONS": "0",
    }
    served = serve(tmp_path, {**base, **env})
    served.users.add("alice", PW, Role.PUBLISHER)
    return served


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Served]:
    served = limited(tmp_path)
    yield served
    served.config.close()


@pytest.fixture
def blocking(tmp_path: Path) -> Iterator[Served]:
    served = limited(tmp_path, R13_AUTH_RATE_LIMIT_MAX="1000", R13_BLOCK_AUTH_FAILURES="2")
    yield served
    served.config.close()


def live(s: Served, token: str) -> bool:
    try:
        s.keys.authenticate(token)
    except Unauthorized:
        return False
    return True


def test_logout_revokes_even_when_rate_limited(strict: Served) -> None:
    s = strict
    token = s.login("alice").json["token"]
    for _ in range(2):  # use up the login routes' budget (3 per window)
        s.login("alice", "wrong password!")
    assert s.login("alice").status_code == 429
    # A logout of anything but a live token gets no exemption...
    garbage = s.client.simulate_delete(f"/-/user/token/{new_secret()}")
    assert garbage.status_code == 429
    # ...a logout of a live token goes through and revokes it.
    r = s.client.simulate_delete(f"/-/user/token/{token}", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert not live(s, token)


def test_logout_revokes_even_when_the_address_is_blocked(blocking: Served) -> None:
    s = blocking
    token = s.login("alice").json["token"]
    for _ in range(5):  # auth failures until the address is blocked
        if s.client.simulate_get("/-/ping").status_code == 403:
            break
        s.client.simulate_get("/-/whoami", headers=bearer(new_secret()))
    assert s.client.simulate_get("/-/ping").status_code == 403
    r = s.client.simulate_delete(f"/-/user/token/{token}")
    assert r.status_code == 200, r.text
    assert not live(s, token)
    assert s.client.simulate_delete(f"/-/user/token/{token}").status_code == 403  # now dead


def test_logout_token_is_redacted_from_the_logs(tmp_path: Path) -> None:
    s = serve(tmp_path)
    try:
        s.config.set_feature(Feature.LOGGING, True)
        s.users.add("alice", PW, Role.PUBLISHER)
        token = s.login("alice").json["token"]
        s.client.simulate_delete(f"/-/user/token/{token}")
        s.client.simulate_delete("/-/user/token/r13_not_even_a_token")
        log = (tmp_path / "logs" / "access.log").read_text()
        assert token not in log and "r13_not_even_a_token" not in log
        paths = [json.loads(line)["path"] for line in log.splitlines()]
        assert paths.count("/-/user/token/[redacted]") == 2
        events = json.dumps(s.audit.page(limit=100))
        assert token not in events
        (logout,) = [e for e in s.audit.page(limit=100)["events"] if e["action"] == "logout"]
        assert logout["actor"] == "alice" and logout["target"].startswith("npm-alice-")
    finally:
        s.config.close()


def test_passwd_revokes_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = serve(tmp_path)
    try:
        s.users.add("alice", PW, Role.PUBLISHER)
        session = s.login("alice").json["token"]
        made = s.client.simulate_post(
            "/-/npm/v1/tokens", json={"password": PW}, headers=bearer(session)
        )
        assert made.status_code == 201
        other = s.users.add("bob", PW, Role.PUBLISHER)
        bobs = s.login(other.name).json["token"]
        monkeypatch.setattr("sys.stdin", io.StringIO("a new password!\n"))
        assert main(["--data", str(tmp_path), "users", "passwd", "alice", "--password-stdin"]) == 0
        assert "2 tokens revoked" in capsys.readouterr().out
        for token in (session, made.json["token"]):
            assert s.client.simulate_get("/-/whoami", headers=bearer(token)).status_code == 401
        assert live(s, bobs)  # someone else's tokens stay
        assert s.login("alice", "a new password!").status_code == 201
        (event,) = [e for e in s.audit.page()["events"] if e["action"] == "user.passwd"]
        assert len(event["detail"]["revoked"]) == 2
    finally:
        s.config.close()


def test_a_lower_role_revokes_the_tokens_above_it(tmp_path: Path) -> None:
    s = serve(tmp_path)
    try:
        s.users.add("ada", PW, Role.ADMIN)
        admin_token = s.login("ada").json["token"]
        write_token = s.client.simulate_post(
            "/-/npm/v1/tokens", json={"password": PW}, headers=bearer(admin_token)
        ).json["token"]
        read_token = s.client.simulate_post(
            "/-/npm/v1/tokens", json={"password": PW, "readonly": True}, headers=bearer(admin_token)
        ).json["token"]
        _, revoked = s.users.set_role("ada", Role.PUBLISHER)
        assert len(revoked) == 1 and not live(s, admin_token)
        assert live(s, write_token) and live(s, read_token)
        # Promoted again, the revoked admin token does not come back.
        s.users.set_role("ada", Role.ADMIN)
        assert not live(s, admin_token)
        s.users.set_role("ada", Role.READER)
        assert not live(s, write_token) and live(s, read_token)
    finally:
        s.config.close()


def test_token_expiry_is_capped_by_the_setting(tmp_path: Path) -> None:
    s = serve(tmp_path, {"SECURITY_API_KEY_EXPIRY": str(3 * 86_400_000)})
    try:
        s.users.add("alice", PW, Role.PUBLISHER)
        session = bearer(s.login("alice").json["token"])
        before = time.time()
        for asked in (36500, 30, None):
            body: dict[str, object] = {"password": PW}
            if asked is not None:
                body["expires"] = asked
            r = s.client.simulate_post("/-/npm/v1/tokens", json=body, headers=session)
            assert r.status_code == 201, r.text
            info = s.keys.get(r.json["key"])
            assert info.expires is not None
            assert info.expires.timestamp() <= time.time() + 3 * 86400 + 1
            assert info.expires.timestamp() >= before + 3 * 86400 - 60
        shorter = s.client.simulate_post(
            "/-/npm/v1/tokens", json={"password": PW, "expires": 1}, headers=session
        )
        assert s.keys.get(shorter.json["key"]).expires.timestamp() <= time.time() + 86400 + 1  # type: ignore[union-attr]
    finally:
        s.config.close()


def test_an_uncollected_web_login_leaves_no_token(tmp_path: Path) -> None:
    s = serve(tmp_path)
    try:
        s.users.add("webby", PW, Role.PUBLISHER)
        start = s.client.simulate_post("/-/v1/login", json={}).json
        login_path = start["loginUrl"].removeprefix(PUBLIC)
        done_path, _, query = start["doneUrl"].removeprefix(PUBLIC).partition("?")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        approved = s.client.simulate_post(
            login_path, body=f"username=webby&password={PW}", headers=form
        )
        assert approved.status_code == 200
        # Approved, not collected: no key exists, and no secret sits in the database.
        assert s.keys.owned_by("webby") == []
        for file in tmp_path.glob("registry.sqlite3*"):
            assert b"r13_" not in file.read_bytes()
        # The login expires (moved into the past here, as time would): nothing to collect.
        with sqlite3.connect(tmp_path / "registry.sqlite3") as db:
            db.execute("UPDATE web_logins SET expires = ?", (time.time() - 1,))
        late = s.client.simulate_get(done_path, query_string=query)
        assert late.status_code == 404
        assert s.keys.owned_by("webby") == []
    finally:
        s.config.close()


def test_a_collected_web_login_token_is_made_at_collection(tmp_path: Path) -> None:
    s = serve(tmp_path)
    try:
        s.users.add("webby", PW, Role.PUBLISHER)
        start = s.client.simulate_post("/-/v1/login", json={}).json
        done_path, _, query = start["doneUrl"].removeprefix(PUBLIC).partition("?")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        s.client.simulate_post(
            start["loginUrl"].removeprefix(PUBLIC),
            body=f"username=webby&password={PW}",
            headers=form,
        )
        done = s.client.simulate_get(done_path, query_string=query)
        assert done.status_code == 200 and live(s, done.json["token"])
        (info,) = s.keys.owned_by("webby")
        assert info.description == "npm login (web)"
        assert s.client.simulate_get(done_path, query_string=query).status_code == 404
        assert len(s.keys.owned_by("webby")) == 1  # collected once, one token
    finally:
        s.config.close()


def test_scoped_admin_key_cannot_revoke_tokens(tmp_path: Path) -> None:
    s = serve(tmp_path)
    try:
        # r13 no longer makes such a key...
        with pytest.raises(Exception, match="cannot have admin permission"):
            s.keys.create("scoped", Permission.ADMIN, None, packages=["@team/*"])
        # ...but one may be stored from before; it is read as a write key.
        secret = new_secret()
        s.storage.add_key(
            KeyRecord("scoped", hash_secret(secret), 3, time.time(), None, False,
                      packages=("@team/*",))
        )  # fmt: skip
        assert s.keys.authenticate(secret).permission is Permission.WRITE
        s.users.add("victim", PW, Role.PUBLISHER)
        victim = s.login("victim").json["token"]
        victim_key = s.keys.owned_by("victim")[0].id
        r = s.client.simulate_delete(f"/-/npm/v1/tokens/token/{victim_key}", headers=bearer(secret))
        assert r.status_code == 404  # not its token, not an admin
        assert live(s, victim)
        for path in ("/_api/security/keys", "/_api/security/audit", "/_api/advisories"):
            assert s.client.simulate_get(path, headers=bearer(secret)).status_code == 403
        # The real admin can.
        r = s.client.simulate_delete(f"/-/npm/v1/tokens/token/{victim_key}", headers=s.admin)
        assert r.status_code == 204 and not live(s, victim)
    finally:
        s.config.close()


def test_a_scoped_admin_identity_never_administers() -> None:
    """Even a KeyInfo built by hand with admin + packages: the policy refuses admin."""
    from datetime import UTC, datetime

    key = KeyInfo("k", Permission.ADMIN, datetime.now(UTC), None, False, packages=("@team/*",))
    policy = Policy()
    assert not policy.allows(key, Action.ADMIN, private=True)
    with pytest.raises(Exception, match="not a maintainer"):
        policy.check_owner(key, Action.PUBLISH, "@team/x", ["someone"])


def test_keystore_revoke_owned(tmp_path: Path) -> None:
    s = serve(tmp_path)
    try:
        s.users.add("carol", PW, Role.ADMIN)
        tokens = [s.login("carol").json["token"] for _ in range(2)]
        assert len(KeyStore(s.storage).revoke_owned("carol")) == 2
        assert not any(live(s, t) for t in tokens)
    finally:
        s.config.close()
