"""`--data DIR` works before the command and after it, for every command family."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.cli import build_parser, leaf_parsers, main
from r13core.abuse import Blocklist
from r13core.database import open_database
from r13core.keys import KeyStore
from r13core.users import UserStore


def _config(data: Path) -> bool:
    return (data / "config.r13").is_file()


def _keys(data: Path) -> bool:
    return [k.id for k in KeyStore(open_database(data)).list()] == ["ci"]


def _users(data: Path) -> bool:
    return [u.name for u in UserStore(open_database(data)).list()] == ["uma"]


def _security(data: Path) -> bool:
    return [b.ip for b in Blocklist(open_database(data)).active()] == ["10.1.2.3"]


def _serve(data: Path) -> bool:
    return (data / "admin.key").is_file() and (data / "config.r13").is_file()


# One command of each family, and what it leaves in the data dir it was given.
FAMILIES: dict[str, tuple[list[str], Callable[[Path], bool]]] = {
    "config": (["config", "show"], _config),
    "keys": (["keys", "create", "--id", "ci", "--perm", "read"], _keys),
    "users": (["users", "add", "uma", "--password-stdin"], _users),
    "security": (["security", "block", "10.1.2.3"], _security),
    "serve": (["serve"], _serve),
}


EXECS: list[tuple[list[str], dict[str, str]]] = []


@pytest.fixture
def decoy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$R13_DATA points elsewhere: a command that ignored --data would write there."""
    path = tmp_path / "decoy"
    monkeypatch.setenv("R13_DATA", str(path))
    monkeypatch.setattr("sys.stdin", io.StringIO("uma's long password\n"))
    EXECS.clear()
    # `r13 serve` ends by exec'ing gunicorn: record it instead of replacing the test process.
    monkeypatch.setattr(os, "execve", lambda exe, argv, env: EXECS.append((argv, env)))
    return path


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_data_dir_is_taken_before_or_after_the_command(
    tmp_path: Path, decoy: Path, family: str, where: str
) -> None:
    command, made = FAMILIES[family]
    data = tmp_path / "data"
    option = ["--data", str(data)]
    argv = [*option, *command] if where == "before" else [*command, *option]
    assert main(argv) == 0
    assert made(data)
    assert not decoy.exists()
    if family == "serve":
        # gunicorn's workers find the data dir through the environment they are given.
        argv, env = EXECS[0]
        assert env["R13_DATA"] == str(data)
        assert argv[-1] == "app.wsgi:application"


def test_after_the_command_wins_when_both_are_given(tmp_path: Path, decoy: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["--data", str(first), "config", "show", "--data", str(second)]) == 0
    assert _config(second) and not first.exists() and not decoy.exists()


def test_without_data_the_environment_names_the_dir(decoy: Path) -> None:
    assert main(["config", "show"]) == 0
    assert _config(decoy)


def test_every_command_accepts_data_after_it() -> None:
    parser = build_parser()
    leaves = leaf_parsers(parser)
    progs = {leaf.prog for leaf in leaves}
    assert {"r13 config show", "r13 config import", "r13 keys rotate", "r13 users role",
            "r13 security unblock", "r13 serve"} <= progs  # fmt: skip
    for leaf in leaves:
        assert "--data" in leaf._option_string_actions, leaf.prog
        assert "--data DIR" in leaf.format_help(), leaf.prog
