"""Versioned schemas on both backends: `r13 db status|migrate`, the refusal of a newer schema,
R13_AUTO_MIGRATE at `r13 serve`'s start, and the blob store the settings select."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from app.cli.serve_cmd import prepare
from r13core.errors import SchemaPending, SchemaTooNew
from r13core.services import Services
from r13core.settings import Settings, SettingsError
from r13core.storage.blobs import FileBlobStore
from r13core.storage.postgres.blobs import PgBlobStore
from r13core.storage.sqlite import SQLiteStorage
from r13core.storage.sqlite import migrations as sqlite_migrations
from tests.pgserver import PostgresServer

LATEST = sqlite_migrations.latest()


def _db(data: Path) -> Path:
    return data / "registry.sqlite3"


def _set_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_db_status_and_migrate_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("R13_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    assert main(["--data", str(data), "db", "status"]) == 1
    assert f"schema version 0 of {LATEST}" in capsys.readouterr().out
    assert main(["--data", str(data), "db", "migrate"]) == 0
    assert f"schema version {LATEST}" in capsys.readouterr().out
    assert main(["--data", str(data), "db", "status", "--json"]) == 0
    assert capsys.readouterr().out.strip() == (
        f'{{"version": {LATEST}, "latest": {LATEST}, "pending": 0}}'
    )
    assert main(["--data", str(data), "db", "migrate"]) == 0
    assert "nothing to migrate" in capsys.readouterr().out


def test_a_newer_sqlite_schema_is_refused_naming_both_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("R13_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    storage = SQLiteStorage(_db(data))
    storage.add_counters([("k", "l", 1)])
    storage.close()
    _set_version(_db(data), LATEST + 1)
    assert main(["--data", str(data), "db", "status"]) == 2
    assert "NEWER" in capsys.readouterr().out
    assert main(["--data", str(data), "db", "migrate"]) == 2
    err = capsys.readouterr().err
    assert f"version {LATEST + 1}" in err and f"version {LATEST})" in err
    with pytest.raises(SchemaTooNew):
        SQLiteStorage(_db(data)).counters()
    assert sqlite3.connect(_db(data)).execute("PRAGMA user_version").fetchone()[0] == LATEST + 1


def test_serve_migrates_at_start_or_refuses_a_pending_step_with_auto_migrate_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(sqlite_migrations, "_MIGRATIONS", sqlite_migrations._MIGRATIONS[:5])
    SQLiteStorage(_db(data)).counters()  # an older r13 made this file
    monkeypatch.undo()
    strict = Settings.from_env({"R13_DATA": str(data), "R13_AUTO_MIGRATE": "0"})
    assert not strict.storage.auto_migrate
    with pytest.raises(SchemaPending, match="r13 db migrate"):
        prepare(strict)
    with pytest.raises(SchemaPending):
        SQLiteStorage(_db(data), auto_migrate=False).counters()
    assert sqlite3.connect(_db(data)).execute("PRAGMA user_version").fetchone()[0] == 5
    instance = prepare(Settings.from_env({"R13_DATA": str(data)}))
    instance.release()
    assert sqlite3.connect(_db(data)).execute("PRAGMA user_version").fetchone()[0] == LATEST
    instance = prepare(strict)  # up to date now: starts
    instance.release()


def test_the_blob_store_follows_the_settings(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "data"
    sqlite_default = Services(Settings.from_env({"R13_DATA": str(data)}))
    assert isinstance(sqlite_default.blobs, FileBlobStore)
    assert sqlite_default.blobs.root == data / "blobs"
    sqlite_default.close()
    with pytest.raises(SettingsError, match="needs a PostgreSQL"):
        Settings.from_env({"R13_DATA": str(data), "R13_BLOB_STORE": "database"})
    with pytest.raises(SettingsError, match="database or files"):
        Settings.from_env({"R13_BLOB_STORE": "s3"})
    pg = Services(Settings.from_env({"R13_DATA": str(data), "R13_DATABASE_URL": pg_url}))
    assert isinstance(pg.blobs, PgBlobStore) and pg.blobs.cache_dir == data / "blob-cache"
    pg.close()
    shared = tmp_path / "shared-blobs"
    env = {"R13_DATA": str(data), "R13_DATABASE_URL": pg_url, "R13_BLOB_STORE": "files"}
    files = Services(Settings.from_env({**env, "R13_BLOB_DIR": str(shared)}))
    assert isinstance(files.blobs, FileBlobStore) and files.blobs.root == shared
    files.close()


def test_db_status_and_migrate_on_postgres(
    tmp_path: Path,
    pg_server: PostgresServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from r13core.storage.postgres import migrations as pg_migrations

    url = pg_server.create_database()
    try:
        monkeypatch.setenv("R13_DATABASE_URL", url)
        data = tmp_path / "data"
        latest = pg_migrations.latest()
        assert main(["--data", str(data), "db", "status"]) == 1
        assert f"schema version 0 of {latest}" in capsys.readouterr().out
        assert main(["--data", str(data), "db", "migrate"]) == 0
        out = capsys.readouterr().out
        assert "applied migration(s) 1, 2" in out and f"schema version {latest}" in out
        assert main(["--data", str(data), "db", "status"]) == 0
        pg_server.execute(
            f"INSERT INTO r13_schema (version, description) VALUES ({latest + 1}, 'x')",
            url.rsplit("/", 1)[1],
        )
        assert main(["--data", str(data), "db", "migrate"]) == 2
        err = capsys.readouterr().err
        assert f"version {latest + 1}" in err and "upgrade r13" in err
    finally:
        pg_server.drop_database(url)
