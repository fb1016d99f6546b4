"""The SQLite + files backend: the storage contract, plus what only it promises."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from r13core.errors import R13Error
from r13core.storage.blobs import BlobInfo, FileBlobStore
from r13core.storage.identity import KeyRecord, UserRecord
from r13core.storage.signals import FileChangeSignal
from r13core.storage.sqlite import (
    SQLiteAdvisories,
    SQLiteAudit,
    SQLiteCounters,
    SQLiteDatabase,
    SQLiteIdentity,
    SQLitePackages,
    SQLiteStorage,
    SQLiteUplinkCache,
    SQLiteUsage,
)
from r13core.storage.sqlite import migrations as sqlite_module
from tests.storage_contracts import (
    CONCERNS,
    AdvisoryStorageContract,
    AuditStorageContract,
    BlobStoreContract,
    ChangeSignalContract,
    CountersStorageContract,
    IdentityStorageContract,
    PackageStorageContract,
    StorageContract,
    UplinkCacheStorageContract,
    UsageStorageContract,
    age_file,
)
from tests.storage_contracts.packages import assert_migrated, old_shape_documents
from tests.storage_contracts.signals import OpenSignal

# -- the contracts: the whole store, then each concern's class alone over the same schema --


class TestSQLiteStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLiteStorage:
        return SQLiteStorage(tmp_path / "registry.sqlite3")

    @pytest.fixture
    def twin(self, storage: SQLiteStorage) -> SQLiteStorage:
        return SQLiteStorage(storage.path)


class TestSQLitePackagesAlone(PackageStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLitePackages:
        return SQLitePackages(tmp_path / "registry.sqlite3")


class TestSQLiteIdentityAlone(IdentityStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLiteIdentity:
        return SQLiteIdentity(tmp_path / "registry.sqlite3")

    @pytest.fixture
    def twin(self, storage: SQLiteIdentity) -> SQLiteIdentity:
        return SQLiteIdentity(storage.path)


class TestSQLiteAuditAlone(AuditStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLiteAudit:
        return SQLiteAudit(tmp_path / "registry.sqlite3")


class TestSQLiteAdvisoriesAlone(AdvisoryStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLiteAdvisories:
        return SQLiteAdvisories(tmp_path / "registry.sqlite3")


class TestSQLiteCountersAlone(CountersStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLiteCounters:
        return SQLiteCounters(tmp_path / "registry.sqlite3")


class TestSQLiteUsageAlone(UsageStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLiteUsage:
        return SQLiteUsage(tmp_path / "registry.sqlite3")


class TestSQLiteUplinkCacheAlone(UplinkCacheStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> SQLiteUplinkCache:
        return SQLiteUplinkCache(tmp_path / "registry.sqlite3")


class TestFileChangeSignal(ChangeSignalContract):
    @pytest.fixture
    def open_signal(self, tmp_path: Path) -> OpenSignal:
        return lambda: FileChangeSignal(tmp_path / "registry.sqlite3-authgen")


class TestFileBlobStore(BlobStoreContract):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> FileBlobStore:
        return FileBlobStore(tmp_path / "blobs")


def test_the_whole_contract_runs_every_test_of_every_concern() -> None:
    # A test name shared by two concern suites would hide one of them in StorageContract.
    names = [n for suite in CONCERNS for n in vars(suite) if n.startswith("test_")]
    assert len(names) == len(set(names))
    assert set(names) <= set(dir(StorageContract))


def test_the_store_is_every_concern_over_one_file(tmp_path: Path) -> None:
    concerns = (SQLitePackages, SQLiteIdentity, SQLiteAudit, SQLiteAdvisories, SQLiteCounters,
                SQLiteUsage)  # fmt: skip
    assert all(issubclass(SQLiteStorage, c) and issubclass(c, SQLiteDatabase) for c in concerns)
    path = tmp_path / "registry.sqlite3"
    SQLiteAudit(path).append_audit(1.0, "a", "x", "t", "ip", {})
    SQLiteAdvisories(path).add_advisory("left-pad", {"title": "t"})
    store = SQLiteStorage(path)
    assert [e.actor for e in store.audit_events()] == ["a"]
    assert [a.package for a in store.advisories()] == ["left-pad"]


def test_a_write_that_changes_no_row_signals_nothing(tmp_path: Path) -> None:
    # Every worker reloads its caches on a bump: a no-op must not cost them that.
    storage = SQLiteStorage(tmp_path / "registry.sqlite3")
    before = storage.auth_version()
    assert not storage.revoke_key("ghost")
    assert not storage.update_key(KeyRecord("ghost", "h", 1, 1.0, None, False))
    assert not storage.remove_block("192.0.2.1")
    assert not storage.remove_user("nobody")
    assert not storage.update_user(UserRecord("nobody", "h", "reader", "", 1.0))
    assert storage.auth_version() == before
    assert storage.add_key(KeyRecord("k", "h", 1, 1.0, None, False))
    assert storage.auth_version() != before


def test_a_failed_write_rolls_back_and_signals_nothing(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "registry.sqlite3")
    before = storage.auth_version()
    with pytest.raises(RuntimeError), storage._transaction(storage.auth_changes) as conn:
        conn.execute("INSERT INTO ip_blocks (ip, reason, created) VALUES ('192.0.2.1', 'x', 1)")
        raise RuntimeError("crash before commit")
    assert storage.list_blocks() == []
    assert storage.auth_version() == before
    assert not storage._conn().in_transaction
    storage.add_counters([("k", "l", 1)])  # the connection is usable again
    assert storage.counters() == [("k", "l", 1)]


def test_the_audit_log_refuses_updates_and_deletes(tmp_path: Path) -> None:
    import sqlite3

    storage = SQLiteStorage(tmp_path / "r.sqlite3")
    storage.append_audit(1.0, "a", "x", "t", "ip", {})
    conn = sqlite3.connect(tmp_path / "r.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'b'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")


def test_a_version_2_database_migrates_and_keeps_its_keys(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for number, script in enumerate(sqlite_module._MIGRATIONS[:2], start=1):
        assert isinstance(script, str)
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute(
        "INSERT INTO api_keys (id, secret_hash, permission, created) VALUES ('admin', 'h', 3, 1)"
    )
    conn.commit()
    conn.close()
    key = SQLiteStorage(path).get_key("admin")
    assert key is not None and key.permission == 3 and key.owner is None and key.cidr == ()


def test_database_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "r.sqlite3")
    assert storage.pragma("journal_mode") == "wal"
    assert storage.pragma("synchronous") == 2  # FULL


def test_reopening_an_existing_database_keeps_its_data(tmp_path: Path) -> None:
    first = SQLiteStorage(tmp_path / "r.sqlite3")
    with first.write() as tx:
        tx.save_package("a", {"v": 1})
    first.close()
    second = SQLiteStorage(tmp_path / "r.sqlite3")
    record = second.package("a")
    assert record is not None and record.doc == {"v": 1}
    assert second.pragma("user_version") == len(sqlite_module._MIGRATIONS)


def test_a_database_from_an_older_schema_is_migrated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_MIGRATIONS", sqlite_module._MIGRATIONS[:1])
    old = SQLiteStorage(tmp_path / "r.sqlite3")
    # a row as the first schema wrote it (no summary column yet)
    old._conn().execute("INSERT INTO packages (name, rev, doc) VALUES ('a', 1, '{}')")
    old.close()
    monkeypatch.undo()
    new = SQLiteStorage(tmp_path / "r.sqlite3")
    assert new.pragma("user_version") == len(sqlite_module._MIGRATIONS)
    assert list(new.summaries()) == [("a", {})]
    record = new.package("a")
    assert record is not None and record.rev == 1


def test_whole_documents_of_schema_9_become_head_and_version_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_MIGRATIONS", sqlite_module._MIGRATIONS[:9])
    old = SQLiteStorage(tmp_path / "r.sqlite3")
    docs = old_shape_documents()
    revs = {name: rev for rev, name in enumerate(docs, start=7)}
    with old._transaction() as conn:
        for name, doc in docs.items():
            conn.execute(
                "INSERT INTO packages (name, rev, doc, summary) VALUES (?, ?, ?, '{}')",
                (name, revs[name], json.dumps(doc)),
            )
    old.close()
    monkeypatch.undo()
    new = SQLiteStorage(tmp_path / "r.sqlite3")
    assert new.pragma("user_version") == len(sqlite_module._MIGRATIONS)
    assert_migrated(new, docs, revs)


def test_each_thread_gets_its_own_connection(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "r.sqlite3")
    main = storage._conn()
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(storage._conn()))
    t.start()
    t.join()
    assert seen and seen[0] is not main


def _child_writes(storage: SQLiteStorage, inherited_id: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    fresh = storage._conn()
    with storage.write() as tx:
        tx.save_package("from-child", {"pid": os.getpid()})
    out.put(id(fresh) != inherited_id)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_opens_its_own_connection_and_its_writes_are_seen(
    tmp_path: Path,
) -> None:
    storage = SQLiteStorage(tmp_path / "r.sqlite3")
    parent_conn = storage._conn()  # opened before the fork, as a preloaded app would
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_writes, args=(storage, id(parent_conn), out))
    child.start()
    assert out.get(timeout=120) is True  # before the join: the child's answer is waited for
    child.join(timeout=120)
    assert child.exitcode == 0
    record = storage.package("from-child")
    assert record is not None and record.doc["pid"] != os.getpid()


def test_sweep_removes_stale_temp_files_too(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    stale = tmp_path / "blobs" / "tmp" / "abc.1.2.tmp"
    stale.write_bytes(b"half a tarball")
    age_file(stale, 7200)
    assert blobs.sweep_orphans(set(), min_age=3600) == 1
    assert not stale.exists()


def test_orphans_are_every_file_but_a_referenced_blob_in_its_place(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    keep = blobs.put(b"referenced")
    root = tmp_path / "blobs"
    temp = root / "tmp" / "x.1.2.tmp"
    temp.write_bytes(b"half")
    foreign = root / "README"
    foreign.write_text("someone's notes")
    h = keep.sha512
    misplaced = root / "objects" / "ff" / h  # right name, wrong place
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes(b"referenced")
    too_deep = root / "objects" / h[:2] / h[2:4] / h  # the older layout, under objects/
    too_deep.parent.mkdir(parents=True)
    too_deep.write_bytes(b"referenced")
    old_misplaced = root / "sha512" / "ff" / "ff" / h  # the older layout, wrong place
    old_misplaced.parent.mkdir(parents=True)
    old_misplaced.write_bytes(b"referenced")
    link = root / "sha512" / "ff" / "link"
    link.symlink_to(tmp_path)
    found = sorted(blobs.orphans({h}, min_age=0))
    assert found == sorted([temp, foreign, misplaced, too_deep, old_misplaced, link])
    assert blobs.sweep_orphans({h}, min_age=0) == 6
    assert tmp_path.exists()  # the link went, not what it pointed at
    # objects/ff, objects/<ab>/<cd>; sha512/ff/ff, sha512/ff and sha512 itself
    assert blobs.prune() == 5
    assert sorted(p.name for p in root.iterdir()) == ["objects", "tmp"]
    assert blobs.read(h) == b"referenced"
    assert blobs.orphans({h}, min_age=0) == []


def test_the_lock_file_sits_beside_the_store(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    with blobs.hold():
        pass
    assert (tmp_path / "blobs.lock").exists()
    assert blobs.orphans(set(), min_age=0) == []


def test_blob_files_are_laid_out_by_hash_prefix(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    info = blobs.put(b"layout")
    h = info.sha512
    assert blobs.path(h) == tmp_path / "blobs" / "objects" / h[:2] / h
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def _legacy_blob(root: Path, data: bytes) -> tuple[str, Path]:
    """A tarball where stores before 2026-11-28 (and restored backups) keep it."""
    h = hashlib.sha512(data).hexdigest()
    place = root / "sha512" / h[:2] / h[2:4] / h
    place.parent.mkdir(parents=True)
    place.write_bytes(data)
    return h, place


def _own_place(root: Path, h: str, data: bytes) -> Path:
    """``data`` written at ``h``'s place in the store's own layout (``objects/ab/<hex>``)."""
    place = root / "objects" / h[:2] / h
    place.parent.mkdir(parents=True)
    place.write_bytes(data)
    return place


@pytest.mark.parametrize("data", [b"from before", b"\x00" * 3])
def test_blobs_in_the_older_layout_are_read_reused_listed_and_deleted_in_place(
    tmp_path: Path, data: bytes
) -> None:
    root = tmp_path / "blobs"
    h, place = _legacy_blob(root, data)
    blobs = FileBlobStore(root)
    assert blobs.path(h) == place
    assert blobs.read(h) == data
    age_file(place, 7200)
    aged = place.stat().st_mtime
    info = blobs.put(data)  # reused where it is: no second copy
    assert info == BlobInfo(h, len(data), created=False)
    assert place.stat().st_mtime > aged + 3600  # its age refreshed for the sweep
    assert list((root / "objects").iterdir()) == []
    assert list(blobs.hashes()) == [h]
    assert blobs.orphans({h}, min_age=0) == []
    assert blobs.orphans(set(), min_age=0) == [place]
    new = blobs.put(b"new bytes")
    assert blobs.path(new.sha512) == root / "objects" / new.sha512[:2] / new.sha512
    assert sorted(blobs.hashes()) == sorted([h, new.sha512])
    assert blobs.delete(h) is True
    assert blobs.path(h) is None
    assert blobs.delete(h) is False


def test_a_blob_in_both_layouts_is_listed_once_and_deleted_from_both(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    h, place = _legacy_blob(root, b"twice")
    copy = _own_place(root, h, b"twice")
    blobs = FileBlobStore(root)
    assert blobs.path(h) == copy  # the store's own layout first
    assert list(blobs.hashes()) == [h]
    assert blobs.orphans({h}, min_age=0) == []
    assert blobs.delete(h) is True
    assert not place.exists() and not copy.exists()


def test_a_wrong_sized_copy_is_written_again_not_passed_over(tmp_path: Path) -> None:
    """A file of another size at the blob's place is not its bytes (a damaged or planted
    file): a put of the bytes replaces it, even with a good copy in the older layout."""
    root = tmp_path / "blobs"
    h, _ = _legacy_blob(root, b"the real bytes")
    _own_place(root, h, b"short")
    blobs = FileBlobStore(root)
    assert blobs.put(b"the real bytes") == BlobInfo(h, 14, created=True)
    assert blobs.read(h) == b"the real bytes"


@pytest.mark.parametrize("planted", ["sha512", "sha512/ab"])
def test_a_foreign_file_where_an_old_directory_belongs_fails_no_put_or_delete(
    tmp_path: Path, planted: str
) -> None:
    """A file where the older layout has a directory: the store looks there only to reuse
    or delete, and goes on without it."""
    root = tmp_path / "blobs"
    blobs = FileBlobStore(root)
    (data,) = _same_prefix("ab")
    foreign = root / planted
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_bytes(b"not a directory")
    info = blobs.put(data)
    assert blobs.read(info.sha512) == data
    assert blobs.delete(info.sha512) is True
    assert blobs.delete(info.sha512) is False


def test_a_foreign_file_where_a_fan_out_directory_belongs_fails_the_put_cleanly(
    tmp_path: Path,
) -> None:
    """A file at ``objects/ab``: a put there cannot place its blob; it says so and leaves
    no temp file, and there is nothing to delete."""
    root = tmp_path / "blobs"
    blobs = FileBlobStore(root)
    (data,) = _same_prefix("ab")
    (root / "objects" / "ab").write_bytes(b"not a directory")
    with pytest.raises(NotADirectoryError):
        blobs.put(data)
    assert list((root / "tmp").iterdir()) == []
    assert blobs.delete(hashlib.sha512(data).hexdigest()) is False


def test_a_put_whose_file_does_not_read_back_places_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import r13core.storage.blobs as blobs_module

    blobs = FileBlobStore(tmp_path / "blobs")
    monkeypatch.setattr(blobs_module, "_digest_fd", lambda fd: "0" * 128)
    with pytest.raises(R13Error, match="did not verify"):
        blobs.put(b"damaged on its way to the disk")
    h = hashlib.sha512(b"damaged on its way to the disk").hexdigest()
    assert blobs.path(h) is None
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_an_adopted_spool_file_reuses_a_blob_of_the_older_layout(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    h, place = _legacy_blob(root, b"an upstream tarball stored before")
    blobs = FileBlobStore(root)
    spooled = blobs.spool_dir() / "up.tgz"
    spooled.write_bytes(b"an upstream tarball stored before")
    assert blobs.put_file(spooled, h).created is False
    assert not spooled.exists()
    assert blobs.path(h) == place
    assert list((root / "objects").iterdir()) == []


@pytest.mark.parametrize("moved", ["objects", "sha512", "tmp"])
def test_the_store_s_own_directories_as_links_are_walked_not_swept(
    tmp_path: Path, moved: str
) -> None:
    """An operator may move objects/, the older sha512/ or tmp/ to another disk and leave
    a link: the sweep walks it, removes what is not a blob there, never the link."""
    elsewhere = tmp_path / "other-disk" / moved
    elsewhere.mkdir(parents=True)
    root = tmp_path / "blobs"
    root.mkdir()
    (root / moved).symlink_to(elsewhere)
    old, _ = _legacy_blob(root, b"from before")  # through the link when sha512/ moved
    blobs = FileBlobStore(root)
    keep = blobs.put(b"kept")
    known = {keep.sha512, old}
    (elsewhere / "stray").write_bytes(b"x")
    assert blobs.orphans(known, min_age=0) == [root / moved / "stray"]
    assert blobs.sweep_orphans(known, min_age=0) == 1
    assert (root / moved).is_symlink()
    assert blobs.read(keep.sha512) == b"kept"
    assert blobs.read(old) == b"from before"


def test_a_blob_whose_two_prefixes_match_is_in_place_in_the_older_layout(
    tmp_path: Path,
) -> None:
    """``sha512/ab/ab/<abab...>``: the older layout, not the new one one level too deep."""
    root = tmp_path / "blobs"
    h = "abab" + "0" * 124
    place = root / "sha512" / "ab" / "ab" / h
    place.parent.mkdir(parents=True)
    place.write_bytes(b"x")
    too_deep = root / "objects" / "ab" / "ab" / h  # the older layout under objects/: not ours
    too_deep.parent.mkdir(parents=True)
    too_deep.write_bytes(b"x")
    blobs = FileBlobStore(root)
    assert blobs.path(h) == place
    assert blobs.orphans({h}, min_age=0) == [too_deep]
    assert list(blobs.hashes()) == [h]


def _same_prefix(h: str, n: int = 1) -> list[bytes]:
    """``n`` byte strings whose sha512 starts with ``h``'s first two hex digits."""
    found = [
        d
        for d in (f"other {i}".encode() for i in range(20_000))
        if hashlib.sha512(d).hexdigest()[:2] == h[:2]
    ]
    return found[:n]


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every directory fsynced from here on (r13core/datadir.py's and the blob store's)."""
    import r13core.datadir as datadir_module
    import r13core.storage.blobs as blobs_module

    calls: list[Path] = []
    real = datadir_module.fsync_dir

    def spy(path: str | os.PathLike[str]) -> None:
        calls.append(Path(path))
        real(path)

    monkeypatch.setattr(datadir_module, "fsync_dir", spy)  # the new directories' parents
    monkeypatch.setattr(blobs_module, "fsync_dir", spy)  # the blob's dir, objects/, the root
    return calls


def test_a_new_blob_makes_its_fan_out_directories_durable(
    tmp_path: Path, synced: list[Path]
) -> None:
    """Every entry on a blob's path is fsynced in its parent before the put returns: the
    store's directories when it is made, the fan-out directory a put creates, the blob's
    own entry after the rename (a crash after the commit loses no tarball); objects/ once
    more at this process's first put (cheap, once, and the same rule as a found one)."""
    root = tmp_path / "blobs"
    blobs = FileBlobStore(root)
    objects = root / "objects"
    assert synced == [tmp_path, root]  # blobs/ in tmp_path, objects/ in blobs/
    synced.clear()
    h = blobs.put(b"durable").sha512
    assert synced == [objects, root, objects / h[:2]]
    synced.clear()
    blobs.put(b"durable")  # already there: nothing made, nothing to sync
    assert synced == []
    (other,) = _same_prefix(h)
    blobs.put(other)  # its fan-out directory exists and was synced here: the rename only
    assert synced == [objects / h[:2]]


