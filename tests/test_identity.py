"""Users, keys with owners/limits/scopes, the key cache across processes, the decision point."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from r13core.abuse import Blocklist, client_ip, normalize_ip
from r13core.access import Action, Policy, Rule, parse_rules
from r13core.errors import Forbidden, InvalidValue, NameTaken, NotFound, Unauthorized
from r13core.keys import KeyInfo, KeyStore, Permission, parse_cidrs
from r13core.settings import SecuritySettings
from r13core.storage.sqlite import SQLiteStorage
from r13core.users import Role, UserStore, hash_password, verify_password

PW = "s3cret-enough"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> SQLiteStorage:
    return SQLiteStorage(tmp_path / "r.sqlite3")


def key(perm: Permission = Permission.WRITE, **kw: object) -> KeyInfo:
    return KeyInfo("k", perm, datetime.now(UTC), None, False, **kw)  # type: ignore[arg-type]


# -- users ------------------------------------------------------------------------------


def test_passwords_are_stored_as_scrypt_hashes_that_verify() -> None:
    stored = hash_password(PW)
    assert stored.startswith("scrypt$16384$8$1$") and PW not in stored
    assert verify_password(PW, stored) and not verify_password(PW + "x", stored)
    assert hash_password(PW) != stored  # salted


def test_user_lifecycle(db: SQLiteStorage) -> None:
    users = UserStore(db)
    users.add("alice", PW, Role.PUBLISHER)
    assert users.authenticate("alice", PW).role is Role.PUBLISHER
    with pytest.raises(Unauthorized):
        users.authenticate("alice", "wrong password")
    with pytest.raises(Unauthorized):
        users.authenticate("nobody", PW)
    with pytest.raises(NameTaken):
        users.add("alice", PW, Role.READER)
    with pytest.raises(InvalidValue):
        users.add("Bad Name", PW, Role.READER)
    with pytest.raises(InvalidValue):
        users.add("bob", "short", Role.READER)
    users.set_password("alice", "another password")
    users.authenticate("alice", "another password")
    users.remove("alice")
    with pytest.raises(NotFound):
        users.remove("alice")


def test_a_users_role_caps_its_keys_and_follows_role_changes(db: SQLiteStorage) -> None:
    users, keys = UserStore(db), KeyStore(db)
    users.add("rita", PW, Role.READER)
    _, secret = keys.create("rita-1", Permission.WRITE, None, owner="rita")
    assert keys.authenticate(secret).permission is Permission.READ
    users.set_role("rita", Role.ADMIN)
    assert keys.authenticate(secret).permission is Permission.WRITE  # its own level
    users.remove("rita")
    with pytest.raises(Unauthorized):
        keys.authenticate(secret)


# -- keys ---------------------------------------------------------------------------------------


def test_key_options_are_validated(db: SQLiteStorage) -> None:
    keys = KeyStore(db)
    for bad in ({"cidr": ["nope"]}, {"packages": ["bad pattern!"]}, {"rate_limit": 0}):
        with pytest.raises(InvalidValue):
            keys.create("x", Permission.READ, None, **bad)
    info, _ = keys.create("ok", Permission.READ, 1, cidr=["10.0.0.0/8"], packages=["@a/*"],
                          rate_limit=5)  # fmt: skip
    assert info.cidr == parse_cidrs(["10.0.0.0/8"]) and info.packages == ("@a/*",)
    assert info.as_dict()["rateLimit"] == 5


def test_revocation_in_another_process_is_seen_on_the_next_request(tmp_path: Path) -> None:
    # Two storage objects = two connections, as two workers (or the CLI) have.
    worker = KeyStore(SQLiteStorage(tmp_path / "r.sqlite3"))
    cli = KeyStore(SQLiteStorage(tmp_path / "r.sqlite3"))
    _, secret = cli.create("ci", Permission.WRITE, None)
    assert worker.authenticate(secret).id == "ci"
    assert worker.authenticate(secret).id == "ci"  # from the cache
    cli.revoke("ci")
    with pytest.raises(Unauthorized):
        worker.authenticate(secret)


def test_rotation_retires_the_old_secret_at_once(db: SQLiteStorage) -> None:
    keys = KeyStore(db)
    _, old = keys.create("ci", Permission.WRITE, None)
    keys.authenticate(old)
    _, new = keys.rotate("ci")
    with pytest.raises(Unauthorized):
        keys.authenticate(old)
    assert keys.authenticate(new).id == "ci"


def test_a_cached_key_still_expires(db: SQLiteStorage) -> None:
    clock = Clock()
    keys = KeyStore(db, clock=clock)
    _, secret = keys.create("short", Permission.READ, 1)
    keys.authenticate(secret)
    clock.now += 86400
    with pytest.raises(Unauthorized):
        keys.authenticate(secret)


def test_usage_is_counted_and_flushed(db: SQLiteStorage) -> None:
    keys = KeyStore(db)
    _, secret = keys.create("busy", Permission.READ, None)
    for _ in range(3):
        keys.authenticate(secret)
    (info,) = keys.list()
    assert info.use_count == 3 and info.last_used is not None


def test_logout_revokes_by_secret(db: SQLiteStorage) -> None:
    keys = KeyStore(db)
    _, secret = keys.create("tok", Permission.READ, None)
    assert keys.revoke_secret(secret) is not None
    assert keys.revoke_secret("r13_garbage") is None
    with pytest.raises(Unauthorized):
        keys.authenticate(secret)


# -- the decision point --------------------------------------------------------------------------


def test_a_key_outside_its_cidr_gets_the_ipaddress_challenge() -> None:
    k = key(cidr=parse_cidrs(["10.1.0.0/16"]))
    Policy().authorize(k, Action.READ, private=True, client_ip="10.1.2.3")
    with pytest.raises(Unauthorized) as caught:
        Policy().authorize(k, Action.READ, private=True, client_ip="192.168.0.1")
    assert caught.value.www_authenticate == "ipaddress"


def test_a_key_outside_its_packages_gets_403() -> None:
    k = key(packages=("@mycompany/*",))
    Policy().authorize(k, Action.PUBLISH, private=True, package="@mycompany/lib")
    with pytest.raises(Forbidden):
        Policy().authorize(k, Action.PUBLISH, private=True, package="@other/lib")
    with pytest.raises(Forbidden):
        Policy().authorize(key(Permission.ADMIN, packages=("x",)), Action.ADMIN, private=True)


def test_rules_are_ordered_globs() -> None:
    policy = Policy(
        parse_rules(
            [
                {"package": "@secret/*", "access": ["$authenticated"], "publish": ["alice"]},
                {"package": "**", "access": "$all", "publish": "$write", "unpublish": "$admin"},
            ]
        )
    )
    with pytest.raises(Unauthorized):
        policy.authorize(None, Action.READ, private=False, package="@secret/x")
    policy.authorize(None, Action.READ, private=False, package="left-pad")
    with pytest.raises(Forbidden):
        policy.authorize(key(), Action.PUBLISH, private=True, package="@secret/x")
    policy.authorize(key(owner="alice"), Action.PUBLISH, private=True, package="@secret/x")
    with pytest.raises(Forbidden):
        policy.authorize(key(), Action.UNPUBLISH, private=True, package="left-pad")
    policy.authorize(key(Permission.ADMIN), Action.UNPUBLISH, private=True, package="left-pad")
    assert policy.rule_for("@secret/y") == Rule("@secret/*", ("$authenticated",), ("alice",))


def test_bad_rules_fail_fast() -> None:
    docs: list[object] = [
        {},
        [{"access": "$all"}],
        [{"package": "*", "acess": "$all"}],
        [{"package": "*", "access": "$everyone"}],
    ]
    for doc in docs:
        with pytest.raises(InvalidValue):
            parse_rules(doc)


def test_owners_are_enforced_on_changes_but_not_for_admins() -> None:
    policy = Policy()
    policy.authorize(key(owner="bob"), Action.DIST_TAG, private=True, package="p", owners=["bob"])
    with pytest.raises(Forbidden):
        policy.authorize(key(owner="eve"), Action.DIST_TAG, private=True, package="p",
                         owners=["bob"])  # fmt: skip
    policy.authorize(key(Permission.ADMIN), Action.UNPUBLISH, private=True, package="p",
                     owners=["bob"])  # fmt: skip


def test_private_mode_decides_anonymous_reads() -> None:
    Policy().authorize(None, Action.READ, private=False, package="p")
    with pytest.raises(Unauthorized):
        Policy().authorize(None, Action.READ, private=True, package="p")


# -- client address and blocks -------------------------------------------------------------------


def test_client_ip_trusts_only_listed_proxies() -> None:
    proxies = parse_cidrs(["10.0.0.0/8"])
    assert client_ip("203.0.113.9", "1.1.1.1", proxies) == "203.0.113.9"
    assert client_ip("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.3", proxies) == "198.51.100.7"
    assert client_ip("10.0.0.2", None, proxies) == "10.0.0.2"
    assert client_ip("::ffff:192.0.2.1", None, ()) == "192.0.2.1"
    assert normalize_ip("::FFFF:10.0.0.1") == "10.0.0.1"


def test_blocks_are_shared_through_storage(tmp_path: Path) -> None:
    a = Blocklist(SQLiteStorage(tmp_path / "r.sqlite3"))
    b = Blocklist(SQLiteStorage(tmp_path / "r.sqlite3"))
    assert a.blocked("192.0.2.1") is None
    b.block("192.0.2.1", "test", None)
    assert a.blocked("192.0.2.1") is not None
    b.unblock("192.0.2.1")
    assert a.blocked("192.0.2.1") is None


def test_security_settings_name_the_bad_variable() -> None:
    with pytest.raises(InvalidValue, match="R13_TRUSTED_PROXIES"):
        SecuritySettings.from_env({"R13_TRUSTED_PROXIES": "not-an-ip"})
    with pytest.raises(InvalidValue, match="R13_BLOCK_WINDOW"):
        SecuritySettings.from_env({"R13_BLOCK_WINDOW": "x"})
    s = SecuritySettings.from_env({"R13_OPEN_SIGNUP": "1", "R13_SIGNUP_ROLE": "publisher"})
    assert s.open_signup and s.signup_role is Role.PUBLISHER
