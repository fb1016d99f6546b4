"""The PostgreSQL backend: the same storage contracts SQLite passes, plus what only it promises.

One PostgreSQL cluster per session (tests/conftest.py ``pg_server``) and one
database for this module; each test gets a SCHEMA of its own in it (its URL
carries ``options=-csearch_path=<schema>``), migrated from empty and dropped
after the test. A fresh database per test costs a CREATE DATABASE each; a schema
is a fraction of that and isolates just as well (nothing here names a schema).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest

from r13core.errors import InvalidValue, SchemaPending, SchemaTooNew, StorageUnavailable
from r13core.storage import open_storage, parse_url
from r13core.storage.identity import KeyRecord, UserRecord
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
from r13core.storage.postgres.signals import CHANNEL
from r13core.storage.signals import FileChangeSignal
from tests.pgserver import PostgresServer
from tests.storage_contracts import (
    AdvisoryStorageContract,
    AuditStorageContract,
    ChangeSignalContract,
    CountersStorageContract,
    IdentityStorageContract,
    PackageStorageContract,
    StorageContract,
    UplinkCacheStorageContract,
    UsageStorageContract,
)
from tests.storage_contracts.signals import OpenSignal

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
    name = f"t{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(pg_module_db, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield f"{pg_module_db}?options={quote(f'-csearch_path={name}')}"
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


@pytest.fixture
def opened(schema_url: str, tmp_path: Path) -> Iterator[_Opened]:
    opener = _Opened(schema_url, tmp_path / "node")
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
    ctx = multiprocessing.get_context("spawn")
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


def test_a_newer_schema_is_refused_naming_both_versions(opened: _Opened) -> None:
    storage = opened(PostgresStorage)
    storage.add_counters([("k", "l", 1)])
    newer = pg_migrations.latest() + 1
    storage.execute("INSERT INTO r13_schema (version, description) VALUES (%s, 'future')", (newer,))
    late = PostgresStorage(opened.url, data_dir=opened.data_dir)
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
