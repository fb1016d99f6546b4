"""The storage contract: tests every backend must pass.

A backend's test module subclasses :class:`StorageContract` (and
:class:`BlobStoreContract` for tarball stores, one class per storage concern:
:class:`IdentityStorageContract`, :class:`UsageStorageContract`) and provides
a ``storage`` (or ``blobs``) fixture giving a fresh, empty store. See tests/test_storage_sqlite.py.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from r13core.errors import InvalidValue
from r13core.storage.base import (
    BlobStore,
    KeyRecord,
    RenderRecord,
    Storage,
    TarballRecord,
)
from r13core.storage.usage import UsageStorage

SHA_A = "a" * 128
SHA_B = "b" * 128


class StorageContract:
    """Behaviour of :class:`r13core.storage.base.Storage`."""

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError("a backend's test class provides this fixture")

    # -- packages -------------------------------------------------------------

    def test_absent_package_reads_as_none(self, storage: Storage) -> None:
        assert storage.package("nope") is None
        assert storage.package_rev("nope") is None
        assert list(storage.packages()) == []

    def test_saved_document_round_trips_with_a_positive_rev(self, storage: Storage) -> None:
        doc = {"name": "a", "versions": {"1.0.0": {"x": [1, 2, {"y": None}]}}, "ü": "ü"}
        with storage.write() as tx:
            rev = tx.save_package("a", doc)
        record = storage.package("a")
        assert record is not None
        assert record.doc == doc
        assert record.rev == rev > 0
        assert storage.package_rev("a") == rev

    def test_rev_grows_on_every_change_of_any_package(self, storage: Storage) -> None:
        revs = []
        for name in ("a", "b", "a", "b"):
            with storage.write() as tx:
                revs.append(tx.save_package(name, {"name": name}))
        assert revs == sorted(revs)
        assert len(set(revs)) == 4

    def test_a_recreated_package_never_gets_an_old_rev_back(self, storage: Storage) -> None:
        with storage.write() as tx:
            first = tx.save_package("a", {"v": 1})
        with storage.write() as tx:
            tx.delete_package("a")
        with storage.write() as tx:
            again = tx.save_package("a", {"v": 2})
        assert again > first

    def test_write_sees_its_own_changes_before_commit(self, storage: Storage) -> None:
        with storage.write() as tx:
            tx.save_package("a", {"v": 1})
            inside = tx.package("a")
            assert inside is not None and inside.doc == {"v": 1}

    def test_an_exception_rolls_the_whole_transaction_back(self, storage: Storage) -> None:
        with storage.write() as tx:
            tx.save_package("keep", {"v": 1})
        with pytest.raises(RuntimeError), storage.write() as tx:
            tx.save_package("keep", {"v": 2})
            tx.save_package("new", {"v": 1})
            tx.add_tarball(TarballRecord("new", "1.0.0", SHA_A, 3))
            tx.mark_used("new", "1.0.0", SHA_A)
            raise RuntimeError("crash before commit")
        kept = storage.package("keep")
        assert kept is not None and kept.doc == {"v": 1}
        assert storage.package("new") is None
        assert storage.tarball("new", "1.0.0") is None
        assert storage.used_version("new", "1.0.0") is None

    def test_summaries_are_saved_with_the_document(self, storage: Storage) -> None:
        with storage.write() as tx:
            tx.save_package("b", {"v": 1}, summary={"name": "b", "n": 1})
            tx.save_package("a", {"v": 1})
        assert list(storage.summaries()) == [("a", {}), ("b", {"name": "b", "n": 1})]
        with storage.write() as tx:
            tx.save_package("b", {"v": 2}, summary={"name": "b", "n": 2})
            tx.delete_package("a")
        assert list(storage.summaries()) == [("b", {"name": "b", "n": 2})]

    def test_packages_lists_every_package_in_name_order(self, storage: Storage) -> None:
        with storage.write() as tx:
            for name in ("c", "@s/a", "a"):
                tx.save_package(name, {"name": name})
        assert [p.name for p in storage.packages()] == ["@s/a", "a", "c"]

    def test_delete_removes_tarballs_and_renders_but_keeps_used_versions(
        self, storage: Storage
    ) -> None:
        with storage.write() as tx:
            rev = tx.save_package("a", {"v": 1})
            tx.add_tarball(TarballRecord("a", "1.0.0", SHA_A, 10))
            tx.mark_used("a", "1.0.0", SHA_A)
        assert storage.save_render("a", "full", RenderRecord(rev, "u", b"{}", b"gz", '"e"'))
        with storage.write() as tx:
            tx.delete_package("a")
        assert storage.package("a") is None
        assert storage.tarball("a", "1.0.0") is None
        assert storage.render("a", "full") is None
        assert storage.used_version("a", "1.0.0") == SHA_A
        assert storage.blob_refs() == set()

    # -- versions and tarballs ---------------------------------------------------

    def test_used_versions_keep_the_first_hash(self, storage: Storage) -> None:
        with storage.write() as tx:
            assert tx.used_version("a", "1.0.0") is None
            tx.mark_used("a", "1.0.0", SHA_A)
            tx.mark_used("a", "1.0.0", SHA_B)
            assert tx.used_version("a", "1.0.0") == SHA_A
        assert storage.used_version("a", "1.0.0") == SHA_A
        assert storage.used_version("a", "2.0.0") is None

    def test_tarball_rows_are_added_found_and_removed(self, storage: Storage) -> None:
        with storage.write() as tx:
            tx.save_package("a", {})
            tx.add_tarball(TarballRecord("a", "1.0.0", SHA_A, 10))
            tx.add_tarball(TarballRecord("a", "2.0.0", SHA_B, 20))
        assert storage.tarball("a", "1.0.0") == TarballRecord("a", "1.0.0", SHA_A, 10)
        assert storage.blob_refs() == {SHA_A, SHA_B}
        assert storage.counts() == (1, 2)
        with storage.write() as tx:
            tx.remove_tarball("a", "1.0.0")
        assert storage.tarball("a", "1.0.0") is None
        assert storage.blob_refs() == {SHA_B}

    # -- render cache ---------------------------------------------------------------

    def test_render_is_stored_only_for_the_current_rev(self, storage: Storage) -> None:
        with storage.write() as tx:
            old = tx.save_package("a", {"v": 1})
        with storage.write() as tx:
            new = tx.save_package("a", {"v": 2})
        assert not storage.save_render("a", "full", RenderRecord(old, "u", b"old", b"", '"o"'))
        assert storage.render("a", "full") is None
        record = RenderRecord(new, "u", b"new", b"gz", '"n"')
        assert storage.save_render("a", "full", record)
        assert storage.render("a", "full") == record
        assert storage.render("a", "abbreviated") is None

    def test_a_change_drops_the_cached_renders(self, storage: Storage) -> None:
        with storage.write() as tx:
            rev = tx.save_package("a", {"v": 1})
        storage.save_render("a", "full", RenderRecord(rev, "u", b"x", b"", '"x"'))
        with storage.write() as tx:
            tx.save_package("a", {"v": 2})
        assert storage.render("a", "full") is None

    def test_render_for_an_absent_package_is_refused(self, storage: Storage) -> None:
        assert not storage.save_render("ghost", "full", RenderRecord(1, "u", b"x", b"", '"x"'))

    # -- advisories ---------------------------------------------------------------------

    def test_advisories_are_added_filtered_and_removed(self, storage: Storage) -> None:
        first = storage.add_advisory("a", {"title": "one"})
        second = storage.add_advisory("b", {"title": "two"})
        assert first != second
        assert [a.id for a in storage.advisories()] == [first, second]
        only_b = storage.advisories(["b", "zzz"])
        assert [(a.package, a.data) for a in only_b] == [("b", {"title": "two"})]
        assert storage.advisories([]) == []
        assert storage.remove_advisory(first)
        assert not storage.remove_advisory(first)
        assert [a.id for a in storage.advisories()] == [second]

    # -- keys -------------------------------------------------------------------------------

    def test_keys_are_stored_found_listed_and_revoked(self, storage: Storage) -> None:
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

    # -- concurrency ---------------------------------------------------------------------------

    def test_concurrent_writers_lose_no_update(self, storage: Storage) -> None:
        with storage.write() as tx:
            tx.save_package("counter", {"n": 0})
        errors: list[BaseException] = []

        def bump() -> None:
            try:
                for _ in range(10):
                    with storage.write() as tx:
                        record = tx.package("counter")
                        assert record is not None
                        tx.save_package("counter", {"n": record.doc["n"] + 1})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        record = storage.package("counter")
        assert record is not None and record.doc == {"n": 40}


class BlobStoreContract:
    """Behaviour of :class:`r13core.storage.base.BlobStore`."""

    @pytest.fixture
    def blobs(self) -> BlobStore:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_put_stores_bytes_under_their_sha512(self, blobs: BlobStore) -> None:
        data = b"tarball bytes"
        info = blobs.put(data)
        assert info.sha512 == hashlib.sha512(data).hexdigest()
        assert info.size == len(data)
        assert info.created
        assert blobs.read(info.sha512) == data
        path = blobs.path(info.sha512)
        assert path is not None and path.read_bytes() == data
        assert list(blobs.hashes()) == [info.sha512]

    def test_putting_the_same_bytes_again_is_a_no_op(self, blobs: BlobStore) -> None:
        first = blobs.put(b"same")
        second = blobs.put(b"same")
        assert second.sha512 == first.sha512
        assert not second.created
        assert list(blobs.hashes()) == [first.sha512]

    def test_absent_blob_reads_as_none(self, blobs: BlobStore) -> None:
        assert blobs.read(SHA_A) is None
        assert blobs.path(SHA_A) is None
        assert not blobs.delete(SHA_A)

    def test_a_name_that_is_not_a_sha512_is_refused(self, blobs: BlobStore) -> None:
        for bad in ("../../etc/passwd", "A" * 128, "a" * 127, ""):
            with pytest.raises(InvalidValue):
                blobs.path(bad)

    def test_delete_removes_a_blob(self, blobs: BlobStore) -> None:
        info = blobs.put(b"x")
        assert blobs.delete(info.sha512)
        assert blobs.read(info.sha512) is None

    def test_sweep_removes_only_old_unknown_blobs(self, blobs: BlobStore) -> None:
        keep = blobs.put(b"referenced")
        orphan = blobs.put(b"orphan")
        assert blobs.sweep_orphans({keep.sha512}, min_age=3600) == 0  # too fresh
        assert blobs.sweep_orphans({keep.sha512}, min_age=0) == 1
        assert blobs.read(orphan.sha512) is None
        assert blobs.read(keep.sha512) == b"referenced"

    def test_a_candidate_referenced_meanwhile_is_kept(self, blobs: BlobStore) -> None:
        late = blobs.put(b"a publish committed between the listing and the removal")
        candidates = blobs.orphans(set(), min_age=0)
        assert len(candidates) == 1
        with blobs.sweeping():
            assert blobs.remove_orphans(candidates, {late.sha512}, min_age=0) == 0
        assert blobs.read(late.sha512) is not None
        with blobs.sweeping():
            assert blobs.remove_orphans(candidates, set(), min_age=0) == 1
        assert blobs.read(late.sha512) is None

    def test_a_held_store_can_be_held_again_and_swept_after(self, blobs: BlobStore) -> None:
        with blobs.hold(), blobs.hold():  # publishes share it
            blobs.put(b"in flight")
        assert blobs.sweep_orphans(set(), min_age=0) == 1


def age_file(path: Path, seconds: float) -> None:
    """Make ``path`` look ``seconds`` old (for sweep tests)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


