"""What one process remembers between requests, so the hot reads skip work a profile found.

* :class:`TarballRefs` — where a local tarball is (path, size, integrity, ETag) by
  ``(package, filename)``, kept while the storage's package-change signal
  (``packages_version``) stays equal: a tarball GET then makes no SQL query, no version
  parse and no path construction. Any package change, in any process, drops it all.

A publish's early checks and a package's maintainers need no remembered document: they
read the package's head row alone (r13core/storage/package_rows.py).
"""

from __future__ import annotations

import threading
from typing import Final, Generic, TypeVar

from r13core.storage.packages import PackageStorage

K = TypeVar("K")
V = TypeVar("V")

_MAX: Final = 4096


class _Bounded(Generic[K, V]):
    """A dict that forgets everything when it reaches ``limit`` entries (no LRU upkeep)."""

    def __init__(self, limit: int = _MAX) -> None:
        self.limit = limit
        self.items: dict[K, V] = {}

    def put(self, key: K, value: V) -> None:
        if len(self.items) >= self.limit:
            self.items = {}
        self.items[key] = value


class TarballRefs(Generic[V]):
    """``(package, filename)`` → what a tarball GET needs, valid while nothing changed."""

    def __init__(self, storage: PackageStorage, limit: int = _MAX) -> None:
        self._storage = storage
        self._seen_at: object = None
        self._refs: _Bounded[tuple[str, str], V] = _Bounded(limit)
        self._lock = threading.Lock()

    def version(self) -> object:
        """The package-change signal now: read it before looking anything up."""
        return self._storage.packages_version()

    def known(self, version: object, package: str, filename: str) -> V | None:
        """What was remembered at ``version``, or None."""
        with self._lock:
            if version != self._seen_at:
                return None
            return self._refs.items.get((package, filename))

    def remember(self, version: object, package: str, filename: str, value: V) -> None:
        """Remember ``value``, found after reading ``version``."""
        with self._lock:
            if version != self._seen_at:
                self._refs, self._seen_at = _Bounded(self._refs.limit), version
            self._refs.put((package, filename), value)
