"""Storage opened from a URL: the sqlite forms, the refusals, R13_DATABASE_URL end to end."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cli import main
from r13core.database import default_url, open_database
from r13core.errors import InvalidValue
from r13core.keys import Permission
from r13core.services import open_services
from r13core.settings import Settings, SettingsError, StorageSettings
from r13core.storage import open_storage, parse_url, sqlite_url
from r13core.storage.backends import SQLiteTarget
from r13core.storage.sqlite import SQLiteStorage


def test_an_absolute_sqlite_url_opens_that_file_in_a_private_directory(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite://{tmp_path}/db/meta.sqlite3")
    assert isinstance(storage, SQLiteStorage)
    assert storage.path == tmp_path / "db" / "meta.sqlite3"
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o700
    storage.add_counters([("k", "l", 1)])
    assert SQLiteStorage(tmp_path / "db" / "meta.sqlite3").counters() == [("k", "l", 1)]


def test_a_relative_sqlite_url_is_fixed_against_the_directory_it_was_opened_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    storage = open_storage("sqlite:data/meta.sqlite3")
    monkeypatch.chdir(tmp_path / "elsewhere")  # connections open lazily, after this
    storage.add_counters([("k", "l", 1)])
    assert (tmp_path / "data" / "meta.sqlite3").exists()
    assert not (tmp_path / "elsewhere" / "data").exists()


def test_percent_escapes_in_the_path_are_decoded(tmp_path: Path) -> None:
    target = tmp_path / "a b#c?d%e ü.sqlite3"
    storage = open_storage("sqlite://" + quote(str(target)))
    assert isinstance(storage, SQLiteStorage) and storage.path == target


# Any name the file system can give: bytes without NUL, decoded as Python does.
_PATHS = st.one_of(
    st.binary(min_size=1).map(os.fsdecode),
    st.text(st.characters(blacklist_categories=["Cs"]), min_size=1),
).filter(lambda p: "\x00" not in p and not p.endswith("/"))


@given(_PATHS)
def test_every_sqlite_path_survives_the_round_trip_through_its_url(path: str) -> None:
    target = parse_url(sqlite_url(path))
    assert isinstance(target, SQLiteTarget)
    assert target.path == Path(path)


def test_the_scheme_is_read_ignoring_case() -> None:
    target = parse_url("SQLite:///srv/r13/registry.sqlite3")
    assert isinstance(target, SQLiteTarget) and target.path == Path("/srv/r13/registry.sqlite3")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "starts with its scheme"),
        ("/var/r13/registry.sqlite3", "starts with its scheme"),
        ("1sqlite:///x", "starts with its scheme"),
        (
            "mysql://u:secret@db/r13",
            "unknown storage URL scheme 'mysql' (supported: postgres, postgresql, sqlite)",
        ),
        ("postgresql://u:secret@db:port/r13", "not a PostgreSQL storage URL"),
        ("postgres://u:secret@[db/r13", "not a PostgreSQL storage URL"),
        ("postgresql://u:secret@db/r13#x", "takes no fragment"),
        ("sqlite://u:secret@host/registry.sqlite3", "names a file, not a host"),
        ("sqlite:", "must name a file"),
        ("sqlite:///", "must name a file"),
        ("sqlite:///var/r13/", "must name a file"),
        ("sqlite:///var/r13/a%00b", "must name a file"),
        ("sqlite:///var/r13/r.sqlite3?mode=ro", "takes no query or fragment"),
        ("sqlite:///var/r13/r.sqlite3#x", "takes no query or fragment"),
        ("sqlite://[secret/x", "not a sqlite storage URL"),
    ],
)
def test_a_url_r13_cannot_open_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        open_storage(url)
    assert reason in str(caught.value)
    assert "secret" not in str(caught.value)  # credentials are never repeated


def test_the_data_dir_default_is_its_sqlite_file(tmp_path: Path) -> None:
    assert StorageSettings(data_dir=tmp_path).url == f"sqlite://{tmp_path}/registry.sqlite3"
    assert Settings().storage.url == "sqlite:var/registry.sqlite3"
    env = {"R13_DATA": str(tmp_path / "d")}
    assert Settings.from_env(env).storage.url == f"sqlite://{tmp_path}/d/registry.sqlite3"
    assert default_url(tmp_path) == StorageSettings(data_dir=tmp_path).url
    storage = open_database(tmp_path)
    assert isinstance(storage, SQLiteStorage)
    assert storage.path == tmp_path / "registry.sqlite3"


def test_r13_database_url_names_the_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "meta.sqlite3")
    settings = Settings.from_env({"R13_DATA": str(tmp_path / "d"), "R13_DATABASE_URL": url})
    assert settings.storage.database_url == url and settings.storage.url == url
    blank = Settings.from_env({"R13_DATABASE_URL": "  "})
    assert blank.storage.database_url is None and blank.storage.url == "sqlite:var/registry.sqlite3"


def test_a_bad_database_url_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"R13_DATABASE_URL": "postgresql://r13:hunter2@db:54x2/r13"})
    message = str(caught.value)
    assert message.startswith("R13_DATABASE_URL: ")
    assert "not a PostgreSQL storage URL" in message and "hunter2" not in message


def test_the_server_keeps_metadata_where_the_database_url_says(tmp_path: Path) -> None:
    database = tmp_path / "db" / "meta.sqlite3"
    settings = Settings(
        storage=StorageSettings(data_dir=tmp_path / "data", database_url=sqlite_url(database))
    )
    services = open_services(settings)
    services.keys.create("ci", Permission.WRITE, None)
    assert services.registry.storage is services.storage  # one storage; blobs in the data dir
    assert SQLiteStorage(database).get_key("ci") is not None
    assert not (tmp_path / "data" / "registry.sqlite3").exists()
    assert (tmp_path / "data" / "blobs").is_dir()  # tarballs stay in the data dir


def test_the_cli_follows_r13_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "meta.sqlite3"
    monkeypatch.setenv("R13_DATABASE_URL", sqlite_url(database))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    data = tmp_path / "data"
    assert main(["--data", str(data), "users", "add", "alice", "--password-stdin"]) == 0
    assert SQLiteStorage(database).get_user("alice") is not None
    assert not (data / "registry.sqlite3").exists()
    monkeypatch.setenv("R13_DATABASE_URL", "postgresql://r13:hunter2@db:port/r13")
    assert main(["--data", str(data), "users", "list"]) == 2
    err = capsys.readouterr().err
    assert "R13_DATABASE_URL" in err and "not a PostgreSQL" in err and "hunter2" not in err
