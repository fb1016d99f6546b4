"""The PostgreSQL backend: the same storage contracts SQLite passes, plus what only it promises.

One PostgreSQL cluster per session (tests/conftest.py ``pg_server``) and one
database for this module. The contract tests share one migrated schema, emptied
before each test (TRUNCATE of every table, sequences restarted: ``opened``); the
tests of migrations get a new empty SCHEMA each (``schema_url``: its URL carries
``options=-csearch_path=<schema>``, dropped after the test). A fresh database,
or a fresh schema migrated, per test cost 0.3-0.5 s each on the shared machine;
emptying the tables costs a fraction of that.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest

from r13core.errors import InvalidValue, R13Error, SchemaPending, SchemaTooNew, StorageUnavailable
from r13core.storage import open_storage, parse_url
from r13core.storage.identity import KeyRecord, UserRecord
from r13core.storage.packages import TarballRecord
from r13core.storage.postgres import (
    NotifyingSignal,
    PgAdvisories,
    PgAudit,
    PgCounters,
    PgDatabase,
    PgIdentity,
    PgPackages,
    PgUplinkCache,
    PgUsage,
    PostgresStorage,
)
from r13core.storage.postgres import migrations as pg_migrations
from r13core.storage.postgres.blobs import CHUNK, ROW_PREFIX, PgBlobStore
from r13core.storage.postgres.signals import CHANNEL
from r13core.storage.signals import FileChangeSignal
from tests.pgserver import PostgresServer
from tests.storage_contracts import (
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
)
from tests.storage_contracts.packages import assert_migrated, old_shape_documents
from tests.storage_contracts.signals import OpenSignal, wait_until

D = TypeVar("D", bound=PgDatabase)
_schemas = itertools.count(1)


@pytest.fixture(scope="module")
def pg_module_db(pg_server: PostgresServer) -> Iterator[str]:
    """One database for this module's tests (each test works in a schema of its own)."""
    url = pg_server.create_database("r13_storage")
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def schema_url(pg_module_db: str) -> Iterator[str]:
    """The URL of a new, empty schema (search_path set by the URL); dropped after the test."""
    name, url = _new_schema(pg_module_db)
    yield url
    with psycopg.connect(pg_module_db, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


class _Opened:
    """Opens handles of one class on the test's schema; closes their pools after the test."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.handles: list[PgDatabase] = []

    def __call__(self, cls: type[D]) -> D:
        handle = cls(self.url, data_dir=self.data_dir, pool_size=4)
        self.handles.append(handle)
        return handle


def _new_schema(database_url: str) -> tuple[str, str]:
    name = f"t{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return name, f"{database_url}?options={quote(f'-csearch_path={name}')}"


@pytest.fixture(scope="module")
def shared_schema(pg_module_db: str) -> Iterator[str]:
    """One migrated schema for the contract tests (emptied before each)."""
    name, url = _new_schema(pg_module_db)
    PgDatabase(url, data_dir=Path(tempfile.mkdtemp(prefix="r13-pg-node-"))).migrate()
    yield url
    with psycopg.connect(pg_module_db, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _empty(url: str) -> None:
    """Every table of the schema emptied, its sequences restarted (the audit log's triggers
    refuse a DELETE: replication role skips them, as the superuser the tests connect as)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'r13_schema'"
            )
        ]
        conn.execute("SET LOCAL session_replication_role = replica")  # no user triggers
        for table in tables:  # DELETE: cheaper than TRUNCATE for a few rows each
            conn.execute(f"DELETE FROM {table}")
        for (seq,) in conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
        ).fetchall():
            conn.execute(f"ALTER SEQUENCE {seq} RESTART")  # identity columns' too


@pytest.fixture
def opened(shared_schema: str, tmp_path: Path) -> Iterator[_Opened]:
    _empty(shared_schema)
    opener = _Opened(shared_schema, tmp_path / "node")
    yield opener
    for handle in opener.handles:
        handle.close()


# -- the contracts: the whole store, then each concern's class alone over the same schema --


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PostgresStorage:
        return opened(PostgresStorage)

    @pytest.fixture
    def twin(self, opened: _Opened, storage: PostgresStorage) -> PostgresStorage:
        return opened(PostgresStorage)


