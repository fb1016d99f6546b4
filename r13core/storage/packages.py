"""The packages concern of storage: documents, tarball rows, tombstones, renders.

One JSON document per package (the registry's own shape, see
r13core/registry/) with a change counter ``rev`` — stored as a small head row
plus one row per version (r13core/storage/package_rows.py), so a publish reads
and writes only what it touches while every other reader still gets the whole
document — the tarball rows that point into the blob store
(r13core/storage/blobs.py), the set of every version ever published
(tombstones, so a version is never reused), a search summary per package and
cached packument renders. Writes happen inside :meth:`PackageStorage.write`,
one exclusive transaction; its commit is the publish point.

``rev`` values come from one counter shared by all packages of a store and
only grow, so ``(name, rev)`` never names two different states, even when a
package is deleted and published again; caches keyed by it stay correct in
every process. tests/storage_contracts/packages.py is the contract.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from r13core.storage.hooks import HookEvent, HookRecord
from r13core.storage.package_rows import PackageHead, VersionRow

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class PackageRecord:
    """A package's stored document and the rev of the change that wrote it."""

    name: str
    rev: int
    doc: JSONDict


@dataclass(frozen=True)
class TarballRecord:
    """A published version's tarball: the blob's sha512 (hex) and size."""

    name: str
    version: str
    sha512: str
    size: int


@dataclass(frozen=True)
class RenderRecord:
    """Cached packument bytes for one package state.

    ``key`` says what else the bytes depend on (the public URL), so a render
    made for another URL is not served.
    """

    rev: int
    key: str
    body: bytes
    gzip: bytes
    etag: str


class WriteTxn(Protocol):
    """The operations allowed inside :meth:`PackageStorage.write` (one exclusive transaction)."""

    @abc.abstractmethod
    def package(self, name: str) -> PackageRecord | None:
        """The package as of this transaction, or None."""

    @abc.abstractmethod
    def save_package(self, name: str, doc: JSONDict, *, summary: JSONDict | None = None) -> int:
        """Insert or replace the package's document (and search summary); returns its new rev."""

    # -- a publish's few rows (r13core/storage/package_rows.py): cost independent of
    # -- the number of versions

    @abc.abstractmethod
    def head(self, name: str) -> PackageHead | None:
        """The package's head row (no versions), or None."""

    @abc.abstractmethod
    def version(self, name: str, version: str) -> VersionRow | None:
        """One stored version (manifest, time, attestations), or None."""

    @abc.abstractmethod
    def existing_versions(self, name: str, versions: Iterable[str]) -> set[str]:
        """Those of ``versions`` the package has now (indexed lookups)."""

    @abc.abstractmethod
    def add_version(self, name: str, row: VersionRow) -> None:
        """Append a new version row after the package's others (a head of layout ROWS)."""

    @abc.abstractmethod
    def save_head(self, name: str, top: JSONDict, *, summary: JSONDict) -> int:
        """Insert or replace the head of a package whose versions are rows (layout ROWS),
        leaving its version rows as they are; returns its new rev (renders dropped)."""

    @abc.abstractmethod
    def delete_package(self, name: str) -> None:
        """Remove the package, its tarball rows and renders (tombstones stay)."""

    @abc.abstractmethod
    def used_version(self, name: str, version: str) -> str | None:
        """The sha512 of the first publish of ``name@version``, or None if never used."""

    @abc.abstractmethod
    def mark_used(self, name: str, version: str, sha512: str) -> None:
        """Record that ``name@version`` is taken, forever (no-op if already recorded)."""

    @abc.abstractmethod
    def add_tarball(self, record: TarballRecord) -> None:
        """Point ``name@version`` at a blob (replaces an existing row)."""

    @abc.abstractmethod
    def remove_tarball(self, name: str, version: str) -> None:
        """Forget ``name@version``'s tarball row (the blob stays until a sweep)."""

    # -- the audit log (r13core/storage/audit.py), when it is in the same database --

    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int | None:
        """Append a chained audit event in this transaction (committed with the change, or
        rolled back with it); its id. None: this storage cannot (the default): the caller
        records it after the commit instead."""
        return None

    # -- webhooks (r13core/storage/hooks.py): queued by the change's own transaction --

    def any_hooks(self) -> bool:
        """Whether any webhook exists (one cheap read: a change with none queues nothing).

        The default, for a backend without the hooks concern: none.
        """
        return False

    def hooks_for(self, name: str, owners: Sequence[str]) -> list[HookRecord]:
        """The hooks a change to ``name`` (maintained by ``owners``) concerns, as this
        transaction sees them."""
        return []

    def enqueue_hooks(
        self, deliveries: Sequence[tuple[HookRecord, HookEvent]], now_ms: int
    ) -> None:
        """Queue one delivery per (hook, event) in this transaction: committed with the
        change, or rolled back with it."""
        if deliveries:
            raise NotImplementedError("this storage keeps no webhooks")


