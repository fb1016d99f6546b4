"""API keys (create, authenticate, revoke, expire) and the one access decision point."""

from __future__ import annotations

from pathlib import Path

import pytest

from r13core.access import Action, authorize
from r13core.errors import Forbidden, InvalidValue, NameTaken, NotFound, Unauthorized
from r13core.keys import KeyStore, Permission, hash_secret, looks_like_secret, new_secret
from r13core.storage.sqlite import SQLiteStorage


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> SQLiteStorage:
    return SQLiteStorage(tmp_path / "r.sqlite3")


@pytest.fixture
def keys(db: SQLiteStorage, clock: Clock) -> KeyStore:
    return KeyStore(db, clock=clock)


def test_secret_has_prefix_random_part_and_checksum() -> None:
    secret = new_secret()
    assert secret.startswith("r13_")
    assert len(secret) == 4 + 40 + 6
    assert looks_like_secret(secret)
    assert new_secret() != secret


def test_secrets_draw_every_character_at_every_position() -> None:
    """One draw below 62**40 written in base 62 covers the alphabet at each of the 40."""
    bodies = [new_secret()[4:44] for _ in range(2000)]
    for position in (0, 1, 20, 38, 39):
        assert len({body[position] for body in bodies}) == 62
    assert len(set(bodies)) == 2000


def test_create_many_stores_keys_alike_in_one_change(keys: KeyStore, db: SQLiteStorage) -> None:
    before = db.auth_version()
    made = keys.create_many(["ci-1", "ci-2", "ci-3"], Permission.WRITE, 30, rate_limit=7,
                            cidr=["10.0.0.0/8"], packages=["@acme/*"])  # fmt: skip
    assert [info.id for info, _ in made] == ["ci-1", "ci-2", "ci-3"]
    assert len({secret for _, secret in made}) == 3
    for info, secret in made:
        assert keys.authenticate(secret) == info
        assert (info.permission, info.rate_limit) == (Permission.WRITE, 7)
        assert info.packages == ("@acme/*",)
        assert [str(n) for n in info.cidr] == ["10.0.0.0/8"]
        assert info.expires is not None
    assert db.auth_version() != before


def test_create_many_stores_none_when_one_id_is_taken_or_bad(keys: KeyStore) -> None:
    keys.create("ci-2", Permission.READ, None)
    with pytest.raises(NameTaken, match="CI-2"):
        keys.create_many(["ci-1", "CI-2", "ci-3"], Permission.READ, None)
    with pytest.raises(NameTaken, match="more than once"):
        keys.create_many(["ci-4", "ci-4"], Permission.READ, None)
    with pytest.raises(InvalidValue):
        keys.create_many(["ci-5", "bad id"], Permission.READ, None)
    with pytest.raises(InvalidValue):
        keys.create_many([], Permission.READ, None)
    with pytest.raises(InvalidValue):
        keys.create_many([f"k{n}" for n in range(1001)], Permission.READ, None)
    with pytest.raises(InvalidValue):
        keys.create_many(["ci-6"], Permission.ADMIN, None, packages=["@acme/*"])
    assert [k.id for k in keys.list()] == ["ci-2"]


def test_a_changed_character_breaks_the_checksum() -> None:
    secret = new_secret()
    flipped = secret[:10] + ("A" if secret[10] != "A" else "B") + secret[11:]
    assert not looks_like_secret(flipped)


def test_created_key_authenticates_with_its_secret(keys: KeyStore) -> None:
    info, secret = keys.create("ci", Permission.WRITE, 30)
    assert info.id == "ci" and info.permission is Permission.WRITE and not info.revoked
    assert keys.authenticate(secret) == info


def test_only_the_hash_of_the_secret_is_stored(keys: KeyStore, db: SQLiteStorage) -> None:
    _, secret = keys.create("ci", Permission.READ, None)
    record = db.get_key("ci")
    assert record is not None
    assert record.secret_hash == hash_secret(secret)
    assert secret not in db.path.read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    "secret", ["", "Bearer x", "r13_short", "npm_" + "a" * 46, "r13_" + "a" * 46]
)
def test_malformed_or_unknown_secrets_are_refused(keys: KeyStore, secret: str) -> None:
    with pytest.raises(Unauthorized, match="invalid, revoked or expired"):
        keys.authenticate(secret)


def test_well_formed_but_unknown_secret_is_refused(keys: KeyStore) -> None:
    with pytest.raises(Unauthorized):
        keys.authenticate(new_secret())


