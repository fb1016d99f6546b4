"""`r13 keys ...` and what `r13 serve` does before it becomes gunicorn."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.cli import main
from app.cli.serve_cmd import npmrc_lines, prepare
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.settings import Settings


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert main(["--data", data, "keys", "create", "--id", "ci", "--perm", "write"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith("r13_")
    info = KeyStore(open_database(Path(data))).authenticate(secret)
    assert (info.id, info.permission, info.expires) == ("ci", Permission.WRITE, None)

    assert main(["--data", data, "keys", "create", "--id", "tmp", "--perm", "read",
                 "--expires", "2"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["--data", data, "keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ci" in listing and "tmp" in listing and "r13_" not in listing

    assert main(["--data", data, "keys", "revoke", "ci"]) == 0
    assert capsys.readouterr().out.strip() == "revoked ci"
    assert main(["--data", data, "keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_keys_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    assert main(["--data", data, "keys", "revoke", "nobody"]) == 2
    assert capsys.readouterr().err.strip() == "r13: no key 'nobody'"
    assert main(["--data", data, "keys", "create", "--id", "bad id", "--perm", "read"]) == 2
    with pytest.raises(SystemExit):
        main(["--data", data, "keys", "create", "--id", "x", "--perm", "root"])


def test_first_start_creates_everything_and_one_admin_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "new" / "data"
    settings = Settings.from_env({"R13_DATA": str(data), "R13_PUBLIC_URL": "http://h:1/npm/"})
    prepare(settings).release()
    key_file = data / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().strip()
    printed = capsys.readouterr().err
    assert "registry=http://h:1/npm/" in printed
    assert f"//h:1/npm/:_authToken={secret}" in printed
    assert (data / "config.r13").stat().st_size == 13
    assert (data / "registry.sqlite3").exists()
    info = KeyStore(open_database(data)).authenticate(secret)
    assert info.permission is Permission.ADMIN

    prepare(settings).release()  # a restart: no new key, nothing printed
    assert key_file.read_text().strip() == secret
    assert "_authToken" not in capsys.readouterr().err
    assert len(KeyStore(open_database(data)).list()) == 1


def test_npmrc_lines() -> None:
    assert npmrc_lines("https://npm.example.com", "r13_x") == [
        "registry=https://npm.example.com/",
        "//npm.example.com/:_authToken=r13_x",
    ]