class TestPgPackagesAlone(PackageStorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PgPackages:
        return opened(PgPackages)


class TestPgIdentityAlone(IdentityStorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PgIdentity:
        return opened(PgIdentity)

    @pytest.fixture
    def twin(self, opened: _Opened, storage: PgIdentity) -> PgIdentity:
        return opened(PgIdentity)


class TestPgAuditAlone(AuditStorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PgAudit:
        return opened(PgAudit)


class TestPgAdvisoriesAlone(AdvisoryStorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PgAdvisories:
        return opened(PgAdvisories)


class TestPgCountersAlone(CountersStorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PgCounters:
        return opened(PgCounters)


class TestPgUsageAlone(UsageStorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PgUsage:
        return opened(PgUsage)


class TestPgUplinkCacheAlone(UplinkCacheStorageContract):
    @pytest.fixture
    def storage(self, opened: _Opened) -> PgUplinkCache:
        return opened(PgUplinkCache)


class TestNotifyingSignal(ChangeSignalContract):
    @pytest.fixture
    def open_signal(self, opened: _Opened, tmp_path: Path) -> OpenSignal:
        db = opened(PgDatabase)
        return lambda: NotifyingSignal("auth", FileChangeSignal(tmp_path / "pg-authgen"), db.notify)


# -- what only PostgreSQL promises -------------------------------------------------------


def test_the_store_is_every_concern_over_one_database(opened: _Opened) -> None:
    opened(PgAudit).append_audit(1.0, "a", "x", "t", "ip", {})
    opened(PgAdvisories).add_advisory("left-pad", {"title": "t"})
    store = opened(PostgresStorage)
    assert [e.actor for e in store.audit_events()] == ["a"]
    assert [a.package for a in store.advisories()] == ["left-pad"]


def test_a_write_that_changes_no_row_signals_nothing(opened: _Opened) -> None:
    storage = opened(PostgresStorage)
    before = storage.auth_version()
    assert not storage.revoke_key("ghost")
    assert not storage.update_key(KeyRecord("ghost", "h", 1, 1.0, None, False))
    assert not storage.remove_block("192.0.2.1")
    assert not storage.remove_user("nobody")
    assert not storage.update_user(UserRecord("nobody", "h", "reader", "", 1.0))
    assert storage.auth_version() == before
    assert storage.add_key(KeyRecord("k", "h", 1, 1.0, None, False))
    assert storage.auth_version() != before


def test_a_failed_write_rolls_back_and_signals_nothing(opened: _Opened) -> None:
    storage = opened(PostgresStorage)
    before = storage.auth_version()
    with pytest.raises(RuntimeError), storage.transaction(storage.auth_changes) as txn:
        txn.execute("INSERT INTO ip_blocks (ip, reason, created) VALUES ('192.0.2.1', 'x', 1)")
        raise RuntimeError("crash before commit")
    assert storage.list_blocks() == []
    assert storage.auth_version() == before
    storage.add_counters([("k", "l", 1)])  # the pool's connection is usable again
    assert storage.counters() == [("k", "l", 1)]


def test_the_audit_log_refuses_updates_deletes_and_truncate(opened: _Opened) -> None:
    storage = opened(PostgresStorage)
    storage.append_audit(1.0, "a", "x", "t", "ip", {})
    for sql in ("UPDATE audit_log SET actor = 'b'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            storage.execute(sql)
    assert len(storage.audit_links()) == 1


def test_a_bump_is_committed_then_sent_as_a_notification(opened: _Opened) -> None:
    storage = opened(PostgresStorage)
    signals = storage.signals()
    assert set(signals) == {"auth", "packages"}
    assert signals["auth"] is storage.auth_changes and signals["packages"].name == "packages"
    assert isinstance(signals["auth"].local, FileChangeSignal)
    assert signals["auth"].local.path.parent == opened.data_dir.absolute()
    with storage.connect() as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        with storage.write() as tx:
            tx.save_package("a", {"v": 1})
        storage.revoke_key("ghost")  # changes nothing: no notification
        assert storage.add_key(KeyRecord("k", "h", 1, 1.0, None, False))
        got = [n.payload for n in itertools.islice(listener.notifies(timeout=60), 2)]
    assert got == ["packages", "auth"]


def test_every_node_migrates_once_and_records_each_step(schema_url: str, tmp_path: Path) -> None:
    handles = [PostgresStorage(schema_url, data_dir=tmp_path / f"n{i}") for i in range(3)]
    try:
        for handle in handles:
            assert handle.schema_version() == (0, pg_migrations.latest())
        assert handles[0].migrate() == list(range(1, pg_migrations.latest() + 1))
        assert handles[1].migrate() == []
        handles[2].add_counters([("k", "l", 1)])  # first use: nothing left to migrate
        rows = handles[0].fetchall("SELECT version, description FROM r13_schema ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, pg_migrations.latest() + 1))
        assert rows[0][1] == pg_migrations.MIGRATIONS[0].description
    finally:
        for handle in handles:
            handle.close()


def _migrate_in_child(url: str, data_dir: Path, out: Any) -> None:
    store = PostgresStorage(url, data_dir=data_dir)
    out.put(store.migrate())
    store.close()


def test_nodes_starting_at_once_migrate_exactly_once(schema_url: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    children = [
        ctx.Process(target=_migrate_in_child, args=(schema_url, tmp_path / f"n{i}", out))
        for i in range(4)
    ]
    for child in children:
        child.start()
    applied = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    assert sorted(applied, key=len) == [[], [], [], list(range(1, pg_migrations.latest() + 1))]


def test_a_newer_schema_is_refused_naming_both_versions(schema_url: str, tmp_path: Path) -> None:
    storage = PostgresStorage(schema_url, data_dir=tmp_path)
    storage.add_counters([("k", "l", 1)])
    newer = pg_migrations.latest() + 1
    storage.execute("INSERT INTO r13_schema (version, description) VALUES (%s, 'future')", (newer,))
    storage.close()
    late = PostgresStorage(schema_url, data_dir=tmp_path)
    for attempt in (late.counters, late.migrate):
        with pytest.raises(SchemaTooNew) as caught:
            attempt()
        assert f"version {newer}" in str(caught.value)
        assert f"version {pg_migrations.latest()}" in str(caught.value)
    late.close()


def test_without_auto_migrate_a_pending_step_is_refused(
    schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_migrations, "MIGRATIONS", pg_migrations.MIGRATIONS[:1])
    old = PostgresStorage(schema_url, data_dir=tmp_path)
    old.add_counters([("k", "l", 1)])
    old.close()
    monkeypatch.undo()
    strict = PostgresStorage(schema_url, data_dir=tmp_path, auto_migrate=False)
    with pytest.raises(SchemaPending, match="r13 db migrate"):
        strict.counters()
    assert strict.migrate() == list(range(2, pg_migrations.latest() + 1))
    assert strict.counters() == [("k", "l", 1)]  # migrated in place, data kept
    strict.close()


def test_whole_documents_of_step_4_become_head_and_version_rows(
    schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_migrations, "MIGRATIONS", pg_migrations.MIGRATIONS[:4])
    old = PostgresStorage(schema_url, data_dir=tmp_path)
    docs = old_shape_documents()
    revs = {name: rev for rev, name in enumerate(docs, start=7)}
    with old.transaction() as txn:
        for name, doc in docs.items():
            txn.execute(
                "INSERT INTO packages (name, rev, doc, summary) VALUES (%s, %s, %s, '{}')",
                (name, revs[name], json.dumps(doc)),
            )
    old.close()
    monkeypatch.undo()
    new = PostgresStorage(schema_url, data_dir=tmp_path)
    assert_migrated(new, docs, revs)
    new.close()


def test_postgres_urls_open_a_postgres_storage_and_never_show_the_password(
    tmp_path: Path,
) -> None:
    url = "postgresql://r13:hunter2@127.0.0.1:1/r13?connect_timeout=1"
    target = parse_url(url)
    assert "hunter2" not in repr(target)
    storage = open_storage(url, data_dir=tmp_path)
    assert isinstance(storage, PostgresStorage)
    assert storage.display_url == "postgresql://r13:***@127.0.0.1:1/r13?connect_timeout=1"
    with pytest.raises(StorageUnavailable) as caught:  # nothing listens on port 1
        storage.counters()
    assert "hunter2" not in str(caught.value)
    with pytest.raises(InvalidValue) as bad:
        open_storage("postgres://r13:hunter2@db:nope/r13")
    assert "hunter2" not in str(bad.value)


# -- the blob store in the database --------------------------------------------------------


class TestPgBlobStore(BlobStoreContract):
    @pytest.fixture
    def blobs(self, opened: _Opened, tmp_path: Path) -> PgBlobStore:
        return PgBlobStore(opened(PgDatabase), tmp_path / "blob-cache")


def test_a_blob_of_many_chunks_streams_into_a_verified_node_copy(
    opened: _Opened, tmp_path: Path
) -> None:
    db = opened(PgDatabase)
    node_a = PgBlobStore(db, tmp_path / "a")
    node_b = PgBlobStore(opened(PgDatabase), tmp_path / "b")
    data = os.urandom(CHUNK * 3 + 123)
    info = node_a.put(data)
    assert info.created and info.size == len(data)
    assert db.fetchone("SELECT chunks, size FROM blobs") == (4, len(data))
    copy = node_b.path(info.sha512)  # the other node had never seen it
    assert copy is not None and copy.read_bytes() == data
    assert copy.is_relative_to(tmp_path / "b")
    assert list((tmp_path / "b" / "tmp").iterdir()) == []
    spooled = node_b.spool_dir() / "up.tgz"
    spooled.write_bytes(data[::-1])
    other = node_b.put_file(spooled, hashlib.sha512(data[::-1]).hexdigest())
    assert not spooled.exists() and node_a.read(other.sha512) == data[::-1]
    with pytest.raises(R13Error, match="did not verify"):
        bad = node_b.spool_dir() / "bad.tgz"
        bad.write_bytes(b"not what the caller hashed")
        node_b.put_file(bad, "0" * 128)
    assert set(node_a.hashes()) == {info.sha512, other.sha512}


def test_node_copies_of_the_former_layout_are_not_read_and_are_swept(
    opened: _Opened, tmp_path: Path
) -> None:
    """A node's copies made before 2026-11-28 (``sha512/ab/cd/<hex>``) are a cache: the
    first read fetches the blob again into ``objects/ab/<hex>``, the sweep removes the old
    copy, and prune the old tree."""
    cache = tmp_path / "cache"
    blobs = PgBlobStore(opened(PgDatabase), cache)
    info = blobs.put(b"cached before")
    h = info.sha512
    former = cache / "sha512" / h[:2] / h[2:4] / h
    former.parent.mkdir(parents=True)
    former.write_bytes(b"cached before")
    copy = blobs.path(h)
    assert copy == cache / "objects" / h[:2] / h and copy.read_bytes() == b"cached before"
    assert blobs.orphans({h}, min_age=0) == [former]
    assert blobs.remove_orphans([former], {h}, min_age=0) == 1
    assert blobs.prune() == 3  # sha512/ab/cd, sha512/ab, sha512
    assert sorted(p.name for p in cache.iterdir()) == ["objects", "tmp"]
    assert blobs.path(h) == copy


def test_an_orphan_row_of_a_publish_that_died_is_swept_everywhere(
    opened: _Opened, tmp_path: Path
) -> None:
    from r13core.registry import maintenance

    storage = opened(PostgresStorage)
    blobs = PgBlobStore(storage, tmp_path / "cache")
    other_node = PgBlobStore(opened(PgDatabase), tmp_path / "other")
    kept = blobs.put(b"committed")
    with storage.write() as tx:  # the publish that committed
        tx.add_tarball(TarballRecord("a", "1.0.0", kept.sha512, kept.size))
    died = blobs.put(b"a publish that died before its commit")
    assert blobs.path(died.sha512) is not None  # this node had a copy too
    assert other_node.path(kept.sha512) is not None
    assert ROW_PREFIX / died.sha512 in blobs.orphans({kept.sha512}, min_age=0)
    assert maintenance.sweep(storage, blobs, min_age=3600, alone=False) == 0  # too fresh
    assert maintenance.sweep(storage, other_node, min_age=0, alone=False) == 1  # any node
    assert blobs.read(died.sha512) is None
    assert maintenance.sweep(storage, blobs, min_age=0, alone=True) == 1  # its stale copy
    assert blobs.path(died.sha512) is None
    assert blobs.read(kept.sha512) == b"committed"
    assert other_node.path(kept.sha512) is not None
    assert storage.fetchone("SELECT count(*) FROM blob_chunks")[0] == 1


def test_a_sweep_on_one_node_waits_for_a_hold_on_another(opened: _Opened, tmp_path: Path) -> None:
    holder = PgBlobStore(opened(PgDatabase), tmp_path / "a")
    sweeper = PgBlobStore(opened(PgDatabase), tmp_path / "b")
    swept = threading.Event()

    def sweep() -> None:
        with sweeper.sweeping():
            swept.set()

    with holder.hold():
        thread = threading.Thread(target=sweep)
        thread.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        wait_until(lambda: holder.db.fetchone(waiting)[0] == 1)
        assert not swept.is_set()
    thread.join(timeout=120)
    assert swept.is_set()


# -- two nodes publishing to one package at once ----------------------------------------------


def _publisher(
    url: str, data_dir: Path, versions: list[tuple[str, str]], start: Any, out: Any
) -> None:
    from r13core.audit import Actor
    from r13core.errors import Conflict
    from r13core.names import PackageName
    from r13core.registry import Registry
    from tests.npm_builders import PUBLIC_URL, LiveConfig, publish_body

    storage = PostgresStorage(url, data_dir=data_dir)
    registry = Registry(
        storage, PgBlobStore(storage, data_dir / "blobs"), public_url=PUBLIC_URL,
        config=LiveConfig(),
    )  # fmt: skip
    bodies = [(name, version, publish_body(name, version)) for name, version in versions]
    storage.counts()  # connected and migrated before the race starts
    results = []
    for name, version, body in bodies:
        start.wait(timeout=120)
        try:
            registry.put_package(PackageName.parse(name), body, actor=Actor("alice"))
            results.append((name, version, "ok"))
        except Conflict:
            results.append((name, version, "409"))
    storage.close()
    out.put(results)


def test_two_nodes_publishing_one_package_at_once_keep_both_versions_or_409(
    opened: _Opened, tmp_path: Path
) -> None:
    rounds = 15
    storage = opened(PostgresStorage)
    storage.counts()  # migrate once, before the nodes start
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(2), ctx.Queue()
    plans = [
        [(f"race-{i}", f"1.0.{i}") for i in range(rounds)],
        [(f"race-{i}", f"2.0.{i}") for i in range(rounds)],
    ]
    nodes = [
        ctx.Process(
            target=_publisher, args=(opened.url, tmp_path / f"node{n}", plans[n], start, out)
        )
        for n in range(2)
    ]
    for node in nodes:
        node.start()
    results = [r for _ in nodes for r in out.get(timeout=300)]
    for node in nodes:
        node.join(timeout=120)
        assert node.exitcode == 0
    accepted = [(name, version) for name, version, status in results if status == "ok"]
    assert len(results) == 2 * rounds
    assert len(accepted) >= rounds  # at most one of each round may lose, never both
    for i in range(rounds):
        record = storage.package(f"race-{i}")
        assert record is not None
        versions = set(record.doc["versions"])
        mine = {version for name, version in accepted if name == f"race-{i}"}
        assert versions == mine  # every acknowledged version, nothing else
        for version in versions:
            row = storage.tarball(f"race-{i}", version)
            assert row is not None and storage.used_version(f"race-{i}", version) == row.sha512
        assert record.doc["dist-tags"]["latest"] in versions


# -- under gevent (what gunicorn's gevent worker does to a process) ----------------------------

_GEVENT_PROBE = r"""
from gevent import monkey
monkey.patch_all()
import sys, gevent
from r13core.storage.postgres import PostgresStorage

store = PostgresStorage(sys.argv[1], data_dir=sys.argv[2], pool_size=4)
store.counts()
holder = store.connect()  # another session holds the lock the slow query waits for
holder.execute("SELECT pg_advisory_lock(4242)")
ticks = []

def slow():
    with store.connection() as conn:
        conn.execute("SET lock_timeout = '120s'")
        conn.execute("SELECT pg_advisory_lock(4242)")  # parks here until released
        conn.execute("SELECT pg_advisory_unlock(4242)")
    return len(ticks)

def ticker():
    while len(ticks) < 20:  # other greenlets of the worker keep running meanwhile
        ticks.append(1)
        gevent.sleep(0.001)
    store.package("x")  # and they can use the pool too
    holder.execute("SELECT pg_advisory_unlock(4242)")

waiter = gevent.spawn(slow)
gevent.joinall([waiter, gevent.spawn(ticker)], raise_error=True)
print("ticks-before-the-slow-query-returned", waiter.value)
"""


def test_a_query_waiting_in_the_database_does_not_stop_other_greenlets(
    schema_url: str, tmp_path: Path
) -> None:
    # If psycopg waited in C, the ticker would never run, the lock would never be
    # released and the slow query would fail at its lock_timeout.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _GEVENT_PROBE, schema_url, str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "20"


def test_a_lost_session_is_storage_unavailable_and_the_next_call_reconnects(
    opened: _Opened,
) -> None:
    storage = opened(PostgresStorage)
    storage.add_counters([("k", "l", 1)])
    with storage.connect() as admin:  # end every other session of this database
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(StorageUnavailable) as caught:
        storage.counters()
    assert str(caught.value).startswith("PostgreSQL at postgresql://postgres@127.0.0.1:")
    wait_until(lambda: _answers(storage))
    assert storage.counters() == [("k", "l", 1)]


def _answers(storage: PostgresStorage) -> bool:
    try:
        storage.counters()
    except StorageUnavailable:
        return False
    return True
