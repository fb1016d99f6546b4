"""Backup and restore over PostgreSQL (a real server: tests/pgserver.py), both blob stores.

pg_dump of one snapshot, restored into a new empty database: the restored registry serves
the same packuments, tarballs and keys; a damaged backup is refused and leaves the
database empty (no table, sequence or function), and a database that holds something is
refused naming it.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.cli import main
from r13core.backup import Manifest
from r13core.backup.auto import AutoBackups, backup_name
from r13core.backup.manifest import MANIFEST, seal
from r13core.backup.postgres import DUMP_FILE, AdvisoryLock
from r13core.services import open_services
from r13core.settings import Settings
from tests.pgserver import PostgresServer
from tests.test_backup import NAMES, seed, served

pytestmark = pytest.mark.slow


def env_for(monkeypatch: pytest.MonkeyPatch, url: str, store: str) -> None:
    monkeypatch.setenv("R13_DATABASE_URL", url)
    monkeypatch.setenv("R13_BLOB_STORE", store)
    monkeypatch.setenv("R13_PUBLIC_URL", "http://127.0.0.1:9")


def objects(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' UNION ALL SELECT p.proname FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        ).fetchall()
    return sorted(str(r[0]) for r in rows)


@pytest.fixture(scope="module", params=["database", "files"])
def pg_backup(
    request: pytest.FixtureRequest, pg_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, Path, Path]]:  # fmt: skip
    """(blob store, source URL, source data dir, backup) — seeded once per blob store."""
    store: str = request.param
    root = tmp_path_factory.mktemp(f"pg-{store}")
    url = pg_server.create_database()
    mp = pytest.MonkeyPatch()
    env_for(mp, url, store)
    try:
        seed(root / "data")
        assert main(["--data", str(root / "data"), "backup", str(root / "b"), "--quiet"]) == 0
        yield store, url, root / "data", root / "b"
    finally:
        mp.undo()
        pg_server.drop_database(url)


def test_a_postgres_backup_restores_into_a_new_database_and_serves_the_same(
    pg_backup: tuple[str, str, Path, Path], pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    store, source_url, data, backup = pg_backup
    m = Manifest.read(backup)
    assert m.backend == "postgresql" and m.blob_store == store
    assert m.database == DUMP_FILE and len(m.tarballs) == len(NAMES) + 2
    assert (backup / "blobs").is_dir() == (store == "files")
    env_for(monkeypatch, source_url, store)
    before = served(data)
    env_for(monkeypatch, pg_url, store)
    assert main(["--data", str(tmp_path / "r"), "restore", str(backup), "--quiet"]) == 0
    after = served(tmp_path / "r")
    for key in before:
        if key != "events":
            assert after[key] == before[key], key
    assert after["events"][0] == "backup.restore"
    with open_services(Settings.from_env()) as sv:
        assert sv.storage.blob_refs() == set(m.tarballs)


def _flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def _reseal(backup: Path, change: Any) -> None:
    obj = json.loads((backup / MANIFEST).read_text())
    obj.pop("seal")
    change(obj)
    obj["seal"] = seal(obj)
    (backup / MANIFEST).write_text(json.dumps(obj))


def _truncate_dump_and_rehash(backup: Path) -> None:
    import hashlib

    dump = backup / DUMP_FILE
    os.truncate(dump, dump.stat().st_size * 2 // 3)
    raw = dump.read_bytes()

    def fix(obj: dict[str, Any]) -> None:
        obj["files"][DUMP_FILE] = {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}

    _reseal(backup, fix)


def _change_a_table_digest(backup: Path) -> None:
    def fix(obj: dict[str, Any]) -> None:
        obj["tables"]["packages"]["sha256"] = "0" * 64

    _reseal(backup, fix)


CASES = {
    "flipped byte in the dump": (lambda b: _flip(b / DUMP_FILE), "database.dump is damaged"),
    "truncated dump, manifest rehashed": (_truncate_dump_and_rehash, "database.dump does not load"),
    "rows differ from the manifest": (_change_a_table_digest, "table packages: its rows differ"),
    "edited manifest": (
        lambda b: (b / MANIFEST).write_text((b / MANIFEST).read_text().replace("postgresql",
                                                                              "postgresql ", 1)),
        "was edited or damaged",
    ),
}  # fmt: skip


@pytest.mark.parametrize("pg_backup", ["database"], indirect=True)
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_postgres_backup_is_refused_and_leaves_the_database_empty(
    pg_backup: tuple[str, str, Path, Path], pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str,
) -> None:  # fmt: skip
    import shutil

    store, _, _, backup = pg_backup
    damage, message = CASES[case]
    copy = tmp_path / "b"
    shutil.copytree(backup, copy)
    damage(copy)
    env_for(monkeypatch, pg_url, store)
    target = tmp_path / "r"
    assert main(["--data", str(target), "restore", str(copy), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert objects(pg_url) == []
    assert not target.exists() or list(target.iterdir()) == []


@pytest.mark.parametrize("pg_backup", ["database"], indirect=True)
def test_restore_refuses_a_database_that_holds_something_naming_it(
    pg_backup: tuple[str, str, Path, Path], pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    store, _, _, backup = pg_backup
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE leftover (x int)")
    env_for(monkeypatch, pg_url, store)
    assert main(["--data", str(tmp_path / "r"), "restore", str(backup), "--quiet"]) == 2
    assert "the database is not empty: it holds public.leftover" in capsys.readouterr().err
    assert objects(pg_url) == ["leftover"]


@pytest.mark.parametrize("pg_backup", ["database"], indirect=True)
def test_a_postgres_backup_is_not_restored_into_sqlite(
    pg_backup: tuple[str, str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.delenv("R13_DATABASE_URL", raising=False)
    monkeypatch.delenv("R13_BLOB_STORE", raising=False)
    assert main(["--data", str(tmp_path / "r"), "restore", str(pg_backup[3]), "--quiet"]) == 2
    assert "backup of a postgresql registry" in capsys.readouterr().err


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (a generous bound: never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_one_node_at_a_time_holds_the_cluster_backup_lock(pg_url: str) -> None:
    a, b = AdvisoryLock(pg_url), AdvisoryLock(pg_url)
    try:
        assert a.try_acquire() and a.try_acquire()  # still ours
        assert not b.try_acquire()
        a.release()  # a node that dies drops its connection, and the lock with it
        assert b.try_acquire()
        assert not a.try_acquire()
    finally:
        a.release()
        b.release()


def test_automatic_backups_over_postgres_are_made_by_one_node_and_taken_over(
    pg_url: str, tmp_path: Path
) -> None:
    """Two nodes (data dirs of their own, one backup dir, one database): one backs up; when
    it stops the other takes the cluster's lock, and backs up only when one is due."""
    shared = tmp_path / "shared"
    runs: list[str] = []

    def run(node: str) -> dict[str, Any]:
        runs.append(node)
        path = shared / backup_name(time.time())
        path.mkdir(parents=True)
        (path / MANIFEST).write_text("{}")
        return {"path": str(path)}

    nodes = {
        name: AutoBackups(tmp_path / name, shared, interval=3600,
                          run=functools.partial(run, name), cluster=AdvisoryLock(pg_url),
                          poll=0.02, cluster_poll=0.02)
        for name in ("a", "b")
    }  # fmt: skip
    try:
        nodes["a"].start()
        wait_for(lambda: runs == ["a"] and nodes["a"].in_charge, "node a backs up")
        nodes["b"].start()
        wait_for(lambda: nodes["b"].leading, "node b leads its own data dir")
        assert not nodes["b"].in_charge  # a holds the cluster's lock
        nodes["a"].stop()
        wait_for(lambda: nodes["b"].in_charge, "node b takes over")
        assert runs == ["a"]  # the newest backup is recent: nothing due yet
    finally:
        for node in nodes.values():
            node.stop()