class IdentityStorageContract:
    """Behaviour of the identity tables of :class:`Storage` (users, key fields, blocks, audit)."""

    @pytest.fixture
    def storage(self) -> Storage:  # pragma: no cover - overridden
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_key_fields_round_trip_and_update(self, storage: Storage) -> None:
        from r13core.storage.base import UserRecord

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
        from dataclasses import replace

        assert storage.update_key(replace(key, secret_hash="new"))
        assert storage.key_by_hash("new") is not None and storage.key_by_hash("hk") is None

    def test_users_are_added_updated_and_removed_with_their_keys(self, storage: Storage) -> None:
        from r13core.storage.base import UserRecord

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

    def test_blocks_are_kept_replaced_and_lifted(self, storage: Storage) -> None:
        from r13core.storage.base import BlockRecord

        storage.add_block(BlockRecord("10.0.0.1", "x", 1.0, None))
        storage.add_block(BlockRecord("10.0.0.1", "y", 2.0, 9.0))
        assert storage.list_blocks() == [BlockRecord("10.0.0.1", "y", 2.0, 9.0)]
        assert storage.remove_block("10.0.0.1")
        assert not storage.remove_block("10.0.0.1")

    def test_blocks_keep_their_kind_and_prefix(self, storage: Storage) -> None:
        from r13core.storage.base import BlockRecord

        auto = BlockRecord("2001:db8:1:2::/64", "too many hostile requests", 1.0, 5.0, "auto")
        manual = BlockRecord("192.0.2.1", "by hand", 2.0, None, "manual")
        storage.add_block(auto)
        storage.add_block(manual)
        assert storage.list_blocks() == [manual, auto]
        assert BlockRecord("10.0.0.1", "x", 1.0, None).kind == "manual"

    def test_audit_log_pages_newest_first_and_filters(self, storage: Storage) -> None:
        ids = [storage.append_audit(float(i), "a", f"act{i % 2}", "t", "ip", {"i": i})
               for i in range(5)]  # fmt: skip
        page = storage.audit_events(limit=2)
        assert [e.id for e in page] == ids[:-3:-1]
        assert [e.id for e in storage.audit_events(before=page[-1].id, limit=10)] == ids[2::-1]
        assert {e.action for e in storage.audit_events(action="act1")} == {"act1"}

    def test_counters_add_up(self, storage: Storage) -> None:
        storage.add_counters([("requests", "GET / 200", 2), ("clients", "1.2.3.4", 1)])
        storage.add_counters([("requests", "GET / 200", 3)])
        assert ("requests", "GET / 200", 5) in storage.counters()

    def test_web_login_is_approved_once_and_taken_once(self, storage: Storage) -> None:
        from r13core.storage.base import WebLoginRecord

        storage.add_web_login(WebLoginRecord("id1", "dh", 1.0, 100.0))
        assert storage.take_web_login("id1", 2.0) is None  # not approved yet
        assert storage.approve_web_login("id1", "alice")
        assert not storage.approve_web_login("id1", "mallory")
        assert storage.take_web_login("id1", 100.0) is None  # expired: not handed out
        taken = storage.take_web_login("id1", 99.0)
        assert taken is not None and taken.username == "alice"
        assert storage.take_web_login("id1", 2.0) is None

    def test_users_and_keys_never_share_a_name(self, storage: Storage) -> None:
        from r13core.storage.base import UserRecord

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

    def test_user_update_revokes_keys_above_a_level_in_one_step(self, storage: Storage) -> None:
        from r13core.storage.base import UserRecord

        assert storage.add_user(UserRecord("carol", "h", "admin", "", 1.0))
        for key_id, perm in (("c1", 1), ("c2", 2), ("c3", 3)):
            storage.add_key(KeyRecord(key_id, f"h{key_id}", perm, 1.0, None, False, owner="carol"))
        revoked = storage.update_user_revoking(UserRecord("carol", "h", "reader", "", 1.0), above=1)
        assert revoked == ["c2", "c3"]
        assert [k.id for k in storage.keys_of("carol") if not k.revoked] == ["c1"]
        assert storage.revoke_keys_of("carol") == ["c1"]
        assert storage.update_user_revoking(UserRecord("ghost", "h", "x", "", 1.0), above=0) is None

    def test_audit_events_are_chained(self, storage: Storage) -> None:
        from r13core.storage.base import AUDIT_GENESIS

        ids = [storage.append_audit(float(i), "a", "act", "t", "ip", {"i": i}) for i in range(3)]
        assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
        links = storage.audit_links()
        assert [link.id for link in links] == ids
        assert links[0].prev_hash == AUDIT_GENESIS
        for before, link in itertools.pairwise(links):
            assert link.prev_hash == before.hash
        assert all(link.hash == link.computed_hash() for link in links)
        assert [link.id for link in storage.audit_links(after=ids[0], limit=1)] == [ids[1]]


