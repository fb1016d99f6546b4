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
from typing import TYPE_CHECKING, Any

from r13core.audit import Actor, AuditLog
from r13core.config import Config13, Feature
from r13core.errors import BadRequest, ExistsUpstream, InvalidName, NotFound, UpstreamError
from r13core.jsonsafe import check_document
from r13core.names import PackageName
from r13core.registry import maintenance, metadata
from r13core.registry.advisories import Advisories, AuditLimits, Visible, everything
from r13core.registry.attestations import attestations_document
from r13core.registry.changes import Committed, OwnerCheck
from r13core.registry.documents import existing, rev_string
from r13core.registry.overview import package_overview
from r13core.registry.publish import publish
from r13core.registry.recent import TarballRefs
from r13core.registry.render import BlobRef, Rendered, Renderer
from r13core.registry.search import search as search_packages
from r13core.registry.signing import Signer, sign_unsigned
from r13core.registry.storage import RegistryStorage
from r13core.storage.blobs import BlobStore
from r13core.storage.package_rows import PackageHead
from r13core.storage.packages import WriteTxn
from r13core.tarball import Limits, sri_from_hex

if TYPE_CHECKING:
    from r13core.uplink import Proxied, ProxiedBlob, Uplink

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
    ``signer`` signs every version published (r13core/registry/signing.py; the
    wiring passes the data dir's key ring); without one versions go unsigned.
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
        uplink: Uplink | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.storage = storage
        # What the hot reads remember between requests (r13core/registry/recent.py).
        self._tarball_refs: TarballRefs[BlobRef] = TarballRefs(storage)
        self.uplink = uplink
        """The upstream registry (r13core/uplink/): asked only for names missing here."""
        self.signer = signer
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
        signer: Signer | None = None,
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
            signer=signer,
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

    def _proxying(self) -> Uplink | None:
        uplink = self.uplink
        return uplink if uplink is not None and uplink.enabled() else None

    def packument(
        self, name: PackageName, *, abbreviated: bool, via: str = ""
    ) -> Rendered | Proxied:
        """The full or abbreviated packument; NotFound if absent here and (with PROXY_MODE)
        upstream. A local package always wins: the upstream is asked only when the
        name has never existed here (r13core/uplink/policy.py). ``via``: the
        request's ``Via`` header, passed on (loop detection)."""
        try:
            return self.renderer.packument(name, abbreviated=abbreviated)
        except NotFound:
            uplink = self._proxying()
            if uplink is None:
                raise
        return uplink.packument(name, abbreviated=abbreviated, via=via)

    def packument_for_write(self, name: PackageName) -> Rendered:
        """The current full packument with ``_rev`` (for ``?write=true``)."""
        # The cache is validated against the committed rev on every call: already fresh.
        return self.renderer.packument(name, abbreviated=False)

    def version(
        self, name: PackageName, version_or_tag: str, *, via: str = ""
    ) -> Rendered | Proxied:
        """One version object, by version or dist-tag; NotFound if neither (local first)."""
        if self.storage.package_rev(str(name)) is None:
            uplink = self._proxying()
            if uplink is not None:
                return uplink.version(name, version_or_tag, via=via)
        return self.renderer.version(name, version_or_tag)

    def tarball(self, name: PackageName, filename: str, *, via: str = "") -> BlobRef | ProxiedBlob:
        """The tarball behind ``filename`` (``bare-1.2.3.tgz``): the stored one, or (with
        PROXY_MODE, for a name that was never local) the upstream's, checked against
        its integrity; NotFound if none."""
        key = str(name)
        refs = self._tarball_refs
        version = refs.version()
        known = refs.known(version, key, filename)
        if known is not None:
            return known
        if self.storage.package_rev(key) is None:
            uplink = self._proxying()
            if uplink is not None:
                return uplink.tarball(name, filename, via=via)
        found = self._local_tarball(name, filename)
        refs.remember(version, key, filename, found)
        return found

    def _local_tarball(self, name: PackageName, filename: str) -> BlobRef:
        try:
            version = name.version_of_file(filename)
        except InvalidName:
            raise NotFound(f"tarball {filename!r} of {name} not found") from None
        row = self.storage.tarball(str(name), version)
        path = self.blobs.path(row.sha512) if row else None
        if row is None or path is None:
            raise NotFound(f"tarball {filename!r} of {name} not found")
        return BlobRef(path, row.size, sri_from_hex(row.sha512), f'"{row.sha512[:40]}"')

    def attestations(self, name: PackageName, version: str) -> dict[str, Any]:
        """``GET /-/npm/v1/attestations/<name>@<version>``: the provenance kept at publish.

        ``{attestations: [{predicateType, bundle}]}``; NotFound when the package,
        the version or its attestations are not here (r13core/registry/attestations.py).
        """
        record = existing(self.storage, str(name))
        return attestations_document(record.doc, record.name, version)

    def sign_unsigned(self, *, actor: Actor) -> tuple[int, int]:
        """Sign every stored version that has no signature yet (the migration of
        r13core/registry/signing.py); ``(packages, versions)`` signed.

        Audit: ``signing.backfill`` (``packages``, ``versions``) when any was signed.
        """
        if self.signer is None:
            return (0, 0)
        packages, versions = sign_unsigned(self.storage, self.signer)
        if versions:
            # Not an HTTP write (r13 serve and `r13 keys signing backfill` run it).
            self.audit.safe_record_by(
                actor, "signing.backfill", "", packages=packages, versions=versions
            )
        return packages, versions

    def dist_tags(self, name: PackageName) -> dict[str, str]:
        """The package's dist-tags; NotFound if absent."""
        return dict(self._head(name).top["dist-tags"])

    def owners(self, name: PackageName) -> list[dict[str, Any]]:
        """The package's maintainers ``[{name, email}]``; NotFound if absent."""
        return [dict(m) for m in self._head(name).top["maintainers"]]

    def _head(self, name: PackageName) -> PackageHead:
        """The package's head row (r13core/storage/package_rows.py: no versions read)."""
        head = self.storage.head(str(name))
        if head is None:
            raise NotFound(f"package {name} not found")
        return head

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
            change = metadata.update_metadata(
                self.storage, name, body, check_owner, sender=actor.name
            )
            self._record(actor, "package.update", key, versions=[])
            return False, {"ok": True, "id": key, "rev": rev_string(key, _rev(change))}
        self._refuse_shadowing(name)
        committed: list[Callable[[], None]] = []

        def audit_in(tx: WriteTxn) -> None:
            # In the publish's own transaction when the log is in the same database: one
            # commit (one fsync) for both, and never a publish without its event.
            if self.audit.stores_in(self.storage):
                done = self.audit.record_in(
                    tx, actor.name, "publish", key, ip=actor.address, versions=_versions(body)
                )
                if done is not None:
                    committed.append(done)

        published = publish(
            self.storage,
            self.blobs,
            name,
            body,
            self.limits,
            publisher=actor.name,
            mark_types=self.config().has(Feature.PREMIUM_TYPES),
            check_owner=check_owner,
            signer=self.signer,
            sender=actor.name,
            audit=audit_in,
        )
        if published.value is not None:
            self._notify(PackageChange("publish", key, (published.value,)))
        if committed:
            try:
                committed[0]()
            except Exception:
                log.exception("the audit listener failed on publish %s", key)
        else:
            self._record(actor, "publish", key, versions=_versions(body))
        return True, {"ok": True, "id": key, "rev": rev_string(key, _rev(published))}

    def _refuse_shadowing(self, name: PackageName) -> None:
        """ExistsUpstream for the first publish of a name the upstream has (PROXY_MODE on),
        unless an admin allowed it (``r13 uplink allow NAME``, docs/uplinks.md)."""
        uplink = self._proxying()
        if uplink is None or self.storage.name_in_use(str(name)):
            return
        if uplink.shadows_upstream(name):
            raise ExistsUpstream(
                f"{name} exists on the upstream registry: publishing it here would shadow "
                f"it for everyone using this registry. An admin can allow it with "
                f"`r13 uplink allow {name}` (or PUT /_api/uplink/overrides/{name.url}), "
                "or publish under a private scope"
            )

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
        change = metadata.change_by_rev(
            self.storage, name, rev, body, check_owner, sender=actor.name
        )
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
        self._unpublished(
            metadata.unpublish(self.storage, name, rev, check_owner, sender=actor.name)
        )
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
        change = metadata.remove_tarball(
            self.storage, name, filename, rev, check_owner, sender=actor.name
        )
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
        metadata.set_dist_tag(self.storage, name, tag, version, check_owner, sender=actor.name)
        self._record(actor, "dist-tag.set", str(name), tag=tag, version=version)

    def remove_dist_tag(
        self, name: PackageName, tag: str, *, actor: Actor, check_owner: OwnerCheck | None = None
    ) -> None:
        """Remove ``tag``; ``latest`` cannot be removed; NotFound if the tag is not set.

        Audit: ``dist-tag.remove`` (``tag``).
        """
        metadata.remove_dist_tag(self.storage, name, tag, check_owner, sender=actor.name)
        self._record(actor, "dist-tag.remove", str(name), tag=tag)

    # -- search and npm audit -----------------------------------------------------------

    def search(
        self, text: str, size: int = 20, offset: int = 0, *, visible: Visible | None = None
    ) -> dict[str, Any]:
        """npm's ``/-/v1/search``: :func:`r13core.registry.search.search` over this storage,
        then (PROXY_MODE, R13_UPLINK_SEARCH) the upstream's results, marked
        ``flags.upstream`` (r13core/uplink/forward.py)."""
        local = search_packages(
            self.storage, text, size, offset, public_url=self.public_url, visible=visible
        )
        uplink = self._proxying()
        if uplink is None or not uplink.settings.search or not text.strip():
            return local
        from r13core.uplink import forward

        room = size - len(local["objects"])
        if room <= 0:
            return local
        start = max(0, offset - int(local["total"]))
        exclude = {o["package"]["name"] for o in local["objects"]}
        try:
            objects, total = forward.upstream_search(uplink, text, room, start, exclude=exclude)
        except UpstreamError as exc:
            local["upstream_error"] = str(exc)
            return local
        local["objects"] = local["objects"] + objects
        local["total"] = int(local["total"]) + total
        return local

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
        self, request: dict[str, list[str]], *, visible: Visible | None = None, via: str = ""
    ) -> dict[str, Any]:
        """``POST /-/npm/v1/security/advisories/bulk``: :meth:`Advisories.bulk`, merged with
        the upstream's answer while PROXY_MODE is on (r13core/uplink/forward.py)."""
        local = self.advisories.bulk(request, visible=visible or everything)
        uplink = self._proxying()
        if uplink is None:
            return local
        from r13core.uplink import forward

        seen = visible or everything
        asked = {n: v for n, v in request.items() if isinstance(n, str) and seen(n)}
        return forward.merge_bulk(local, forward.upstream_bulk(uplink, asked, via=via))

    def audit_quick(
        self, tree: dict[str, Any], *, visible: Visible | None = None, via: str = ""
    ) -> dict[str, Any]:
        """Legacy ``/-/npm/v1/security/audits(/quick)``: :meth:`Advisories.quick`, with the
        upstream's advisories for the tree's proxyable modules while PROXY_MODE is on."""
        seen = visible or everything
        uplink = self._proxying()
        if uplink is None:
            return self.advisories.quick(tree, visible=seen)
        from r13core.uplink import forward

        versions = self.advisories.tree_versions(tree)
        asked = {n: v for n, v in versions.items() if seen(n)}
        extra = forward.as_records(forward.upstream_bulk(uplink, asked, via=via))
        return self.advisories.quick(tree, visible=seen, extra=extra)

    # -- maintenance ----------------------------------------------------------------------

    def sweep(self, *, min_age: float = 3600.0, alone: bool = False) -> int:
        """Remove files in the blob store no committed row refers to: :func:`maintenance.sweep`."""
        return maintenance.sweep(self.storage, self.blobs, min_age=min_age, alone=alone)


def _versions(body: dict[str, Any]) -> list[str]:
    """A checked publish body's versions, sorted (the audit event's detail)."""
    return sorted(body.get("versions") or {})


def _rev(change: Committed[Any]) -> int:
    assert change.rev is not None  # a publish or an update leaves the package in place
    return change.rev


__all__ = ["Listener", "PackageChange", "Registry"]
