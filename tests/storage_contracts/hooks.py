"""The hooks contract: webhooks, the durable queue written by package transactions, claims
with leases and per-(hook, package) order, the delivery log."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from r13core.storage.hooks import DELIVERED, FAILED, PENDING, HookEvent, HookRecord


def hook(hook_id: str, *, owner: str = "alice", kind: str = "package", name: str = "pkg",
         created: int = 1) -> HookRecord:  # fmt: skip
    return HookRecord(
        hook_id, owner, kind, name, "http://hooks.test/in", "s3cret", created, created
    )


def event(package: str, n: int, kind: str = "package:publish") -> HookEvent:
    return HookEvent(package, kind, {"event": kind, "name": package, "n": n, "text": "é"})


class HookStorageContract:
    """Behaviour of :class:`r13core.storage.hooks.HookStorage`, with the package write
    transaction that queues deliveries (the storage is the whole Storage)."""

    @pytest.fixture
    def storage(self) -> Any:
        raise NotImplementedError("a backend's test class provides this fixture")

    @pytest.fixture
    def twin(self, storage: Any) -> Any:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_hooks_round_trip_and_match_by_package_scope_and_owner(self, storage: Any) -> None:
        storage.add_hook(hook("h1", name="pkg", created=1))
        storage.add_hook(hook("h2", kind="scope", name="@acme", created=2))
        storage.add_hook(hook("h3", owner="bob", kind="owner", name="bob", created=3))
        assert [h.id for h in storage.hooks()] == ["h1", "h2", "h3"]
        assert [h.id for h in storage.hooks("bob")] == ["h3"]
        assert storage.hook("h1") == hook("h1", name="pkg", created=1)
        assert storage.hook("nope") is None
        assert [h.id for h in storage.hooks_for("pkg", [])] == ["h1"]
        assert [h.id for h in storage.hooks_for("@acme/x", ["bob"])] == ["h2", "h3"]
        assert storage.hooks_for("@acmex/y", ["carol"]) == []
        changed = storage.update_hook("h1", endpoint="https://e.test/", secret="new", updated_ms=9)
        assert changed is not None
        assert (changed.endpoint, changed.secret, changed.updated_ms) == (
            "https://e.test/",
            "new",
            9,
        )
        assert storage.update_hook("nope", endpoint="x", secret="y", updated_ms=1) is None
        assert storage.remove_hook("h1") is True
        assert storage.remove_hook("h1") is False
        assert [h.id for h in storage.hooks()] == ["h2", "h3"]

    def test_deliveries_commit_and_roll_back_with_the_package_change(self, storage: Any) -> None:
        storage.add_hook(hook("h1"))
        with storage.write() as tx:
            assert tx.any_hooks()
            [found] = tx.hooks_for("pkg", [])
            tx.save_package("pkg", {"name": "pkg", "versions": {}})
            tx.enqueue_hooks([(found, event("pkg", 1)), (found, event("pkg", 2))], 100)
        with pytest.raises(RuntimeError), storage.write() as tx:
            tx.save_package("pkg", {"name": "pkg", "versions": {"2": {}}})
            tx.enqueue_hooks([(found, event("pkg", 3))], 100)
            raise RuntimeError("the change fails after queueing")
        assert storage.queue_counts() == {PENDING: 2, DELIVERED: 0, FAILED: 0}
        [first] = storage.claim(worker="w", now_ms=100, lease_ms=1000, limit=10)
        assert first.body.startswith("{") and '"n":1' in first.body and "é" in first.body
        assert (first.endpoint, first.secret, first.attempts) == (
            "http://hooks.test/in",
            "s3cret",
            1,
        )

    def test_one_hook_sees_one_package_in_order_others_in_parallel(self, storage: Any) -> None:
        storage.add_hook(hook("h1", kind="scope", name="@s"))
        storage.add_hook(hook("h2", kind="scope", name="@s", created=2))
        storage.enqueue([("h1", event("@s/a", 1)), ("h1", event("@s/a", 2))], now_ms=10)
        storage.enqueue([("h1", event("@s/b", 1)), ("h2", event("@s/a", 1))], now_ms=10)
        claimed = storage.claim(worker="w", now_ms=10, lease_ms=1000, limit=10)
        assert sorted((d.hook_id, d.package) for d in claimed) == [
            ("h1", "@s/a"), ("h1", "@s/b"), ("h2", "@s/a")
        ]  # fmt: skip
        head = next(d for d in claimed if (d.hook_id, d.package) == ("h1", "@s/a"))
        assert '"n":1' in head.body
        # The second of h1/@s/a waits for the first, even past the first's lease.
        again = storage.claim(worker="w", now_ms=5000, lease_ms=1000, limit=10)
        assert sorted(d.id for d in again) == sorted(d.id for d in claimed)
        for d in claimed:
            storage.finish(d, worker="w", at_ms=20, status=200, error=None, duration_ms=1.5,
                           outcome=DELIVERED)  # fmt: skip
        later = storage.claim(worker="w", now_ms=10_000, lease_ms=1000, limit=10)
        assert [(d.hook_id, d.package) for d in later] == [("h1", "@s/a")]
        assert '"n":2' in later[0].body

    def test_a_lease_hides_a_claim_until_it_ends_and_a_stale_worker_changes_nothing(
        self, storage: Any
    ) -> None:
        storage.add_hook(hook("h1"))
        [delivery_id] = storage.enqueue([("h1", event("pkg", 1))], now_ms=0)
        [mine] = storage.claim(worker="a", now_ms=0, lease_ms=100, limit=5)
        assert mine.id == delivery_id
        assert storage.claim(worker="b", now_ms=99, lease_ms=100, limit=5) == []
        [again] = storage.claim(worker="b", now_ms=100, lease_ms=100, limit=5)
        assert (again.id, again.attempts) == (delivery_id, 2)
        stale = storage.finish(mine, worker="a", at_ms=150, status=200, error=None,
                               duration_ms=2.0, outcome=DELIVERED)  # fmt: skip
        assert stale is False
        assert storage.queue_counts()[PENDING] == 1
        assert storage.finish(again, worker="b", at_ms=160, status=204, error=None,
                              duration_ms=3.0, outcome=DELIVERED) is True  # fmt: skip
        assert storage.queue_counts() == {PENDING: 0, DELIVERED: 1, FAILED: 0}
        log = storage.attempts(hook_id="h1")
        assert [(a.attempt, a.status) for a in log] == [(2, 204), (1, 200)]
        assert storage.hook("h1").last_status == 204
        assert storage.hook("h1").last_delivery_ms == 160

    def test_retries_wait_for_their_time_and_failure_unblocks_the_next(self, storage: Any) -> None:
        storage.add_hook(hook("h1"))
        storage.enqueue([("h1", event("pkg", 1)), ("h1", event("pkg", 2))], now_ms=0)
        [d] = storage.claim(worker="w", now_ms=0, lease_ms=50, limit=5)
        storage.finish(d, worker="w", at_ms=1, status=None, error="ConnectionRefusedError",
                       duration_ms=0.4, outcome=PENDING, next_ms=500)  # fmt: skip
        assert storage.claim(worker="w", now_ms=499, lease_ms=50, limit=5) == []
        [d] = storage.claim(worker="w", now_ms=500, lease_ms=50, limit=5)
        assert d.attempts == 2 and '"n":1' in d.body
        storage.finish(d, worker="w", at_ms=501, status=500, error=None, duration_ms=1.0,
                       outcome=FAILED)  # fmt: skip
        [d2] = storage.claim(worker="w", now_ms=502, lease_ms=50, limit=5)
        assert '"n":2' in d2.body and d2.attempts == 1
        [record] = storage.deliveries(hook_id="h1", state=FAILED)
        assert (record.attempts, record.last_status, record.done_ms) == (2, 500, 501)
        errors = [a.error for a in storage.attempts(hook_id="h1")]
        assert errors == [None, "ConnectionRefusedError"]

    def test_concurrent_claimers_never_share_a_delivery(self, storage: Any, twin: Any) -> None:
        storage.add_hook(hook("h1", kind="scope", name="@c"))
        storage.enqueue([("h1", event(f"@c/p{i}", i)) for i in range(60)], now_ms=0)
        got: list[list[str]] = [[] for _ in range(4)]
        errors: list[BaseException] = []

        def claimer(n: int) -> None:
            handle = storage if n % 2 else twin
            try:
                while True:
                    batch = handle.claim(worker=f"w{n}", now_ms=0, lease_ms=60_000, limit=3)
                    if not batch:
                        return
                    got[n].extend(d.id for d in batch)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        every = [i for ids in got for i in ids]
        assert len(every) == 60 and len(set(every)) == 60

    def test_removing_a_hook_takes_its_queue_and_log_and_prune_forgets_old_work(
        self, storage: Any
    ) -> None:
        storage.add_hook(hook("h1"))
        storage.add_hook(hook("h2", name="other", created=2))
        storage.enqueue([("h1", event("pkg", 1)), ("h2", event("other", 1))], now_ms=0)
        for d in storage.claim(worker="w", now_ms=0, lease_ms=50, limit=5):
            storage.finish(d, worker="w", at_ms=10, status=200, error=None, duration_ms=1.0,
                           outcome=DELIVERED)  # fmt: skip
        storage.enqueue([("h2", event("other", 2))], now_ms=20)
        assert storage.remove_hook("h1")
        assert storage.deliveries(hook_id="h1") == [] and storage.attempts(hook_id="h1") == []
        assert storage.queue_counts() == {PENDING: 1, DELIVERED: 1, FAILED: 0}
        assert storage.prune_deliveries(before_ms=10) == 0
        assert storage.prune_deliveries(before_ms=11) == 1
        assert storage.queue_counts() == {PENDING: 1, DELIVERED: 0, FAILED: 0}
        assert storage.attempts() == []
        [left] = storage.deliveries()
        assert left.state == PENDING and left.package == "other"
