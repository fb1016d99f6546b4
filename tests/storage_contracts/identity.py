"""The identity contract: keys, users and their one name space, web logins, blocks.

A backend's test class mixes in :class:`IdentityStorageContract` and provides
``storage`` (a fresh, empty store) and ``twin`` (a second handle on the same
store, as another process would open it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from r13core.storage.identity import (
    BlockRecord,
    IdentityStorage,
    KeyRecord,
    UserRecord,
    WebLoginRecord,
)
from tests.storage_contracts.signals import wait_until


class IdentityStorageContract:
    """Behaviour of :class:`r13core.storage.identity.IdentityStorage`."""

    @pytest.fixture
    def storage(self) -> IdentityStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    @pytest.fixture
    def twin(self, storage: IdentityStorage) -> IdentityStorage:
        """A second handle on the same store, as another process would open it."""
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_keys_are_stored_found_listed_and_revoked(self, storage: IdentityStorage) -> None:
        k1 = KeyRecord("ci", "h1", 2, 100.0, None, False)
        k2 = KeyRecord("admin", "h2", 3, 200.0, 300.0, False)
        assert storage.add_key(k1)
        assert storage.add_key(k2)
        assert not storage.add_key(KeyRecord("ci", "h3", 1, 1.0, None, False))
        assert storage.get_key("ci") == k1
        assert storage.key_by_hash("h2") == k2
        assert storage.key_by_hash("h3") is None
        assert [k.id for k in storage.list_keys()] == ["ci", "admin"]
        assert storage.revoke_key("ci")
        assert not storage.revoke_key("ghost")
        revoked = storage.get_key("ci")
        assert revoked is not None and revoked.revoked

    def test_a_batch_of_keys_is_stored_whole_or_not_at_all(self, storage: IdentityStorage) -> None:
        batch = [KeyRecord(f"ci-{n}", f"h{n}", 1, 10.0 + n, None, False) for n in range(3)]
        assert storage.add_keys(batch) is None
        assert [storage.get_key(f"ci-{n}") for n in range(3)] == batch
        assert storage.key_by_hash("h2") == batch[2]
        assert storage.add_keys([]) is None
        # One taken id (ignoring case), by a key or a user: the others are not stored.
        assert storage.add_user(UserRecord("dora", "h", "reader", "", 1.0))
        for taken in ("CI-1", "Dora"):
            fresh = KeyRecord("fresh", "hf", 1, 1.0, None, False)
            assert storage.add_keys([fresh, KeyRecord(taken, "hx", 1, 1.0, None, False)]) == taken
            assert storage.get_key("fresh") is None and storage.key_by_hash("hf") is None
        # An id given twice in one batch is taken by the first.
        twice = [KeyRecord("dup", "d1", 1, 1.0, None, False),
                 KeyRecord("DUP", "d2", 1, 1.0, None, False)]  # fmt: skip
        assert storage.add_keys(twice) == "DUP"
        assert storage.get_key("dup") is None
        assert storage.add_keys([KeyRecord("fresh", "hf", 1, 1.0, None, False)]) is None

    def test_key_fields_round_trip_and_update(self, storage: IdentityStorage) -> None:
        assert storage.add_user(UserRecord("alice", "h", "publisher", "a@x", 1.0))
        key = KeyRecord(
            "k", "hk", 2, 1.0, None, False, owner="alice", rate_limit=50,
            cidr=("10.0.0.0/8",), packages=("@acme/*",), description="ci",
        )  # fmt: skip
        assert storage.add_key(key)
        got = storage.get_key("k")
        assert got is not None and got.role == "publisher"
        assert (got.owner, got.rate_limit, got.cidr, got.packages) == (
            "alice", 50, ("10.0.0.0/8",), ("@acme/*",),
        )  # fmt: skip
        assert [k.id for k in storage.keys_of("alice")] == ["k"]
        storage.record_key_usage([("k", 3, 5.0), ("k", 2, 4.0)])
        used = storage.get_key("k")
        assert used is not None and used.use_count == 5 and used.last_used == 5.0
        assert storage.update_key(replace(key, secret_hash="new"))
        assert storage.key_by_hash("new") is not None and storage.key_by_hash("hk") is None

    def test_users_are_added_updated_and_removed_with_their_keys(
        self, storage: IdentityStorage
    ) -> None:
        bob = UserRecord("bob", "h", "reader", "", 1.0)
        assert storage.add_user(bob)
        assert not storage.add_user(bob)
        assert storage.update_user(UserRecord("bob", "h2", "admin", "b@x", 1.0))
        got = storage.get_user("bob")
        assert got is not None and got.role == "admin" and got.password_hash == "h2"
        storage.add_key(KeyRecord("bk", "hb", 1, 1.0, None, False, owner="bob"))
        assert [u.name for u in storage.list_users()] == ["bob"]
        assert storage.remove_user("bob")
        assert not storage.remove_user("bob")
        gone = storage.get_key("bk")
        assert gone is not None and gone.revoked and gone.role is None

    def test_blocks_are_kept_replaced_and_lifted(self, storage: IdentityStorage) -> None:
        storage.add_block(BlockRecord("10.0.0.1", "x", 1.0, None))
        storage.add_block(BlockRecord("10.0.0.1", "y", 2.0, 9.0))
        assert storage.list_blocks() == [BlockRecord("10.0.0.1", "y", 2.0, 9.0)]
        assert storage.remove_block("10.0.0.1")
        assert not storage.remove_block("10.0.0.1")

    def test_blocks_keep_their_kind_and_prefix(self, storage: IdentityStorage) -> None:
        auto = BlockRecord("2001:db8:1:2::/64", "too many hostile requests", 1.0, 5.0, "auto")
        manual = BlockRecord("192.0.2.1", "by hand", 2.0, None, "manual")
        storage.add_block(auto)
        storage.add_block(manual)
        assert storage.list_blocks() == [manual, auto]
        assert BlockRecord("10.0.0.1", "x", 1.0, None).kind == "manual"

    def test_web_login_is_approved_once_and_taken_once(self, storage: IdentityStorage) -> None:
        storage.add_web_login(WebLoginRecord("id1", "dh", 1.0, 100.0))
        assert storage.take_web_login("id1", 2.0) is None  # not approved yet
        assert storage.approve_web_login("id1", "alice")
        assert not storage.approve_web_login("id1", "mallory")
        assert storage.take_web_login("id1", 100.0) is None  # expired: not handed out
        taken = storage.take_web_login("id1", 99.0)
        assert taken is not None and taken.username == "alice"
        assert storage.take_web_login("id1", 2.0) is None

    def test_users_and_keys_never_share_a_name(self, storage: IdentityStorage) -> None:
        assert storage.add_key(KeyRecord("ci-publish", "h1", 2, 1.0, None, False))
        assert not storage.add_user(UserRecord("ci-publish", "h", "publisher", "", 2.0))
        assert not storage.add_user(UserRecord("ci-publish", "h", "publisher", "", 2.0),
                                    reclaim=True)  # fmt: skip
        assert storage.name_holder("CI-Publish") == "key"
        assert storage.add_user(UserRecord("alice", "h", "publisher", "", 1.0))
        assert not storage.add_key(KeyRecord("Alice", "h2", 2, 1.0, None, False))  # any case
        assert storage.get_key("Alice") is None and storage.name_holder("alice") == "user"
        assert storage.remove_user("alice")
        assert storage.name_holder("alice") == "former user"
        assert not storage.add_user(UserRecord("alice", "h", "reader", "", 3.0))
        assert not storage.add_key(KeyRecord("alice", "h3", 2, 1.0, None, False))
        assert storage.add_user(UserRecord("alice", "h", "reader", "", 3.0), reclaim=True)
        assert storage.name_holder("nobody") is None

    def test_user_update_revokes_keys_above_a_level_in_one_step(
        self, storage: IdentityStorage
    ) -> None:
        assert storage.add_user(UserRecord("carol", "h", "admin", "", 1.0))
        for key_id, perm in (("c1", 1), ("c2", 2), ("c3", 3)):
            storage.add_key(KeyRecord(key_id, f"h{key_id}", perm, 1.0, None, False, owner="carol"))
        revoked = storage.update_user_revoking(UserRecord("carol", "h", "reader", "", 1.0), above=1)
        assert revoked == ["c2", "c3"]
        assert [k.id for k in storage.keys_of("carol") if not k.revoked] == ["c1"]
        assert storage.revoke_keys_of("carol") == ["c1"]
        assert storage.update_user_revoking(UserRecord("ghost", "h", "x", "", 1.0), above=0) is None

    # -- change signal --------------------------------------------------------------------

    def test_every_change_to_keys_users_or_blocks_moves_the_auth_version(
        self, storage: IdentityStorage
    ) -> None:
        key = KeyRecord("k", "hk", 2, 1.0, None, False, owner="dave")
        user = UserRecord("dave", "h", "admin", "", 1.0)
        changes: list[tuple[str, Callable[[], object]]] = [
            ("add_user", lambda: storage.add_user(user)),
            ("add_key", lambda: storage.add_key(key)),
            ("update_key", lambda: storage.update_key(replace(key, description="x"))),
            ("revoke_key", lambda: storage.revoke_key("k")),
            ("update_user", lambda: storage.update_user(replace(user, email="d@x"))),
            ("add_key 2", lambda: storage.add_key(replace(key, id="k2", secret_hash="h2"))),
            ("revoke_keys_of", lambda: storage.revoke_keys_of("dave")),
            ("add_key 3", lambda: storage.add_key(replace(key, id="k3", secret_hash="h3"))),
            ("update_user_revoking",
             lambda: storage.update_user_revoking(replace(user, role="reader"), above=1)),
            ("remove_user", lambda: storage.remove_user("dave")),
            ("add_block", lambda: storage.add_block(BlockRecord("192.0.2.9", "x", 1.0, None))),
            ("remove_block", lambda: storage.remove_block("192.0.2.9")),
        ]  # fmt: skip
        for what, change in changes:
            before = storage.auth_version()
            change()
            assert storage.auth_version() != before, what

    def test_the_auth_version_stays_put_while_nothing_changes(
        self, storage: IdentityStorage
    ) -> None:
        storage.add_key(KeyRecord("k", "hk", 2, 1.0, None, False))
        before = storage.auth_version()
        storage.get_key("k")
        storage.list_keys()
        storage.record_key_usage([("k", 1, 2.0)])
        storage.list_blocks()
        assert not storage.add_key(KeyRecord("k", "hk2", 2, 1.0, None, False))  # refused
        if storage.auth_changes is None:  # no signal: caching is off, every version is new
            assert storage.auth_version() != before
        else:
            assert storage.auth_version() == before

    def test_a_change_through_another_handle_moves_this_handles_version(
        self, storage: IdentityStorage, twin: IdentityStorage
    ) -> None:
        before = storage.auth_version()
        assert twin.add_key(KeyRecord("elsewhere", "he", 1, 1.0, None, False))
        wait_until(lambda: storage.auth_version() != before)
        assert storage.get_key("elsewhere") is not None