def test_revoked_key_is_refused(keys: KeyStore) -> None:
    _, secret = keys.create("ci", Permission.WRITE, None)
    keys.revoke("ci")
    with pytest.raises(Unauthorized):
        keys.authenticate(secret)
    assert keys.get("ci").revoked


def test_revoking_an_unknown_key_is_not_found(keys: KeyStore) -> None:
    with pytest.raises(NotFound):
        keys.revoke("ghost")


def test_key_expires_after_its_days(keys: KeyStore, clock: Clock) -> None:
    info, secret = keys.create("tmp", Permission.READ, 1)
    assert info.expires is not None
    clock.now += 86400 - 1
    keys.authenticate(secret)
    clock.now += 1
    with pytest.raises(Unauthorized):
        keys.authenticate(secret)


def test_key_without_expiry_never_expires(keys: KeyStore, clock: Clock) -> None:
    _, secret = keys.create("forever", Permission.ADMIN, None)
    clock.now += 100 * 365 * 86400
    assert keys.authenticate(secret).permission is Permission.ADMIN


def test_ids_are_unique_and_checked(keys: KeyStore) -> None:
    keys.create("ci", Permission.READ, None)
    with pytest.raises(NameTaken, match="taken"):
        keys.create("ci", Permission.READ, None)
    with pytest.raises(NameTaken, match="taken"):
        keys.create("CI", Permission.READ, None)  # ids are unique ignoring case
    for bad in ("", "has space", "x" * 65, "-lead"):
        with pytest.raises(InvalidValue):
            keys.create(bad, Permission.READ, None)


@pytest.mark.parametrize("days", [0, -1, 40000])
def test_expiry_must_be_sensible(keys: KeyStore, days: float) -> None:
    with pytest.raises(InvalidValue):
        keys.create("k", Permission.READ, days)


def test_list_shows_every_key_without_secrets(keys: KeyStore, clock: Clock) -> None:
    keys.create("a", Permission.READ, None)
    clock.now += 1
    keys.create("b", Permission.ADMIN, 2)
    listed = [k.as_dict() for k in keys.list()]
    assert [k["id"] for k in listed] == ["a", "b"]
    assert listed[1]["permission"] == "admin"
    assert all("secret" not in str(k) for k in listed)


def test_revocation_is_seen_by_another_store_on_the_same_database(
    tmp_path: Path, clock: Clock
) -> None:
    one = KeyStore(SQLiteStorage(tmp_path / "r.sqlite3"), clock=clock)
    two = KeyStore(SQLiteStorage(tmp_path / "r.sqlite3"), clock=clock)
    _, secret = one.create("ci", Permission.WRITE, None)
    two.authenticate(secret)
    one.revoke("ci")
    with pytest.raises(Unauthorized):
        two.authenticate(secret)


# -- access ------------------------------------------------------------------------


def test_public_reads_need_no_key() -> None:
    authorize(None, Action.READ, private=False)


def test_private_reads_need_a_key(keys: KeyStore) -> None:
    with pytest.raises(Unauthorized):
        authorize(None, Action.READ, private=True)
    reader, _ = keys.create("r", Permission.READ, None)
    authorize(reader, Action.READ, private=True)


@pytest.mark.parametrize(
    "action",
    [Action.PUBLISH, Action.UNPUBLISH, Action.DEPRECATE, Action.DIST_TAG, Action.OWNER],
)
def test_writes_need_write_permission(keys: KeyStore, action: Action) -> None:
    reader, _ = keys.create("r", Permission.READ, None)
    writer, _ = keys.create("w", Permission.WRITE, None)
    admin, _ = keys.create("a", Permission.ADMIN, None)
    with pytest.raises(Unauthorized):
        authorize(None, action, private=False)
    with pytest.raises(Forbidden, match="needs write"):
        authorize(reader, action, private=False)
    authorize(writer, action, private=False)
    authorize(admin, action, private=True)


def test_admin_actions_need_admin(keys: KeyStore) -> None:
    writer, _ = keys.create("w", Permission.WRITE, None)
    admin, _ = keys.create("a", Permission.ADMIN, None)
    with pytest.raises(Forbidden):
        authorize(writer, Action.ADMIN, private=False)
    authorize(admin, Action.ADMIN, private=False)


def test_a_revoked_identity_is_refused(keys: KeyStore) -> None:
    keys.create("w", Permission.WRITE, None)
    keys.revoke("w")
    with pytest.raises(Unauthorized):
        authorize(keys.get("w"), Action.PUBLISH, private=False)
