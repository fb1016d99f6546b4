"""What app/ needs from r13core's registry service (docs/registry-api.md), as Protocols.

Resources are typed against these, so the HTTP layer can be tested with a
small fake and does not depend on which storage backs the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from app.http import RenderedLike
from r13core.audit import Actor
from r13core.names import PackageName
from r13core.registry import OwnerCheck, PackageChange


class BlobRefLike(Protocol):
    """A stored tarball: where it is, how big, its integrity and ETag."""

    @property
    def path(self) -> Path: ...

    @property
    def size(self) -> int: ...

    @property
    def integrity(self) -> str: ...

    @property
    def etag(self) -> str: ...


class RegistryService(Protocol):
    """The registry methods the resources call (one per request).

    Every write takes who acts (the principal's name and the client address) and
    records its own audit event once it has committed; package writes take the
    ownership check that the registry makes again at commit.
    """

    def packument(self, name: PackageName, *, abbreviated: bool, via: str = "") -> RenderedLike:
        """Local first; with PROXY_MODE the upstream's (``via``: the request's Via header)."""

    def packument_for_write(self, name: PackageName) -> RenderedLike: ...

    def version(self, name: PackageName, version_or_tag: str, *, via: str = "") -> RenderedLike: ...

    def put_package(
        self,
        name: PackageName,
        body: dict[str, Any],
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """(created: a publish -> 201, the JSON to send). ``check_owner`` is called
        with the package's maintainers inside the write transaction."""

    def put_package_rev(
        self,
        name: PackageName,
        rev: str,
        body: dict[str, Any],
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> dict[str, Any]: ...

    def unpublish_package(
        self, name: PackageName, rev: str, *, actor: Actor, check_owner: OwnerCheck | None = None
    ) -> dict[str, Any]: ...

    def remove_tarball(
        self,
        name: PackageName,
        filename: str,
        rev: str,
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> dict[str, Any]: ...

    def tarball(self, name: PackageName, filename: str, *, via: str = "") -> BlobRefLike: ...

    def attestations(self, name: PackageName, version: str) -> dict[str, Any]:
        """``{attestations: [...]}`` of a local version; NotFound when it has none."""

    def dist_tags(self, name: PackageName) -> dict[str, str]: ...

    def overview(self, name: PackageName) -> dict[str, Any]: ...

    def set_dist_tag(
        self,
        name: PackageName,
        tag: str,
        version: str,
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> None: ...

    def remove_dist_tag(
        self, name: PackageName, tag: str, *, actor: Actor, check_owner: OwnerCheck | None = None
    ) -> None: ...

    def owners(self, name: PackageName) -> list[dict[str, Any]]: ...

    def search(
        self, text: str, size: int, offset: int, *, visible: Callable[[str], bool] | None = None
    ) -> dict[str, Any]:
        """``visible``: which packages the caller may read; the rest are not searched."""

    def audit_bulk(
        self,
        request: dict[str, list[str]],
        *,
        visible: Callable[[str], bool] | None = None,
        via: str = "",
    ) -> dict[str, Any]: ...

    def audit_quick(
        self, tree: dict[str, Any], *, visible: Callable[[str], bool] | None = None, via: str = ""
    ) -> dict[str, Any]: ...

    def add_advisory(self, advisory: dict[str, Any], *, actor: Actor) -> dict[str, Any]: ...

    def list_advisories(self) -> list[dict[str, Any]]: ...

    def remove_advisory(self, advisory_id: str, *, actor: Actor) -> None: ...

    def sweep(self, *, min_age: float = 3600.0, alone: bool = False) -> int: ...

    def subscribe(self, listener: Callable[[PackageChange], None]) -> None:
        """Call ``listener`` after each committed publish and unpublish."""

    def stats(self) -> dict[str, int]: ...