class UsageStorageContract:
    """Behaviour of :class:`r13core.storage.usage.UsageStorage` (per-package daily counts)."""

    @pytest.fixture
    def storage(self) -> UsageStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_deltas_add_up_per_package_kind_and_day(self, storage: UsageStorage) -> None:
        storage.add_usage(
            [("2026-11-01", "a", "downloads", 2), ("2026-11-01", "a", "downloads", 3)]
        )
        storage.add_usage(
            [("2026-11-01", "a", "downloads", 1), ("2026-11-01", "a", "publishes", 1)]
        )
        storage.add_usage(
            [("2026-11-02", "a", "downloads", 4), ("2026-11-01", "b", "downloads", 7)]
        )
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-30", package="a") == [
            ("2026-11-01", 6),
            ("2026-11-02", 4),
        ]
        assert storage.usage_days("publishes", "2026-11-01", "2026-11-30", package="a") == [
            ("2026-11-01", 1)
        ]
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-30", package="c") == []

    def test_totals_per_day_sum_every_package(self, storage: UsageStorage) -> None:
        storage.add_usage([
            ("2026-11-01", "a", "downloads", 2),
            ("2026-11-01", "@s/b", "downloads", 5),
            ("2026-11-03", "a", "downloads", 1),
            ("2026-11-01", "a", "unpublishes", 9),
        ])  # fmt: skip
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-30") == [
            ("2026-11-01", 7),
            ("2026-11-03", 1),
        ]

    def test_a_range_is_inclusive_and_excludes_other_days(self, storage: UsageStorage) -> None:
        days = ["2026-10-31", "2026-11-01", "2026-11-15", "2026-11-30", "2026-12-01"]
        storage.add_usage([(d, "a", "downloads", 1) for d in days])
        got = storage.usage_days("downloads", "2026-11-01", "2026-11-30", package="a")
        assert got == [("2026-11-01", 1), ("2026-11-15", 1), ("2026-11-30", 1)]
        assert storage.usage_top("downloads", "2026-11-01", "2026-11-30", 10) == [("a", 3)]

    def test_top_orders_by_count_then_name_and_limits(self, storage: UsageStorage) -> None:
        storage.add_usage([
            ("2026-11-01", "low", "downloads", 1),
            ("2026-11-01", "b-tie", "downloads", 5),
            ("2026-11-02", "a-tie", "downloads", 5),
            ("2026-11-02", "high", "downloads", 3),
            ("2026-11-03", "high", "downloads", 8),
            ("2026-11-03", "publisher", "publishes", 50),
        ])  # fmt: skip
        top = storage.usage_top("downloads", "2026-11-01", "2026-11-30", 3)
        assert top == [("high", 11), ("a-tie", 5), ("b-tie", 5)]
        assert storage.usage_top("publishes", "2026-11-01", "2026-11-30", 3) == [("publisher", 50)]
        assert storage.usage_top("unpublishes", "2026-11-01", "2026-11-30", 3) == []

    def test_a_batch_is_written_whole_or_not_at_all(self, storage: UsageStorage) -> None:
        bad: Any = [("2026-11-01", "a", "downloads", 1), ("2026-11-01", "b", "downloads", None)]
        with pytest.raises(Exception):  # noqa: B017 - each backend raises its own kind
            storage.add_usage(bad)
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-01") == []
        storage.add_usage([])  # nothing to do is fine

    def test_concurrent_batches_lose_no_count(self, storage: UsageStorage) -> None:
        def add() -> None:
            for _ in range(50):
                storage.add_usage([("2026-11-01", "a", "downloads", 1)])

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-01") == [("2026-11-01", 200)]
