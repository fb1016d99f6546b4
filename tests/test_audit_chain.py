"""The audit log is tamper-evident: a hash chain that
``r13 security audit --verify`` checks, tampered with here through the SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import r13core.storage.sqlite.migrations as sqlite_module
from app.cli import main
from r13core.audit import AuditLog
from r13core.database import open_database
from r13core.storage.base import audit_hash
from r13core.storage.sqlite import SQLiteStorage

EVENTS = 6


def db_path(data: Path) -> Path:
    return data / "registry.sqlite3"


def write_events(data: Path, n: int = EVENTS) -> AuditLog:
    log = AuditLog(open_database(data))
    for i in range(n):
        log.record(f"actor{i}", "key.create", f"k{i}", ip="192.0.2.1", n=i)
    return log


def tamper(data: Path, *statements: str) -> None:
    """Edit the file the way someone with write access to it could (triggers dropped)."""
    with sqlite3.connect(db_path(data)) as db:
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            db.execute(statement)


def verify(data: Path, *extra: str) -> int:
    return main(["--data", str(data), "security", "audit", "--verify", *extra])


def test_an_untouched_chain_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_events(tmp_path)
    report = log.verify()
    assert report.ok and report.checked == EVENTS and report.head is not None
    assert verify(tmp_path) == 0
    out = capsys.readouterr().out
    assert f"{EVENTS} events" in out and f"head {report.head[0]}:{report.head[1]}" in out
    assert verify(tmp_path, "--head", f"{report.head[0]}:{report.head[1]}") == 0


def test_audit_chain_detects_tampering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_events(tmp_path)
    tamper(tmp_path, "UPDATE audit_log SET actor = 'someone-else' WHERE id = 3")
    assert verify(tmp_path) == 1
    err = capsys.readouterr().err
    assert "BROKEN at event 3" in err and "edited" in err
    report = AuditLog(open_database(tmp_path)).verify()
    assert report.broken_at == 3 and report.head is not None and report.head[0] == 2


def test_a_removed_event_breaks_the_next_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_events(tmp_path)
    tamper(tmp_path, "DELETE FROM audit_log WHERE id = 3")
    assert verify(tmp_path) == 1
    assert "BROKEN at event 4" in capsys.readouterr().err
    assert AuditLog(open_database(tmp_path)).verify().reason.startswith("event(s) 3..3")


def test_an_edit_that_rehashes_its_own_event_breaks_the_next(tmp_path: Path) -> None:
    write_events(tmp_path)
    storage = open_database(tmp_path)
    (link,) = [x for x in storage.audit_links() if x.id == 3]
    forged = audit_hash(
        link.prev_hash, 3, link.at, "someone-else", link.action, link.target, link.ip,
        link.detail_text,
    )  # fmt: skip
    tamper(tmp_path, f"UPDATE audit_log SET actor = 'someone-else', hash = '{forged}' WHERE id = 3")
    assert AuditLog(open_database(tmp_path)).verify().broken_at == 4


def test_a_rewritten_tail_or_a_truncation_is_caught_by_a_recorded_head(tmp_path: Path) -> None:
    log = write_events(tmp_path)
    head = log.verify().head
    assert head is not None
    # Someone removes the last two events: the rest is a consistent chain...
    tamper(tmp_path, f"DELETE FROM audit_log WHERE id > {EVENTS - 2}")
    assert AuditLog(open_database(tmp_path)).verify().ok
    # ...but not one that still holds the head recorded before.
    report = AuditLog(open_database(tmp_path)).verify(head=head)
    assert not report.ok and report.broken_at == head[0] and "gone" in report.reason
    assert verify(tmp_path, "--head", f"{head[0]}:{head[1]}") == 1


def test_events_written_before_the_chain_are_chained_by_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = db_path(tmp_path)
    monkeypatch.setattr(sqlite_module, "_MIGRATIONS", sqlite_module._MIGRATIONS[:3])
    SQLiteStorage(path).list_users()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO audit_log (at, actor, action, target, ip, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(float(i), "old", "login", "t", "", "{}") for i in range(4)],
        )
    monkeypatch.undo()
    log = AuditLog(SQLiteStorage(path))
    log.record("new", "login")
    report = log.verify()
    assert report.ok and report.checked == 5
    with pytest.raises(sqlite3.IntegrityError), sqlite3.connect(path) as db:
        db.execute("UPDATE audit_log SET actor = 'x' WHERE id = 1")  # the trigger is back


def test_the_cli_lists_recent_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_events(tmp_path, 3)
    assert main(["--data", str(tmp_path), "security", "audit", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "actor2" in lines[-1]
    assert main(["--data", str(tmp_path), "security", "audit", "--verify", "--head", "x"]) == 2
