"""The counters contract: shared (kind, label) counts that add up across writers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from r13core.storage.counters import CountersStorage


class CountersStorageContract:
    """Behaviour of :class:`r13core.storage.counters.CountersStorage`."""

    @pytest.fixture
    def storage(self) -> CountersStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_counters_add_up(self, storage: CountersStorage) -> None:
        storage.add_counters([("requests", "GET / 200", 2), ("clients", "1.2.3.4", 1)])
        storage.add_counters([("requests", "GET / 200", 3)])
        assert ("requests", "GET / 200", 5) in storage.counters()

    def test_counters_are_listed_by_kind_then_label(self, storage: CountersStorage) -> None:
        storage.add_counters([("b", "y", 1), ("a", "z", 2), ("b", "x", 3), ("a", "a", 4)])
        storage.add_counters([])  # nothing to do is fine
        assert storage.counters() == [("a", "a", 4), ("a", "z", 2), ("b", "x", 3), ("b", "y", 1)]

    def test_a_counter_batch_is_added_whole_or_not_at_all(self, storage: CountersStorage) -> None:
        bad: Any = [("k", "a", 1), ("k", "b", None)]
        with pytest.raises(Exception):  # noqa: B017 - each backend raises its own kind
            storage.add_counters(bad)
        assert storage.counters() == []

    def test_concurrent_counter_batches_lose_no_count(self, storage: CountersStorage) -> None:
        def add() -> None:
            for _ in range(25):
                storage.add_counters([("requests", "GET / 200", 1), ("clients", "a", 2)])

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storage.counters() == [("clients", "a", 200), ("requests", "GET / 200", 100)]
