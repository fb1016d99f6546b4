"""A publish on version rows (r13core/storage/package_rows.py, r13core/registry/publish.py).

The publish reads the package's head and the versions it checks and writes one version
row plus the head; the whole-document path (r13core/registry/changes.py, what every
publish did before) is the reference. The same changes through both, at the same clock,
must store the same document, serve the same bytes and queue the same webhook events;
and what a publish writes does not grow with the package (counted in SQL statements and
head bytes, not timed).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.errors import InvalidPublish
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.registry import publish as publish_module
from r13core.storage.hooks import HookRecord
from r13core.storage.package_rows import ROWS
from tests.npm_builders import open_registry, publish_body

A = PackageName.parse("rows")
ALICE = Actor("alice")
FIRST = 24  # versions before the metadata changes


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Every change's timestamp from one counter (reset per registry by ``restart``)."""
    ticks = itertools.count()

    def fake_now() -> str:
        n = next(ticks)
        return f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000Z"

    monkeypatch.setattr("r13core.registry.publish.now", fake_now)
    monkeypatch.setattr("r13core.registry.changes.now", fake_now)

    def restart() -> None:
        nonlocal ticks
        ticks = itertools.count()

    return restart


def _publish(reg: Registry, version: str, **kw: Any) -> None:
    reg.put_package(A, publish_body("rows", version, **kw), actor=ALICE)


