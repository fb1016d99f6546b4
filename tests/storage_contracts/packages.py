"""The packages contract: documents, revs, the write transaction, tarball rows, renders.

A backend's test class mixes in :class:`PackageStorageContract` and provides a
``storage`` fixture giving a fresh, empty store (tests/test_storage_sqlite.py).
"""

from __future__ import annotations

import threading
from typing import Final

import pytest

from r13core.registry.render import Renderer
from r13core.storage.package_rows import ROWS, VersionRow
from r13core.storage.packages import (
    JSONDict,
    PackageRecord,
    PackageStorage,
    RenderRecord,
    TarballRecord,
)

SHA_A: Final = "a" * 128
SHA_B: Final = "b" * 128


class PackageStorageContract:
    """Behaviour of :class:`r13core.storage.packages.PackageStorage`."""

    @pytest.fixture
    def storage(self) -> PackageStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    # -- packages -------------------------------------------------------------

    def test_absent_package_reads_as_none(self, storage: PackageStorage) -> None:
        assert storage.package("nope") is None
        assert storage.package_rev("nope") is None
        assert list(storage.packages()) == []

    def test_saved_document_round_trips_with_a_positive_rev(self, storage: PackageStorage) -> None:
        doc = {"name": "a", "versions": {"1.0.0": {"x": [1, 2, {"y": None}]}}, "ü": "ü"}
        with storage.write() as tx:
            rev = tx.save_package("a", doc)
        record = storage.package("a")
        assert record is not None
        assert record.doc == doc
        assert record.rev == rev > 0
        assert storage.package_rev("a") == rev

    def test_rev_grows_on_every_change_of_any_package(self, storage: PackageStorage) -> None:
        revs = []
        for name in ("a", "b", "a", "b"):
            with storage.write() as tx:
                revs.append(tx.save_package(name, {"name": name}))
        assert revs == sorted(revs)
        assert len(set(revs)) == 4

    def test_a_recreated_package_never_gets_an_old_rev_back(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            first = tx.save_package("a", {"v": 1})
        with storage.write() as tx:
            tx.delete_package("a")
        with storage.write() as tx:
            again = tx.save_package("a", {"v": 2})
        assert again > first

    def test_write_sees_its_own_changes_before_commit(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            tx.save_package("a", {"v": 1})
            inside = tx.package("a")
            assert inside is not None and inside.doc == {"v": 1}

    def test_an_exception_rolls_the_whole_transaction_back(self, storage: PackageStorage) -> None:
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

    def test_summaries_are_saved_with_the_document(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            tx.save_package("b", {"v": 1}, summary={"name": "b", "n": 1})
            tx.save_package("a", {"v": 1})
        assert list(storage.summaries()) == [("a", {}), ("b", {"name": "b", "n": 1})]
        with storage.write() as tx:
            tx.save_package("b", {"v": 2}, summary={"name": "b", "n": 2})
            tx.delete_package("a")
        assert list(storage.summaries()) == [("b", {"name": "b", "n": 2})]

    def test_packages_lists_every_package_in_name_order(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            for name in ("c", "@s/a", "a"):
                tx.save_package(name, {"name": name})
        assert [p.name for p in storage.packages()] == ["@s/a", "a", "c"]

    def test_delete_removes_tarballs_and_renders_but_keeps_used_versions(
        self, storage: PackageStorage
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

    def test_used_versions_keep_the_first_hash(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            assert tx.used_version("a", "1.0.0") is None
            tx.mark_used("a", "1.0.0", SHA_A)
            tx.mark_used("a", "1.0.0", SHA_B)
            assert tx.used_version("a", "1.0.0") == SHA_A
        assert storage.used_version("a", "1.0.0") == SHA_A
        assert storage.used_version("a", "2.0.0") is None

    def test_tarball_rows_are_added_found_and_removed(self, storage: PackageStorage) -> None:
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

    def test_package_rev_is_the_rev_of_the_stored_document(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            tx.save_package("a", {"v": 1})
            tx.save_package("b", {"v": 1})
        for name in ("a", "b"):
            record = storage.package(name)
            assert record is not None and storage.package_rev(name) == record.rev

    def test_blobs_in_use_are_those_asked_for_that_a_row_refers_to(
        self, storage: PackageStorage
    ) -> None:
        # More hashes than one statement may bind (backends query in slices).
        asked = [f"{i:0128x}" for i in range(1200)]
        with storage.write() as tx:
            tx.save_package("a", {})
            tx.add_tarball(TarballRecord("a", "1.0.0", asked[7], 1))
            tx.add_tarball(TarballRecord("a", "2.0.0", asked[1100], 1))
            tx.add_tarball(TarballRecord("a", "3.0.0", SHA_A, 1))
        assert storage.blobs_in_use(asked) == {asked[7], asked[1100]}
        assert storage.blobs_in_use(iter([SHA_A, SHA_B])) == {SHA_A}
        assert storage.blobs_in_use([]) == set()

    def test_a_name_stays_in_use_after_its_last_version_is_unpublished(
        self, storage: PackageStorage
    ) -> None:
        assert not storage.name_in_use("a")
        with storage.write() as tx:
            tx.save_package("a", {})
            tx.mark_used("a", "1.0.0", SHA_A)
        assert storage.name_in_use("a")
        with storage.write() as tx:
            tx.delete_package("a")
        assert storage.name_in_use("a")  # its tombstones keep it local
        assert not storage.name_in_use("ab")

    def test_a_scope_is_in_use_while_any_of_its_names_is(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            tx.save_package("@team/a", {})
            tx.save_package("@teamwork/b", {})
            tx.save_package("team", {})
        assert storage.scope_in_use("@team")
        assert storage.scope_in_use("@teamwork")
        assert not storage.scope_in_use("@tea")
        assert not storage.scope_in_use("@other")

    # -- render cache ---------------------------------------------------------------

    def test_render_is_stored_only_for_the_current_rev(self, storage: PackageStorage) -> None:
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

    def test_a_change_drops_the_cached_renders(self, storage: PackageStorage) -> None:
        with storage.write() as tx:
            rev = tx.save_package("a", {"v": 1})
        storage.save_render("a", "full", RenderRecord(rev, "u", b"x", b"", '"x"'))
        with storage.write() as tx:
            tx.save_package("a", {"v": 2})
        assert storage.render("a", "full") is None

    def test_render_for_an_absent_package_is_refused(self, storage: PackageStorage) -> None:
        assert not storage.save_render("ghost", "full", RenderRecord(1, "u", b"x", b"", '"x"'))

    # -- concurrency ---------------------------------------------------------------------------

    def test_concurrent_writers_lose_no_update(self, storage: PackageStorage) -> None:
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

    # -- a package as a head row plus version rows (r13core/storage/package_rows.py) ------

    def test_a_registry_document_is_a_small_head_and_one_row_per_version(
        self, storage: PackageStorage
    ) -> None:
        doc = registry_doc("a", ["1.0.0", "0.9.0", "2.0.0-beta.1"])
        with storage.write() as tx:
            rev = tx.save_package("a", doc, summary={"name": "a"})
        record = storage.package("a")
        assert record is not None and record.rev == rev
        assert_same_document(record.doc, doc)
        head = storage.head("a")
        assert head is not None and (head.rev, head.layout) == (rev, ROWS)
        assert "versions" not in head.top and "time" not in head.top
        assert head.top["dist-tags"] == doc["dist-tags"]
        assert storage.existing_versions("a", ["0.9.0", "9.9.9"]) == {"0.9.0"}
        assert storage.existing_versions("zz", ["0.9.0"]) == set()

    def test_a_version_row_is_appended_and_only_the_head_rewritten(
        self, storage: PackageStorage
    ) -> None:
        with storage.write() as tx:
            first = tx.save_package("a", registry_doc("a", ["1.0.0", "1.1.0"]))
        with storage.write() as tx:
            head = tx.head("a")
            assert head is not None and head.rev == first
            row = tx.version("a", "1.1.0")
            assert row is not None and row.manifest["version"] == "1.1.0"
            assert row.time == "t-1.1.0"
            assert tx.version("a", "3.0.0") is None
            tx.add_version("a", VersionRow("0.5.0", {"version": "0.5.0"}, "t5", [{"k": 1}]))
            top = dict(head.top, modified="later")
            second = tx.save_head("a", top, summary={"name": "a", "n": 2})
            assert tx.existing_versions("a", ["0.5.0", "1.0.0"]) == {"0.5.0", "1.0.0"}
        record = storage.package("a")
        assert record is not None and second > first and record.rev == second
        assert list(record.doc["versions"]) == ["1.0.0", "1.1.0", "0.5.0"]
        assert list(record.doc["time"]) == ["1.0.0", "1.1.0", "0.5.0"]
        assert record.doc["attestations"] == {"1.0.0": [{"a": "1.0.0"}], "0.5.0": [{"k": 1}]}
        assert record.doc["modified"] == "later"
        assert dict(storage.summaries())["a"] == {"name": "a", "n": 2}
        with storage.write() as tx:  # a whole rewrite after rows were appended: order kept
            tx.save_package("a", record.doc)
            tx.add_version("a", VersionRow("0.1.0", {}, "t1"))
            tx.save_head("a", dict(head.top), summary={})
        again = storage.package("a")
        assert again is not None
        assert list(again.doc["versions"]) == ["1.0.0", "1.1.0", "0.5.0", "0.1.0"]

    def test_documents_rows_cannot_hold_round_trip_exactly(self, storage: PackageStorage) -> None:
        for name, doc in ODD_DOCUMENTS.items():
            with storage.write() as tx:
                tx.save_package(name, doc)
            record = storage.package(name)
            assert record is not None
            assert_same_document(record.doc, doc)

    def test_a_failed_publish_of_a_row_leaves_nothing_and_a_delete_takes_the_rows(
        self, storage: PackageStorage
    ) -> None:
        with storage.write() as tx:
            tx.save_package("a", registry_doc("a", ["1.0.0"]))
        with pytest.raises(RuntimeError), storage.write() as tx:
            tx.add_version("a", VersionRow("2.0.0", {}, "t"))
            raise RuntimeError("crash before the commit")
        assert storage.existing_versions("a", ["2.0.0"]) == set()
        with storage.write() as tx:
            tx.delete_package("a")
        assert storage.head("a") is None and storage.existing_versions("a", ["1.0.0"]) == set()
        with storage.write() as tx:  # a new package of the same name starts with no rows
            tx.save_package("a", registry_doc("a", []))
        record = storage.package("a")
        assert record is not None and record.doc["versions"] == {}


def registry_doc(name: str, versions: list[str]) -> JSONDict:
    """A registry document (r13core/registry/documents.py) with ``versions``, the first
    carrying attestations."""
    return {
        "name": name,
        "created": "t0",
        "modified": "t9",
        "dist-tags": {"latest": versions[0]} if versions else {},
        "versions": {v: {"name": name, "version": v, "dist": {"n": 1.5e300}} for v in versions},
        "time": {v: f"t-{v}" for v in versions},
        "maintainers": [{"name": "alice", "email": ""}],
        "readme": "ü" * 10,
        **({"attestations": {versions[0]: [{"a": versions[0]}]}} if versions else {}),
    }


# Documents the rows cannot hold as they are: kept (partly) whole in the head.
ODD_DOCUMENTS: Final[dict[str, JSONDict]] = {
    # times not in the versions' order, and a time that is no version's
    "t": {
        "name": "t",
        "versions": {"1.0.0": {}, "2.0.0": {}},
        "time": {"2.0.0": "b", "1.0.0": "a", "unpublished": {"x": 1}},
    },
    # attestations of a version that is not there
    "u": {
        "name": "u",
        "versions": {"1.0.0": {}},
        "time": {"1.0.0": "a"},
        "att": 1,
        "attestations": {"9.9.9": [1]},
    },
    # no time at all (not a registry document)
    "w": {"name": "w", "versions": {"1.0.0": {}}},
    # null values, empty attestations
    "x": {"versions": {"1.0.0": None}, "time": {"1.0.0": None}, "attestations": {}},
}


def assert_same_document(got: JSONDict, want: JSONDict) -> None:
    """Equal, and in the same order where a rendered packument keeps it."""
    assert got == want
    for key in ("versions", "time"):
        if isinstance(want.get(key), dict):
            assert list(got[key]) == list(want[key])


def old_shape_documents() -> dict[str, JSONDict]:
    """Documents as a store before version rows kept them (whole, in ``packages.doc``)."""
    return {"big": registry_doc("big", [f"1.0.{i}" for i in range(5)]), **ODD_DOCUMENTS}


def assert_migrated(
    storage: PackageStorage, docs: dict[str, JSONDict], revs: dict[str, int]
) -> None:
    """Each document reads back the same at the same rev, and the registry document is
    in rows and renders the very bytes the whole document rendered."""
    for name, doc in docs.items():
        record = storage.package(name)
        assert record is not None and record.rev == revs[name]
        assert_same_document(record.doc, doc)
    head = storage.head("big")
    assert head is not None and head.layout == ROWS and "versions" not in head.top
    renderer = Renderer(storage, "https://registry.example.test")
    before = PackageRecord("big", revs["big"], docs["big"])
    after = storage.package("big")
    assert after is not None
    assert renderer.render_full(after).body == renderer.render_full(before).body
    assert renderer.render_abbreviated(after).body == renderer.render_abbreviated(before).body
