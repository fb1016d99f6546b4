"""The audit contract: an append-only log, chained by hashes, paged newest first."""

from __future__ import annotations

import itertools
import threading

import pytest

from r13core.storage.audit import AUDIT_GENESIS, AuditStorage


class AuditStorageContract:
    """Behaviour of :class:`r13core.storage.audit.AuditStorage`."""

    @pytest.fixture
    def storage(self) -> AuditStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_audit_log_pages_newest_first_and_filters(self, storage: AuditStorage) -> None:
        ids = [storage.append_audit(float(i), "a", f"act{i % 2}", "t", "ip", {"i": i})
               for i in range(5)]  # fmt: skip
        page = storage.audit_events(limit=2)
        assert [e.id for e in page] == ids[:-3:-1]
        assert [e.id for e in storage.audit_events(before=page[-1].id, limit=10)] == ids[2::-1]
        assert {e.action for e in storage.audit_events(action="act1")} == {"act1"}

    def test_audit_events_are_chained(self, storage: AuditStorage) -> None:
        ids = [storage.append_audit(float(i), "a", "act", "t", "ip", {"i": i}) for i in range(3)]
        assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
        links = storage.audit_links()
        assert [link.id for link in links] == ids
        assert links[0].prev_hash == AUDIT_GENESIS
        for before, link in itertools.pairwise(links):
            assert link.prev_hash == before.hash
        assert all(link.hash == link.computed_hash() for link in links)
        assert [link.id for link in storage.audit_links(after=ids[0], limit=1)] == [ids[1]]

    def test_an_event_reads_back_as_written(self, storage: AuditStorage) -> None:
        detail = {"old": [1, None], "new": "ü", "nested": {"k": True}}
        event_id = storage.append_audit(12.5, "alice", "key.create", "ci", "192.0.2.1", detail)
        (event,) = storage.audit_events(actor="alice")
        assert (event.id, event.at, event.actor, event.action, event.target, event.ip) == (
            event_id, 12.5, "alice", "key.create", "ci", "192.0.2.1",
        )  # fmt: skip
        assert event.detail == detail
        assert storage.audit_events(actor="bob") == []

    def test_concurrent_appends_keep_one_gapless_chain(self, storage: AuditStorage) -> None:
        errors: list[BaseException] = []

        def append(n: int) -> None:
            try:
                for i in range(25):
                    storage.append_audit(float(i), f"writer{n}", "act", "t", "ip", {"i": i})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        links = storage.audit_links()
        assert len(links) == 100
        assert [link.id for link in links] == list(range(links[0].id, links[0].id + 100))
        assert links[0].prev_hash == AUDIT_GENESIS
        for before, link in itertools.pairwise(links):
            assert link.prev_hash == before.hash
        assert all(link.hash == link.computed_hash() for link in links)
