"""The uplink cache contract: proxied packuments, dists, verified tarballs, overrides.

A backend's test class mixes in :class:`UplinkCacheStorageContract` and provides a
``storage`` fixture giving a fresh, empty store (tests/test_storage_sqlite.py).
"""

from __future__ import annotations

import threading
from typing import Final

import pytest

from r13core.storage.uplink_cache import (
    CachedPackument,
    CachedTarball,
    DistRecord,
    UplinkCacheStorage,
)

SHA_C: Final = "c" * 128
SHA_D: Final = "d" * 128


def packument(
    name: str, kind: str = "full", fetched: int = 1000, etag: str = '"u1"'
) -> CachedPackument:
    body = f'{{"name":"{name}","at":{fetched}}}'.encode()
    return CachedPackument(name, kind, etag, fetched, body, b"gz:" + body, '"r13"')


def dist(name: str, version: str) -> DistRecord:
    return DistRecord(name, version, f"https://up/{name}/-/{name}-{version}.tgz", "sha512-x", "ab")


class UplinkCacheStorageContract:
    """Behaviour of :class:`r13core.storage.uplink_cache.UplinkCacheStorage`."""

    @pytest.fixture
    def storage(self) -> UplinkCacheStorage:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_an_uncached_packument_reads_as_none(self, storage: UplinkCacheStorage) -> None:
        assert storage.cached_packument("a", "full") is None
        assert storage.cached_dist("a", "1.0.0") is None
        assert storage.cached_tarball("a", "1.0.0") is None

    def test_a_packument_round_trips_by_name_and_kind(self, storage: UplinkCacheStorage) -> None:
        full, short = packument("a"), packument("a", "abbreviated", etag=None)  # type: ignore[arg-type]
        storage.save_packument(full, [dist("a", "1.0.0")])
        storage.save_packument(short, [])
        assert storage.cached_packument("a", "full") == full
        assert storage.cached_packument("a", "abbreviated") == short
        assert storage.cached_dist("a", "1.0.0") == dist("a", "1.0.0")

    def test_saving_again_replaces_the_packument_and_updates_dists(
        self, storage: UplinkCacheStorage
    ) -> None:
        storage.save_packument(packument("a", fetched=1), [dist("a", "1.0.0")])
        newer = packument("a", fetched=2, etag='"u2"')
        moved = DistRecord("a", "1.0.0", "https://elsewhere/a.tgz", "sha512-y", "cd")
        storage.save_packument(newer, [moved, dist("a", "2.0.0")])
        assert storage.cached_packument("a", "full") == newer
        assert storage.cached_dist("a", "1.0.0") == moved
        assert storage.cached_dist("a", "2.0.0") == dist("a", "2.0.0")

    def test_a_304_moves_the_fetch_time_forward_only(self, storage: UplinkCacheStorage) -> None:
        storage.save_packument(packument("a", fetched=100), [])
        assert storage.touch_packument("a", "full", 500)
        assert storage.touch_packument("a", "full", 300)
        cached = storage.cached_packument("a", "full")
        assert cached is not None and cached.fetched_ms == 500
        assert not storage.touch_packument("absent", "full", 1)

    def test_tarball_entries_are_saved_found_and_removed(self, storage: UplinkCacheStorage) -> None:
        entry = CachedTarball("a", "1.0.0", SHA_C, 42, 7)
        storage.save_tarball(entry)
        assert storage.cached_tarball("a", "1.0.0") == entry
        assert list(storage.cached_tarballs()) == [entry]
        assert storage.remove_tarball_entry("a", "1.0.0")
        assert not storage.remove_tarball_entry("a", "1.0.0")
        assert storage.cached_tarball("a", "1.0.0") is None

    def test_removing_a_packument_keeps_its_dists(self, storage: UplinkCacheStorage) -> None:
        storage.save_packument(packument("a"), [dist("a", "1.0.0")])
        assert storage.remove_packument("a", "full")
        assert not storage.remove_packument("a", "full")
        assert storage.cached_packument("a", "full") is None
        assert storage.cached_dist("a", "1.0.0") is not None

    def test_listings_and_counts_cover_everything_cached(self, storage: UplinkCacheStorage) -> None:
        assert storage.cache_counts().packuments == 0
        assert storage.cache_counts().oldest_ms is None
        storage.save_packument(packument("b", fetched=20), [])
        storage.save_packument(packument("a", fetched=30), [])
        storage.save_tarball(CachedTarball("a", "1.0.0", SHA_C, 10, 5))
        storage.save_tarball(CachedTarball("b", "1.0.0", SHA_D, 32, 40))
        listed = list(storage.cached_packuments())
        assert [(n, k, t) for n, k, t, _ in listed] == [("a", "full", 30), ("b", "full", 20)]
        counts = storage.cache_counts()
        assert (counts.packuments, counts.tarballs, counts.tarball_bytes) == (2, 2, 42)
        assert counts.packument_bytes == sum(size for *_, size in listed)
        assert counts.oldest_ms == 5

    def test_upstream_overrides_are_added_once_and_withdrawn(
        self, storage: UplinkCacheStorage
    ) -> None:
        assert storage.add_upstream_override("left-pad", "root", 1)
        assert not storage.add_upstream_override("left-pad", "other", 2)
        assert storage.add_upstream_override("@a/b", "root", 3)
        assert storage.upstream_overrides() == [("@a/b", "root", 3), ("left-pad", "root", 1)]
        assert storage.remove_upstream_override("left-pad")
        assert not storage.remove_upstream_override("left-pad")
        assert storage.upstream_overrides() == [("@a/b", "root", 3)]

    def test_concurrent_savers_of_one_packument_leave_one_whole_record(
        self, storage: UplinkCacheStorage
    ) -> None:
        def save(n: int) -> None:
            for i in range(10):
                storage.save_packument(
                    packument("a", fetched=n * 100 + i), [dist("a", f"{n}.{i}.0")]
                )

        threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cached = storage.cached_packument("a", "full")
        assert cached is not None
        assert cached.body == packument("a", fetched=cached.fetched_ms).body
        assert all(storage.cached_dist("a", f"{n}.{i}.0") for n in range(4) for i in range(10))
