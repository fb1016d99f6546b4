"""The registry service (stub: signatures of docs/registry-api.md; bodies land next)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r13core.config import Config13
from r13core.names import PackageName
from r13core.storage.base import BlobStore, Storage


@dataclass(frozen=True)
class Rendered:
    """A rendered JSON document: body, its gzip, and a quoted strong ETag."""

    body: bytes
    gzip: bytes
    etag: str


@dataclass(frozen=True)
class BlobRef:
    """A stored tarball to send: file path, size, SRI integrity, quoted ETag."""

    path: Path
    size: int
    integrity: str
    etag: str


class Registry:
    """npm registry semantics over a Storage and a BlobStore."""

    def __init__(
        self,
        storage: Storage,
        blobs: BlobStore,
        *,
        public_url: str,
        config: Callable[[], Config13],
    ) -> None:
        self.storage = storage
        self.blobs = blobs
        self.public_url = public_url.rstrip("/")
        self.config = config

    @classmethod
    def open(cls, data_dir: Path, *, public_url: str, config: Callable[[], Config13]) -> Registry:
        """SQLite + files under ``data_dir``."""
        raise NotImplementedError

    def packument(self, name: PackageName, *, abbreviated: bool) -> Rendered:
        """Full or abbreviated packument."""
        raise NotImplementedError

    def packument_for_write(self, name: PackageName) -> Rendered:
        """Fresh full packument with _rev."""
        raise NotImplementedError

    def version(self, name: PackageName, version_or_tag: str) -> Rendered:
        """One version object."""
        raise NotImplementedError

    def put_package(
        self, name: PackageName, body: dict[str, Any], *, actor: str
    ) -> tuple[bool, dict[str, Any]]:
        """PUT /:pkg -> (created, body)."""
        raise NotImplementedError

    def put_package_rev(
        self, name: PackageName, rev: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """PUT /:pkg/-rev/:rev."""
        raise NotImplementedError

    def unpublish_package(self, name: PackageName, rev: str, *, actor: str) -> dict[str, Any]:
        """DELETE /:pkg/-rev/:rev."""
        raise NotImplementedError

    def remove_tarball(
        self, name: PackageName, filename: str, rev: str, *, actor: str
    ) -> dict[str, Any]:
        """DELETE /:pkg/-/:file/-rev/:rev."""
        raise NotImplementedError

    def tarball(self, name: PackageName, filename: str) -> BlobRef:
        """A stored tarball."""
        raise NotImplementedError

    def dist_tags(self, name: PackageName) -> dict[str, str]:
        """dist-tags."""
        raise NotImplementedError

    def set_dist_tag(self, name: PackageName, tag: str, version: str, *, actor: str) -> None:
        """Add or move a tag."""
        raise NotImplementedError

    def remove_dist_tag(self, name: PackageName, tag: str, *, actor: str) -> None:
        """Remove a tag."""
        raise NotImplementedError

    def owners(self, name: PackageName) -> list[dict[str, Any]]:
        """Maintainers."""
        raise NotImplementedError

    def search(self, text: str, size: int = 20, offset: int = 0) -> dict[str, Any]:
        """npm search."""
        raise NotImplementedError

    def audit_bulk(self, request: dict[str, list[str]]) -> dict[str, Any]:
        """Bulk advisories."""
        raise NotImplementedError

    def audit_quick(self, tree: dict[str, Any]) -> dict[str, Any]:
        """Legacy audit report."""
        raise NotImplementedError

    def add_advisory(self, advisory: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """Admin: add an advisory."""
        raise NotImplementedError

    def list_advisories(self) -> list[dict[str, Any]]:
        """Admin: list advisories."""
        raise NotImplementedError

    def remove_advisory(self, advisory_id: str | int, *, actor: str) -> None:
        """Admin: remove an advisory."""
        raise NotImplementedError

    def sweep(self, *, min_age: float = 3600.0) -> int:
        """Remove orphan blobs."""
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Counts."""
        raise NotImplementedError
