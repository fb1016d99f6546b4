"""Users and keys are distinct principals.

The attack: with open signup, sign up as a user named like a publishing key
(``ci-publish``), then publish a version of the key's package and move latest.
Now the name is refused at signup, and even a user that already has such a
name (one made before the fix) is not the key: a bare key acts as ``key:<id>``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import r13core.storage.sqlite.migrations as sqlite_module
from r13core.access import Action, Policy, parse_rules
from r13core.audit import Actor
from r13core.errors import Forbidden, NameTaken
from r13core.keys import KeyStore, Permission, hash_secret, new_secret
from r13core.names import PackageName
from r13core.storage.base import UserRecord
from r13core.storage.sqlite import SQLiteStorage
from r13core.users import Role, UserStore, hash_password
from tests.identity_app import PW, Served, serve
from tests.npm_builders import open_registry, publish_body


@pytest.fixture
def open_signup(tmp_path: Path) -> Iterator[Served]:
    served = serve(tmp_path, {"R13_OPEN_SIGNUP": "1", "R13_SIGNUP_ROLE": "publisher"})
    yield served
    served.config.close()


def test_user_cannot_take_key_name(open_signup: Served) -> None:
    s = open_signup
    ci = s.key("ci-publish", Permission.WRITE)
    assert s.publish("tool", "1.0.0", ci).status_code == 201
    owners = s.client.simulate_get("/-/package/tool/owners", headers=ci).json
    assert owners == [{"username": "key:ci-publish", "name": "key:ci-publish", "email": ""}]
    # The attack: adduser with the key's id (any case) is refused, nothing is created.
    for name in ("ci-publish", "CI-Publish"):
        r = s.login(name)
        assert r.status_code in (400, 409), r.text
    assert s.login("ci-publish").json["error"].endswith("it is (or was) a key's id")
    assert not s.users.exists("ci-publish")
    # And a key cannot be made with a user's name either, through any door.
    s.session("mallory")
    with pytest.raises(NameTaken):
        s.keys.create("mallory", Permission.WRITE, None)
    r = s.client.simulate_post(
        "/_api/security/keys", json={"id": "Mallory", "permissions": "write"}, headers=s.admin
    )
    assert r.status_code == 409 and "a user has" in r.json["error"]
    # The package is untouched.
    tags = s.client.simulate_get("/-/package/tool/dist-tags", headers=ci).json
    assert tags == {"latest": "1.0.0"}


def test_a_colliding_user_from_before_the_fix_is_not_the_key(open_signup: Served) -> None:
    """Ownership compares principals, not bare names: ``ci-publish`` != ``key:ci-publish``."""
    s = open_signup
    ci = s.key("ci-publish", Permission.WRITE)
    assert s.publish("tool", "1.0.0", ci).status_code == 201
    # A user row with the key's name, written the way the old code allowed.
    with sqlite3.connect(s.data / "registry.sqlite3") as db:
        db.execute(
            "INSERT INTO users (name, password_hash, role, email, created) VALUES (?, ?, ?, ?, ?)",
            ("ci-publish", hash_password(PW), "publisher", "", 0.0),
        )
    impostor = s.session("ci-publish")
    assert s.client.simulate_get("/-/whoami", headers=impostor).json == {"username": "ci-publish"}
    assert s.client.simulate_get("/-/whoami", headers=ci).json == {"username": "key:ci-publish"}
    r = s.publish("tool", "1.0.1", impostor)
    assert r.status_code == 403 and "not a maintainer" in r.json["error"]
    r = s.client.simulate_put("/-/package/tool/dist-tags/latest", json="1.0.0", headers=impostor)
    assert r.status_code == 403
    # The key itself still publishes and moves latest.
    assert s.publish("tool", "1.0.1", ci).status_code == 201
    doc = s.client.simulate_get("/tool", headers=ci).json
    assert doc["dist-tags"]["latest"] == "1.0.1"
    assert doc["versions"]["1.0.1"]["_npmUser"]["name"] == "key:ci-publish"


def test_rules_name_keys_and_users_apart(tmp_path: Path) -> None:
    policy = Policy(
        parse_rules(
            [
                {"package": "tool", "publish": ["key:ci-publish"]},
                {"package": "lib", "publish": ["ci-publish"]},
            ]
        )
    )
    keys = KeyStore(SQLiteStorage(tmp_path / "r.sqlite3"))
    key, _ = keys.create("ci-publish", Permission.WRITE, None)
    storage = SQLiteStorage(tmp_path / "r.sqlite3")
    assert storage.add_user(UserRecord("alice", "h", "publisher", "", 1.0))
    token, _ = keys.create("npm-alice-1", Permission.WRITE, None, owner="alice")
    policy.authorize(key, Action.PUBLISH, private=True, package="tool")
    with pytest.raises(Forbidden, match="may not publish lib"):
        policy.authorize(key, Action.PUBLISH, private=True, package="lib")  # a user's name
    with pytest.raises(Forbidden, match="may not publish tool"):
        policy.authorize(token, Action.PUBLISH, private=True, package="tool")


def test_name_races_between_users_and_keys_have_one_winner(tmp_path: Path) -> None:
    """Signup and key creation racing for one name from separate connections: one wins."""
    path = tmp_path / "r.sqlite3"
    SQLiteStorage(path).list_users()  # migrate once
    for round_ in range(10):
        name = f"race-{round_}"
        barrier = threading.Barrier(6)
        wins: list[str] = []

        def as_user(
            name: str = name, barrier: threading.Barrier = barrier, wins: list[str] = wins
        ) -> None:
            users = UserStore(SQLiteStorage(path))
            barrier.wait()
            try:
                users.add(name, PW, Role.READER)
                wins.append("user")
            except NameTaken:
                pass

        def as_key(
            name: str = name, barrier: threading.Barrier = barrier, wins: list[str] = wins
        ) -> None:
            keys = KeyStore(SQLiteStorage(path))
            barrier.wait()
            try:
                keys.create(name, Permission.WRITE, None)
                wins.append("key")
            except NameTaken:
                pass

        threads = [threading.Thread(target=f) for f in (as_user, as_key) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(wins) == 1, (name, wins)
        storage = SQLiteStorage(path)
        assert (storage.get_user(name) is None) != (storage.get_key(name) is None)


def test_a_removed_users_name_stays_reserved(tmp_path: Path) -> None:
    users = UserStore(SQLiteStorage(tmp_path / "r.sqlite3"))
    users.add("bob", PW, Role.PUBLISHER)
    users.remove("bob")
    with pytest.raises(NameTaken, match="removed user"):
        users.add("bob", PW, Role.PUBLISHER)
    assert users.add("bob", PW, Role.READER, reclaim=True).role is Role.READER


def test_new_maintainers_must_be_existing_principals(open_signup: Served) -> None:
    s = open_signup
    alice = s.session("alice")
    assert s.publish("widget", "1.0.0", alice).status_code == 201
    rev = s.client.simulate_get("/widget", params={"write": "true"}, headers=alice).json["_rev"]
    for ghost in ("nobody-yet", "key:no-such-key"):
        body = {"_id": "widget", "_rev": rev, "maintainers": [{"name": "alice"}, {"name": ghost}]}
        r = s.client.simulate_put(f"/widget/-rev/{rev}", json=body, headers=alice)
        assert r.status_code == 400, r.text
    s.key("ci", Permission.WRITE)
    body = {"_id": "widget", "maintainers": [{"name": "alice"}, {"name": "key:ci"}]}
    r = s.client.simulate_put(f"/widget/-rev/{rev}", json=body, headers=alice)
    assert r.status_code == 201, r.text


def test_migration_renames_bare_keys_and_reserves_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data dir from before the fix: bare keys' packages keep their owner under the new name."""
    path = tmp_path / "registry.sqlite3"
    monkeypatch.setattr(sqlite_module, "_MIGRATIONS", sqlite_module._MIGRATIONS[:3])
    old = SQLiteStorage(path)
    old.list_users()
    raw = sqlite3.connect(path)
    now = 1_700_000_000.0
    secret = new_secret()
    raw.executemany(
        "INSERT INTO api_keys (id, secret_hash, permission, created, expires, revoked, owner) "
        "VALUES (?, ?, 2, ?, NULL, 0, NULL)",
        [("ci-publish", hash_secret(secret), now), ("late-key", "hl", now + 10)],
    )
    raw.executemany(
        "INSERT INTO users (name, password_hash, role, email, created) VALUES (?, 'h', "
        "'publisher', '', ?)",
        [("ci-publish", now + 5), ("late-key", now)],  # the first came after its key
    )
    raw.execute(
        "INSERT INTO api_keys (id, secret_hash, permission, created, expires, revoked, owner) "
        "VALUES ('npm-web-1', ?, 2, ?, NULL, 0, 'late-key')",
        (hash_secret("r13_web_token_in_clear"), now),
    )
    raw.execute(
        "INSERT INTO web_logins (id, done_hash, created, expires, username, token) "
        "VALUES ('w1', 'd', ?, ?, 'late-key', 'r13_web_token_in_clear')",
        (now, now + 600),
    )
    # Packages as that schema kept them: whole documents (published in a scratch data dir
    # by the code of today, then stored in the old shape).
    monkeypatch.undo()
    scratch = open_registry(tmp_path / "scratch")
    scratch.put_package(
        PackageName.parse("tool"), publish_body("tool", "1.0.0"), actor=Actor("ci-publish")
    )
    scratch.put_package(
        PackageName.parse("other"), publish_body("other", "1.0.0"), actor=Actor("late-key")
    )
    for rev, name in enumerate(("tool", "other"), start=1):
        record = scratch.storage.package(name)
        assert record is not None
        raw.execute(
            "INSERT INTO packages (name, rev, doc, summary) VALUES (?, ?, ?, '{}')",
            (name, rev, json.dumps(record.doc)),
        )
    raw.execute("UPDATE meta SET value = 2 WHERE key = 'seq'")
    raw.commit()

    new = SQLiteStorage(path)
    assert new.pragma("user_version") == len(sqlite_module._MIGRATIONS)
    tool = new.package("tool")
    assert tool is not None
    assert tool.doc["maintainers"] == [{"name": "key:ci-publish", "email": ""}]
    assert tool.doc["versions"]["1.0.0"]["_npmUser"]["name"] == "key:ci-publish"
    other = new.package("other")  # "late-key" the user is older than the key: the user's
    assert other is not None and other.doc["maintainers"][0]["name"] == "late-key"
    assert new.name_holder("ci-publish") == "key"
    assert new.get_web_login("w1") is None
    web_key = new.get_key("npm-web-1")
    assert web_key is not None and web_key.revoked
    # The migrated render cache is gone: the next read renders the new names.
    fresh = open_registry(tmp_path)
    served = json.loads(fresh.packument(PackageName.parse("tool"), abbreviated=False).body)
    assert served["maintainers"] == [{"name": "key:ci-publish", "email": ""}]
    assert KeyStore(new).authenticate(secret).username == "key:ci-publish"