def _edit(reg: Registry, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(reg.packument_for_write(A).body)
    change(doc)
    reg.put_package_rev(A, doc["_rev"], doc, actor=ALICE)


def _history(reg: Registry) -> None:
    """Publishes, a prerelease under ``next``, a deprecation, an unpublish, a tag, more."""
    for i in range(FIRST):
        _publish(reg, f"1.0.{i}", manifest={"description": f"release {i}"})
    _publish(reg, "2.0.0-beta.1", tag="next", manifest={"description": "beta"})
    _edit(reg, lambda d: d["versions"]["1.0.3"].update(deprecated="use 1.0.4"))
    _edit(reg, lambda d: d["versions"].pop("1.0.1"))
    reg.set_dist_tag(A, "stable", "1.0.2", actor=ALICE)
    for i in range(FIRST, FIRST + 4):
        _publish(reg, f"1.0.{i}", manifest={"keywords": ["k", str(i)]})


def _served(reg: Registry) -> tuple[bytes, ...]:
    return (
        reg.packument(A, abbreviated=False).body,
        reg.packument(A, abbreviated=True).body,
        reg.version(A, "latest").body,
        reg.version(A, "next").body,
    )


def _with_hook(reg: Registry) -> Registry:
    reg.storage.add_hook(  # type: ignore[attr-defined]
        HookRecord("h1", "alice", "package", "rows", "http://127.0.0.1:9/", "s", 0, 0)
    )
    return reg


def _queued(reg: Registry) -> list[tuple[str, Any]]:
    """Every queued delivery's event and body, in queue order."""
    rows = reg.storage._conn().execute(  # type: ignore[attr-defined]
        "SELECT e.event, e.body FROM hook_deliveries d JOIN hook_events e ON e.id = d.event_id "
        "ORDER BY d.seq"
    )
    return [(event, json.loads(body)) for event, body in rows]


def test_publishing_on_rows_stores_serves_and_queues_what_the_whole_document_path_does(
    tmp_path: Path, clock: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _with_hook(open_registry(tmp_path / "rows"))
    _history(rows)
    clock()
    whole = _with_hook(open_registry(tmp_path / "whole"))
    with monkeypatch.context() as m:  # every publish the whole-document way
        m.setattr(
            publish_module,
            "_add_version_row",
            lambda tx, plan, head, check_owner, sender: publish_module._whole_document(
                tx, plan, check_owner, sender
            ),
        )
        _history(whole)

    stored = rows.storage.package("rows")
    reference = whole.storage.package("rows")
    assert stored is not None and reference is not None
    assert stored.rev == reference.rev
    assert stored.doc == reference.doc
    assert _served(rows) == _served(whole)
    assert dict(rows.storage.summaries()) == dict(whole.storage.summaries())
    queued = _queued(rows)
    assert queued == _queued(whole)
    assert [e for e, _ in queued].count("package:publish") == FIRST + 5

    full = json.loads(_served(rows)[0])
    expected = [f"1.0.{i}" for i in range(FIRST) if i != 1] + ["2.0.0-beta.1"]
    expected += [f"1.0.{i}" for i in range(FIRST, FIRST + 4)]
    assert list(full["versions"]) == expected
    assert list(full["time"]) == ["created", "modified", *expected]
    assert full["dist-tags"] == {
        "latest": f"1.0.{FIRST + 3}",
        "next": "2.0.0-beta.1",
        "stable": "1.0.2",
    }
    assert full["versions"]["1.0.3"]["deprecated"] == "use 1.0.4"
    assert full["keywords"] == ["k", str(FIRST + 3)]
    head = rows.storage.head("rows")
    assert head is not None and head.layout == ROWS and "versions" not in head.top
    assert rows.storage.existing_versions("rows", [*expected, "1.0.1"]) == set(expected)


def test_what_a_publish_writes_does_not_grow_with_the_package(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)
    conn = reg.storage._conn()  # type: ignore[attr-defined]
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    counts, heads = {}, {}
    for i in range(40):
        statements.clear()
        _publish(reg, f"1.0.{10 + i}")  # same width: the head's latest tag stays as long
        counts[i] = len(statements)
        head = reg.storage.head("rows")
        assert head is not None
        heads[i] = len(json.dumps(head.top))
    conn.set_trace_callback(None)
    assert counts[39] == counts[2]  # as many statements at 39 versions as at 2
    assert heads[39] == heads[2]  # and the head row stays the same size
    assert not any(
        "package_versions" in s and "SELECT" in s and "ORDER BY" in s for s in statements
    )


def test_a_publish_and_its_audit_event_are_one_commit(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)
    _publish(reg, "1.0.0")
    conn = reg.storage._conn()  # type: ignore[attr-defined]
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    _publish(reg, "1.0.1")
    conn.set_trace_callback(None)
    commits = [i for i, s in enumerate(statements) if s.strip().upper() == "COMMIT"]
    audit = [i for i, s in enumerate(statements) if s.startswith("INSERT INTO audit_log")]
    versions = [i for i, s in enumerate(statements) if s.startswith("INSERT INTO package_versions")]
    assert len(commits) == 1 and len(audit) == 1 and len(versions) == 1
    assert versions[0] < audit[0] < commits[0]  # the event is inside the publish's transaction
    events = reg.audit.page(action="publish")["events"]
    assert [(e["target"], e["detail"]["versions"]) for e in events] == [
        ("rows", ["1.0.1"]),
        ("rows", ["1.0.0"]),
    ]
    assert reg.audit.verify().ok


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update({"dist-tags": {"beta": [1]}}), "dist-tag 'beta' points at"),
        (lambda b: b.update({"dist-tags": {"beta": "0.0.9"}}), "unknown version '0.0.9'"),
        (lambda b: b["versions"].update({"0.0.1": {}}), "exactly one new version"),
        (lambda b: b.update({"versions": 5}), "versions must contain"),
    ],
)
def test_a_bad_body_onto_an_existing_package_fails_its_check(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    reg = open_registry(tmp_path)
    _publish(reg, "1.0.0")
    body = publish_body("rows", "1.1.0")
    change(body)
    with pytest.raises(InvalidPublish, match=message):
        reg.put_package(A, body, actor=ALICE)
    assert reg.storage.existing_versions("rows", ["1.0.0", "1.1.0", "0.0.1"]) == {"1.0.0"}
