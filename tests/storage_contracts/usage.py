"""The usage contract: per-package daily counts added in batches and read by range."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from r13core.storage.usage import UsageStorage


class UsageStorageContract:
    """Behaviour of :class:`r13core.storage.usage.UsageStorage` (per-package daily counts)."""

    @pytest.fixture
    def storage(self) -> UsageStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_deltas_add_up_per_package_kind_and_day(self, storage: UsageStorage) -> None:
        storage.add_usage(
            [("2026-11-01", "a", "downloads", 2), ("2026-11-01", "a", "downloads", 3)]
        )
        storage.add_usage(
            [("2026-11-01", "a", "downloads", 1), ("2026-11-01", "a", "publishes", 1)]
        )
        storage.add_usage(
            [("2026-11-02", "a", "downloads", 4), ("2026-11-01", "b", "downloads", 7)]
        )
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-30", package="a") == [
            ("2026-11-01", 6),
            ("2026-11-02", 4),
        ]
        assert storage.usage_days("publishes", "2026-11-01", "2026-11-30", package="a") == [
            ("2026-11-01", 1)
        ]
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-30", package="c") == []

    def test_totals_per_day_sum_every_package(self, storage: UsageStorage) -> None:
        storage.add_usage([
            ("2026-11-01", "a", "downloads", 2),
            ("2026-11-01", "@s/b", "downloads", 5),
            ("2026-11-03", "a", "downloads", 1),
            ("2026-11-01", "a", "unpublishes", 9),
        ])  # fmt: skip
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-30") == [
            ("2026-11-01", 7),
            ("2026-11-03", 1),
        ]

    def test_a_range_is_inclusive_and_excludes_other_days(self, storage: UsageStorage) -> None:
        days = ["2026-10-31", "2026-11-01", "2026-11-15", "2026-11-30", "2026-12-01"]
        storage.add_usage([(d, "a", "downloads", 1) for d in days])
        got = storage.usage_days("downloads", "2026-11-01", "2026-11-30", package="a")
        assert got == [("2026-11-01", 1), ("2026-11-15", 1), ("2026-11-30", 1)]
        assert storage.usage_top("downloads", "2026-11-01", "2026-11-30", 10) == [("a", 3)]

    def test_top_orders_by_count_then_name_and_limits(self, storage: UsageStorage) -> None:
        storage.add_usage([
            ("2026-11-01", "low", "downloads", 1),
            ("2026-11-01", "b-tie", "downloads", 5),
            ("2026-11-02", "a-tie", "downloads", 5),
            ("2026-11-02", "high", "downloads", 3),
            ("2026-11-03", "high", "downloads", 8),
            ("2026-11-03", "publisher", "publishes", 50),
        ])  # fmt: skip
        top = storage.usage_top("downloads", "2026-11-01", "2026-11-30", 3)
        assert top == [("high", 11), ("a-tie", 5), ("b-tie", 5)]
        assert storage.usage_top("publishes", "2026-11-01", "2026-11-30", 3) == [("publisher", 50)]
        assert storage.usage_top("unpublishes", "2026-11-01", "2026-11-30", 3) == []

    def test_a_batch_is_written_whole_or_not_at_all(self, storage: UsageStorage) -> None:
        bad: Any = [("2026-11-01", "a", "downloads", 1), ("2026-11-01", "b", "downloads", None)]
        with pytest.raises(Exception):  # noqa: B017 - each backend raises its own kind
            storage.add_usage(bad)
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-01") == []
        storage.add_usage([])  # nothing to do is fine

    def test_concurrent_batches_lose_no_count(self, storage: UsageStorage) -> None:
        def add() -> None:
            for _ in range(50):
                storage.add_usage([("2026-11-01", "a", "downloads", 1)])

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storage.usage_days("downloads", "2026-11-01", "2026-11-01") == [("2026-11-01", 200)]