def test_a_store_opened_again_syncs_what_it_found_at_its_first_put(
    tmp_path: Path, synced: list[Path]
) -> None:
    """objects/ and objects/ab/ may have been made by another process that has not synced
    their entries yet: a store that finds them fsyncs their parents before relying on
    them, at its first put (nothing when it opens: a reader needs no sync), the root once
    and objects/ at the first put into each ab/."""
    root = tmp_path / "blobs"
    h = hashlib.sha512(b"first").hexdigest()
    (root / "objects" / h[:2]).mkdir(parents=True)  # made elsewhere, never synced here
    blobs = FileBlobStore(root)
    objects = root / "objects"
    assert synced == []
    blobs.put(b"first")
    assert synced == [root, objects, objects / h[:2]]
    synced.clear()
    (other,) = _same_prefix(h)
    blobs.put(other)
    assert synced == [objects / h[:2]]


def test_blocks_from_before_kinds_become_auto_or_manual_by_their_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Migration 5: blocks r13 made itself ("too many ...") are automatic; the rest
    # were an admin's and keep refusing everything.
    monkeypatch.setattr(sqlite_module, "_MIGRATIONS", sqlite_module._MIGRATIONS[:3])
    old = SQLiteStorage(tmp_path / "r.sqlite3")
    conn = old._conn()
    conn.execute("INSERT INTO ip_blocks VALUES ('192.0.2.1', 'too many hostile requests', 1, 9)")
    conn.execute("INSERT INTO ip_blocks VALUES ('192.0.2.2', 'blocked by admin', 1, NULL)")
    old.close()
    monkeypatch.undo()
    kinds = {b.ip: b.kind for b in SQLiteStorage(tmp_path / "r.sqlite3").list_blocks()}
    assert kinds == {"192.0.2.1": "auto", "192.0.2.2": "manual"}
