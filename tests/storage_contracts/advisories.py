"""The advisories contract: advisories added, filtered by package and removed by id."""

from __future__ import annotations

import pytest

from r13core.storage.advisories import AdvisoryStorage


class AdvisoryStorageContract:
    """Behaviour of :class:`r13core.storage.advisories.AdvisoryStorage`."""

    @pytest.fixture
    def storage(self) -> AdvisoryStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_advisories_are_added_filtered_and_removed(self, storage: AdvisoryStorage) -> None:
        first = storage.add_advisory("a", {"title": "one"})
        second = storage.add_advisory("b", {"title": "two"})
        assert first != second
        assert [a.id for a in storage.advisories()] == [first, second]
        only_b = storage.advisories(["b", "zzz"])
        assert [(a.package, a.data) for a in only_b] == [("b", {"title": "two"})]
        assert storage.advisories([]) == []
        assert storage.remove_advisory(first)
        assert not storage.remove_advisory(first)
        assert [a.id for a in storage.advisories()] == [second]

    def test_advisories_for_many_packages_come_back_by_id(self, storage: AdvisoryStorage) -> None:
        # More package names than one statement may bind (backends query in slices).
        ids = [storage.add_advisory(f"p{i}", {"i": i}) for i in range(0, 1200, 7)]
        wanted = [f"p{i}" for i in range(1200)]
        assert [a.id for a in storage.advisories(wanted)] == ids
        assert [a.id for a in storage.advisories(wanted[::-1])] == ids