class PackageStorage(Protocol):
    """Package state. Safe to use from several threads and (after fork) processes."""

    @abc.abstractmethod
    def write(self) -> AbstractContextManager[WriteTxn]:
        """An exclusive write transaction: committed on normal exit, rolled back on error."""

    @abc.abstractmethod
    def package(self, name: str) -> PackageRecord | None:
        """The committed package, or None."""

    def package_rev(self, name: str) -> int | None:
        """The package's current rev, or None if absent (backends make it a cheap lookup)."""
        record = self.package(name)
        return None if record is None else record.rev

    @abc.abstractmethod
    def head(self, name: str) -> PackageHead | None:
        """The committed head row (no versions), or None."""

    @abc.abstractmethod
    def existing_versions(self, name: str, versions: Iterable[str]) -> set[str]:
        """Those of ``versions`` the committed package has (indexed lookups)."""

    @abc.abstractmethod
    def packages(self) -> Iterator[PackageRecord]:
        """Every package, in name order."""

    def name_in_use(self, name: str) -> bool:
        """Whether ``name`` is local: a package now, or one whose versions were all unpublished.

        The uplink never asks the upstream about such a name (docs/uplinks.md).
        Backends make it an indexed lookup.
        """
        return self.package_rev(name) is not None

    def packages_version(self) -> object:
        """A value that changes whenever any package changes, in any process (a change
        signal): callers may cache answers about packages while it stays equal. The
        default is a new object each time (never equal: nothing is cached)."""
        return object()

    def scope_in_use(self, scope: str) -> bool:
        """Whether some local package (or unpublished one) has the scope ``@scope``."""
        prefix = scope + "/"
        return any(r.name.startswith(prefix) for r in self.packages())

    @abc.abstractmethod
    def summaries(self) -> Iterator[tuple[str, JSONDict]]:
        """(name, search summary) of every package, by name; ``{}`` where none was saved."""

    @abc.abstractmethod
    def tarball(self, name: str, version: str) -> TarballRecord | None:
        """The tarball row of ``name@version``, or None."""

    @abc.abstractmethod
    def used_version(self, name: str, version: str) -> str | None:
        """The sha512 of the first publish of ``name@version``, or None if never used."""

    @abc.abstractmethod
    def blob_refs(self) -> set[str]:
        """The sha512 of every blob a tarball row refers to (local, or a cached upstream one)."""

    def blobs_in_use(self, hashes: Iterable[str]) -> set[str]:
        """Those of ``hashes`` that some tarball row refers to (backends may index it)."""
        return set(hashes) & self.blob_refs()

    @abc.abstractmethod
    def counts(self) -> tuple[int, int]:
        """(packages, published versions)."""

    # -- render cache -------------------------------------------------------

    @abc.abstractmethod
    def render(self, name: str, kind: str) -> RenderRecord | None:
        """The cached render of ``kind`` for ``name`` (any rev; the caller checks)."""

    @abc.abstractmethod
    def save_render(self, name: str, kind: str, record: RenderRecord) -> bool:
        """Cache a render; stored only if ``record.rev`` is still the package's rev."""
