"""The registry service: npm's package semantics over a RegistryStorage and a BlobStore.

The app parses requests and calls one method here per request; the package
knows the protocol's rules (docs/registry-api.md) and nothing about HTTP.
:class:`Registry` is a thin façade over the jobs, one module each:

* reading: r13core/registry/render.py (packuments, versions, their caches);
* publishing: r13core/registry/publish_checks.py (the checks, a pure function
  returning a plan) and r13core/registry/publish.py (the one commit);
* every other change: r13core/registry/metadata.py, all through the one
  read-check-apply-write helper of r13core/registry/changes.py;
* search: r13core/registry/search.py; npm audit and advisories:
  r13core/registry/advisories.py; the blob store's upkeep:
  r13core/registry/maintenance.py.

Every write takes who acts (:class:`r13core.audit.Actor`) and, once it has
committed, tells the listeners (publish and unpublish) and appends its audit
event (r13core/audit.py): the event names the action, the package and the
actor's name and address. A write that fails records nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r13core.audit import Actor, AuditLog
from r13core.config import Config13, Feature
from r13core.errors import BadRequest, InvalidName, NotFound
from r13core.jsonsafe import check_document
from r13core.names import PackageName
from r13core.registry import maintenance, metadata
from r13core.registry.advisories import Advisories, AuditLimits, Visible, everything
from r13core.registry.changes import Committed, OwnerCheck
from r13core.registry.documents import existing, rev_string
from r13core.registry.overview import package_overview
from r13core.registry.publish import publish
from r13core.registry.render import BlobRef, Rendered, Renderer
from r13core.registry.search import search as search_packages
from r13core.registry.storage import RegistryStorage
from r13core.storage.blobs import BlobStore
from r13core.tarball import Limits, sri_from_hex

log = logging.getLogger("r13.registry")


@dataclass(frozen=True)
class PackageChange:
    """What a committed change did, for listeners (counters, analytics).

    ``action`` is ``"publish"`` (one new version) or ``"unpublish"`` (the
    versions removed, all of them when the whole package went). An identical
    retry of a publish, or an unpublish of what is already gone, is no change.
    """

    action: str
    package: str
    versions: tuple[str, ...]


Listener = Callable[[PackageChange], None]


class Registry:
    """npm registry semantics over a :class:`RegistryStorage` and a :class:`BlobStore`.

    ``config`` returns the live record; flags are read on every call. ``audit``
    is where writes record themselves (default: the audit log of ``storage``).
    """

    def __init__(
        self,
        storage: RegistryStorage,
        blobs: BlobStore,
        *,
        public_url: str,
        config: Callable[[], Config13],
        limits: Limits | None = None,
        audit_limits: AuditLimits | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.storage = storage
        self.blobs = blobs
        self.renderer = Renderer(storage, public_url)
        self.advisories = Advisories(storage, audit_limits)
        self.audit = audit if audit is not None else AuditLog(storage)
        self.public_url = self.renderer.public_url
        self.config = config
        self.limits = limits or Limits()
        self._listeners: list[Listener] = []

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        storage: RegistryStorage | None = None,
        public_url: str,
        config: Callable[[], Config13],
        limits: Limits | None = None,
        audit: AuditLog | None = None,
    ) -> Registry:
        """Over ``storage`` (default: ``data_dir/registry.sqlite3``) and ``data_dir/blobs/``."""
        from r13core.database import open_database
        from r13core.storage.blobs import FileBlobStore

        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            open_database(data_dir) if storage is None else storage,
            FileBlobStore(data_dir / "blobs"),
            public_url=public_url,
            config=config,
            limits=limits,
            audit=audit,
        )

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every committed publish and unpublish (in that thread)."""
        self._listeners.append(listener)

    # -- after a commit ---------------------------------------------------------------

    def _notify(self, change: PackageChange) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # the change is committed: a listener cannot undo it
                log.exception("a listener failed on %s", change)

    def _unpublished(self, change: Committed[Any]) -> None:
        """Listeners and file deletion for the versions a committed change unpublished."""
        if change.removed:
            self._notify(PackageChange("unpublish", change.name, change.removed))
            maintenance.delete_unpublished(self.storage, self.blobs, change.name, change.removed)

    def _record(self, actor: Actor, action: str, target: str, **detail: Any) -> None:
        # After the commit: a failure to append is logged, the change stands.
        self.audit.safe_record(actor.name, action, target, ip=actor.address, **detail)

    # -- reading ----------------------------------------------------------------------

    def packument(self, name: PackageName, *, abbreviated: bool) -> Rendered:
        """The full or abbreviated packument (from the render cache); NotFound if absent."""
        return self.renderer.packument(name, abbreviated=abbreviated)

    def packument_for_write(self, name: PackageName) -> Rendered:
        """The current full packument with ``_rev`` (for ``?write=true``)."""
        # The cache is validated against the committed rev on every call: already fresh.
        return self.renderer.packument(name, abbreviated=False)

    def version(self, name: PackageName, version_or_tag: str) -> Rendered:
        """One version object, by version or dist-tag; NotFound if neither."""
        return self.renderer.version(name, version_or_tag)

    def tarball(self, name: PackageName, filename: str) -> BlobRef:
        """The stored tarball behind ``filename`` (``bare-1.2.3.tgz``); NotFound if none."""
        try:
            version = name.version_of_file(filename)
        except InvalidName:
            raise NotFound(f"tarball {filename!r} of {name} not found") from None
        row = self.storage.tarball(str(name), version)
        path = self.blobs.path(row.sha512) if row else None
        if row is None or path is None:
            raise NotFound(f"tarball {filename!r} of {name} not found")
        return BlobRef(path, row.size, sri_from_hex(row.sha512), f'"{row.sha512[:40]}"')

    def dist_tags(self, name: PackageName) -> dict[str, str]:
        """The package's dist-tags; NotFound if absent."""
        return dict(existing(self.storage, str(name)).doc["dist-tags"])

    def owners(self, name: PackageName) -> list[dict[str, Any]]:
        """The package's maintainers ``[{name, email}]``; NotFound if absent."""
        return [dict(m) for m in existing(self.storage, str(name)).doc["maintainers"]]

    def overview(self, name: PackageName) -> dict[str, Any]:
        """The dashboard's view of one package (r13core/registry/overview.py); NotFound."""
        return package_overview(self.storage, str(name))

    def stats(self) -> dict[str, int]:
        """Counts for monitoring: packages and published versions."""
        packages, versions = self.storage.counts()
        return {"packages": packages, "versions": versions}

    # -- package writes ---------------------------------------------------------------

    def put_package(
        self,
        name: PackageName,
        body: dict[str, Any],
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """``PUT /:pkg``: a publish (with ``_attachments``) or a metadata update (without).

        Returns ``(created, json)``: ``created`` is True for a publish (HTTP 201, also
        for an identical retry), False for a metadata update such as deprecate.
        ``check_owner(maintainer_names)`` raises (Forbidden) when the caller may not
        change the package: it is called inside the write transaction with the
        package as it is then (and, for a publish, once before any work, as a fast
        refusal), so a package created by someone else while this request was on
        its way is not changed. Without it anyone may change anything (trusted
        callers only). Audit: ``publish`` (``versions``: the body's) or
        ``package.update``.
        """
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        check_document(body, what="body")
        key = str(name)
        if not body.get("_attachments"):
            change = metadata.update_metadata(self.storage, name, body, check_owner)
            self._record(actor, "package.update", key, versions=[])
            return False, {"ok": True, "id": key, "rev": rev_string(key, _rev(change))}
        published = publish(
            self.storage,
            self.blobs,
            name,
            body,
            self.limits,
            publisher=actor.name,
            mark_types=self.config().has(Feature.PREMIUM_TYPES),
            check_owner=check_owner,
        )
        if published.value is not None:
            self._notify(PackageChange("publish", key, (published.value,)))
        self._record(actor, "publish", key, versions=sorted(body.get("versions") or {}))
        return True, {"ok": True, "id": key, "rev": rev_string(key, _rev(published))}

    def put_package_rev(
        self,
        name: PackageName,
        rev: str,
        body: dict[str, Any],
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> dict[str, Any]:
        """``PUT /:pkg/-rev/:rev``: the document minus unpublished versions, or new maintainers.

        Versions missing from ``body.versions`` are unpublished (tombstones keep their
        numbers); when none is left the package goes. RevConflict for a stale ``rev``.
        Audit: ``package.change``.
        """
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        check_document(body, what="body")
        key = str(name)
        change = metadata.change_by_rev(self.storage, name, rev, body, check_owner)
        self._unpublished(change)
        self._record(actor, "package.change", key)
        if change.rev is None:
            return {"ok": True, "id": key}
        return {"ok": True, "id": key, "rev": rev_string(key, change.rev)}

    def unpublish_package(
        self, name: PackageName, rev: str, *, actor: Actor, check_owner: OwnerCheck | None = None
    ) -> dict[str, Any]:
        """``DELETE /:pkg/-rev/:rev``: remove the whole package (its versions stay used).

        Audit: ``unpublish``.
        """
        self._unpublished(metadata.unpublish(self.storage, name, rev, check_owner))
        self._record(actor, "unpublish", str(name))
        return {"ok": True}

    def remove_tarball(
        self,
        name: PackageName,
        filename: str,
        rev: str,
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> dict[str, Any]:
        """``DELETE /:pkg/-/:file/-rev/:rev``, the last step of npm's unpublish.

        If the version is already gone (the usual case: the PUT before removed it)
        this only checks the rev; if it is still there, it is unpublished here, and
        its file deleted (unless another row shares it). Audit: ``unpublish.tarball``
        (``file``).
        """
        change = metadata.remove_tarball(self.storage, name, filename, rev, check_owner)
        self._unpublished(change)
        self._record(actor, "unpublish.tarball", str(name), file=filename)
        return {"ok": True}

    def set_dist_tag(
        self,
        name: PackageName,
        tag: str,
        version: str,
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> None:
        """Point ``tag`` at ``version`` (which must exist); tags that read as ranges refused.

        Audit: ``dist-tag.set`` (``tag``, ``version``).
        """
        metadata.set_dist_tag(self.storage, name, tag, version, check_owner)
        self._record(actor, "dist-tag.set", str(name), tag=tag, version=version)

    def remove_dist_tag(
        self, name: PackageName, tag: str, *, actor: Actor, check_owner: OwnerCheck | None = None
    ) -> None:
        """Remove ``tag``; ``latest`` cannot be removed; NotFound if the tag is not set.

        Audit: ``dist-tag.remove`` (``tag``).
        """
        metadata.remove_dist_tag(self.storage, name, tag, check_owner)
        self._record(actor, "dist-tag.remove", str(name), tag=tag)

    # -- search and npm audit -----------------------------------------------------------

    def search(
        self, text: str, size: int = 20, offset: int = 0, *, visible: Visible | None = None
    ) -> dict[str, Any]:
        """npm's ``/-/v1/search``: :func:`r13core.registry.search.search` over this storage."""
        return search_packages(
            self.storage, text, size, offset, public_url=self.public_url, visible=visible
        )

    def add_advisory(self, advisory: dict[str, Any], *, actor: Actor) -> dict[str, Any]:
        """Store an advisory (admin API): :meth:`Advisories.add`. Audit: ``advisory.add``."""
        added = self.advisories.add(advisory, actor=actor.name)
        self._record(actor, "advisory.add", str(added["module_name"]))
        return added

    def list_advisories(self) -> list[dict[str, Any]]:
        """Every advisory, by id."""
        return self.advisories.all()

    def remove_advisory(self, advisory_id: str | int, *, actor: Actor) -> None:
        """Delete an advisory; NotFound if there is none with that id.

        Audit: ``advisory.remove``.
        """
        self.advisories.remove(advisory_id)
        self._record(actor, "advisory.remove", str(advisory_id))

    def audit_bulk(
        self, request: dict[str, list[str]], *, visible: Visible | None = None
    ) -> dict[str, Any]:
        """``POST /-/npm/v1/security/advisories/bulk``: :meth:`Advisories.bulk`."""
        return self.advisories.bulk(request, visible=visible or everything)

    def audit_quick(
        self, tree: dict[str, Any], *, visible: Visible | None = None
    ) -> dict[str, Any]:
        """Legacy ``/-/npm/v1/security/audits(/quick)``: :meth:`Advisories.quick`."""
        return self.advisories.quick(tree, visible=visible or everything)

    # -- maintenance ----------------------------------------------------------------------

    def sweep(self, *, min_age: float = 3600.0, alone: bool = False) -> int:
        """Remove files in the blob store no committed row refers to: :func:`maintenance.sweep`."""
        return maintenance.sweep(self.storage, self.blobs, min_age=min_age, alone=alone)


def _rev(change: Committed[Any]) -> int:
    assert change.rev is not None  # a publish or an update leaves the package in place
    return change.rev


__all__ = ["Listener", "PackageChange", "Registry"]
