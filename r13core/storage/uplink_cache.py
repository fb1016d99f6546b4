"""The uplink cache concern of storage: what r13 keeps of the upstream registry.

A proxied packument has no local rev, so it is keyed by name and kind (full or
abbreviated) and carries the upstream's ETag and the time it was fetched
(docs/uplinks.md): r13 serves it as is until it is older than the uplink's
max age, then revalidates it with ``If-None-Match``. Beside it, for each
version, where the upstream keeps the tarball and the integrity it states
(what a tarball request is checked against), and, once a tarball's bytes
matched that integrity, the blob that holds them (content-addressed in the
same :class:`~r13core.storage.blobs.BlobStore` as local tarballs).

Also here: the admin overrides that let a name the upstream has be published
locally all the same. tests/storage_contracts/uplink_cache.py is the contract.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CachedPackument:
    """A packument as r13 serves it (tarball links rewritten), with the upstream's validators.

    ``body``/``gzip``/``etag`` are r13's rendering; ``upstream_etag`` is what the
    upstream sent (None when it sent none); ``fetched_ms`` is when r13 last
    had it confirmed by the upstream (a 200 or a 304), unix milliseconds.
    """

    name: str
    kind: str
    upstream_etag: str | None
    fetched_ms: int
    body: bytes
    gzip: bytes
    etag: str


@dataclass(frozen=True)
class DistRecord:
    """Where the upstream keeps ``name@version``'s tarball, and what its bytes must hash to.

    ``integrity`` is the packument's SRI string (``sha512-...``; may be empty for
    very old versions, which then rely on ``shasum``, sha1 hex).
    """

    name: str
    version: str
    url: str
    integrity: str
    shasum: str


@dataclass(frozen=True)
class CachedTarball:
    """A proxied tarball whose bytes matched its integrity: the blob that holds them."""

    name: str
    version: str
    sha512: str
    size: int
    fetched_ms: int


@dataclass(frozen=True)
class CacheCounts:
    """Sizes of the cache: packuments (and their bytes), tarballs (and their bytes)."""

    packuments: int
    packument_bytes: int
    tarballs: int
    tarball_bytes: int
    oldest_ms: int | None


class UplinkCacheStorage(Protocol):
    """The uplink cache. Safe across threads and processes; each call is one transaction."""

    @abc.abstractmethod
    def cached_packument(self, name: str, kind: str) -> CachedPackument | None:
        """The cached packument of ``name`` of ``kind`` (``full``/``abbreviated``), or None."""

    @abc.abstractmethod
    def save_packument(self, record: CachedPackument, dists: list[DistRecord]) -> None:
        """Keep ``record`` (replacing the one of its name and kind) and its versions' dists."""

    @abc.abstractmethod
    def touch_packument(self, name: str, kind: str, fetched_ms: int) -> bool:
        """The upstream confirmed the cached copy (304): it is fresh from ``fetched_ms``."""

    @abc.abstractmethod
    def cached_dist(self, name: str, version: str) -> DistRecord | None:
        """Where ``name@version``'s tarball is upstream and its integrity, or None."""

    @abc.abstractmethod
    def cached_tarball(self, name: str, version: str) -> CachedTarball | None:
        """The verified blob of ``name@version``, or None."""

    @abc.abstractmethod
    def save_tarball(self, record: CachedTarball) -> None:
        """Record a verified blob (written and fsynced before this call)."""

    @abc.abstractmethod
    def remove_tarball_entry(self, name: str, version: str) -> bool:
        """Forget a cached tarball (its blob goes with the next sweep if nothing else uses it)."""

    @abc.abstractmethod
    def remove_packument(self, name: str, kind: str) -> bool:
        """Forget one cached packument (its dists stay: tarballs may still be served)."""

    @abc.abstractmethod
    def cached_packuments(self) -> Iterator[tuple[str, str, int, int]]:
        """Every cached packument as ``(name, kind, fetched_ms, bytes)``, by name."""

    @abc.abstractmethod
    def cached_tarballs(self) -> Iterator[CachedTarball]:
        """Every cached tarball, by name and version."""

    @abc.abstractmethod
    def cache_counts(self) -> CacheCounts:
        """How much the cache holds."""

    @abc.abstractmethod
    def add_upstream_override(self, name: str, actor: str, created_ms: int) -> bool:
        """Allow ``name`` to be published although the upstream has it; False if already so."""

    @abc.abstractmethod
    def remove_upstream_override(self, name: str) -> bool:
        """Withdraw the override of ``name``; False if there was none."""

    @abc.abstractmethod
    def upstream_overrides(self) -> list[tuple[str, str, int]]:
        """Every override as ``(name, actor, created_ms)``, by name."""


__all__ = [
    "CacheCounts",
    "CachedPackument",
    "CachedTarball",
    "DistRecord",
    "UplinkCacheStorage",
]
