"""`r13 users ...`, `r13 security ...`, key options, and the audit events the CLI leaves."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.cli import main
from r13core.abuse import Blocklist
from r13core.audit import AuditLog
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.users import Role, UserStore


def run(data: Path, *args: str) -> int:
    return main(["--data", str(data), *args])


def actions(data: Path) -> list[str]:
    events = AuditLog(open_database(data)).page(limit=100)["events"]
    return [e["action"] for e in reversed(events)]


def test_users_add_list_passwd_role_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first password\n"))
    assert run(tmp_path, "users", "add", "alice", "--role", "reader", "--password-stdin") == 0
    users = UserStore(open_database(tmp_path))
    assert users.authenticate("alice", "first password").role is Role.READER
    assert run(tmp_path, "users", "list") == 0
    assert "alice" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("second password\n"))
    assert run(tmp_path, "users", "passwd", "alice", "--password-stdin") == 0
    users.authenticate("alice", "second password")
    assert run(tmp_path, "users", "role", "alice", "admin") == 0
    assert users.get("alice").role is Role.ADMIN
    keys = KeyStore(open_database(tmp_path))
    _, secret = keys.create("alice-1", Permission.ADMIN, None, owner="alice")
    assert run(tmp_path, "users", "remove", "alice") == 0
    with pytest.raises(Exception, match="invalid"):
        keys.authenticate(secret)
    assert run(tmp_path, "users", "remove", "alice") == 2
    assert actions(tmp_path) == ["user.add", "user.passwd", "user.role", "user.remove"]


def test_security_block_blocks_unblock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "security", "block", "::ffff:192.0.2.7", "--minutes", "5") == 0
    assert Blocklist(open_database(tmp_path)).blocked("192.0.2.7") is not None
    assert run(tmp_path, "security", "blocks") == 0
    assert "192.0.2.7" in capsys.readouterr().out
    assert run(tmp_path, "security", "unblock", "192.0.2.7") == 0
    assert Blocklist(open_database(tmp_path)).blocked("192.0.2.7") is None
    assert run(tmp_path, "security", "unblock", "192.0.2.7") == 2
    assert actions(tmp_path) == ["ip.block", "ip.unblock"]


def test_keys_with_limits_scopes_owner_and_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    UserStore(open_database(tmp_path)).add("bob", "bob's password", Role.PUBLISHER)
    assert run(tmp_path, "keys", "create", "--id", "ci", "--perm", "write", "--rate-limit", "9",
               "--cidr", "10.0.0.0/8", "--packages", "@acme/*", "--owner", "bob") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "owner bob" in out and "limit 9" in out and "@acme/*" in out
    old = out.strip().splitlines()[-1]
    info = KeyStore(open_database(tmp_path)).authenticate(old)
    assert info.permission is Permission.WRITE  # bob is a publisher
    assert run(tmp_path, "keys", "rotate", "ci") == 0
    new = capsys.readouterr().out.strip().splitlines()[-1]
    assert new != old and KeyStore(open_database(tmp_path)).authenticate(new).id == "ci"
    assert run(tmp_path, "keys", "create", "--id", "x", "--perm", "read", "--owner", "ghost") == 2
    assert actions(tmp_path) == ["key.create", "key.rotate"]


def test_keys_create_count_makes_n_keys_in_one_audited_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "keys", "create", "--id", "runner", "--perm", "read", "--count", "3",
               "--expires", "7") == 0  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    keys = KeyStore(open_database(tmp_path))
    assert [keys.authenticate(secret).id for secret in lines[1::2]] == [
        "runner-1",
        "runner-2",
        "runner-3",
    ]
    events = AuditLog(open_database(tmp_path)).page(limit=10)["events"]
    assert [(e["action"], e["target"]) for e in events] == [("key.create", "runner-1..runner-3")]
    assert events[0]["detail"]["ids"] == ["runner-1", "runner-2", "runner-3"]
    # A taken id stores none of the batch; a count out of range is refused.
    assert run(tmp_path, "keys", "create", "--id", "runner", "--perm", "read", "--count", "4") == 2
    assert run(tmp_path, "keys", "create", "--id", "x", "--perm", "read", "--count", "0") == 2
    assert [k.id for k in keys.list()] == ["runner-1", "runner-2", "runner-3"]


def test_config_changes_are_audited_with_old_and_new_bytes(tmp_path: Path) -> None:
    assert run(tmp_path, "config", "enable", "DEBUG") == 0
    assert run(tmp_path, "config", "show") == 0
    (event,) = AuditLog(open_database(tmp_path)).page()["events"]
    assert event["action"] == "config.change" and event["detail"]["old"] != event["detail"]["new"]


def test_serve_refuses_bad_security_settings_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"package": "*", "access": "$everyone"}]')
    monkeypatch.setenv("R13_ACCESS_RULES", str(rules))
    assert run(tmp_path / "data", "serve") == 2
    err = capsys.readouterr().err
    assert "R13_ACCESS_RULES" in err and "$everyone" in err and len(err.splitlines()) == 1
