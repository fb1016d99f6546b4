"""A publish: the checks' plan (r13core/registry/publish_checks.py), then one commit.

The order is the one every write path follows (docs/registry-api.md):
check everything -> write the tarball (temp, fsync, verify, rename, fsync the
directory: ``BlobStore.put``) -> commit the metadata. The commit is the
publish point; a crash before it leaves only an unreferenced file, which the
sweeper removes. The blob store's shared hold is taken before the file is
written and kept until after the commit, so a sweep never removes a file this
publish is about to refer to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

from r13core.errors import InvalidPublish, VersionExists
from r13core.hooks.events import derive, snapshot
from r13core.names import PackageName
from r13core.registry.changes import Committed, Draft, OwnerCheck, change_in
from r13core.registry.documents import copy_top_fields, now, owner_names
from r13core.registry.publish_checks import PublishPlan, check_publish
from r13core.registry.search import summarize
from r13core.registry.signing import Signer, signed
from r13core.storage.blobs import BlobStore
from r13core.storage.package_rows import ROWS, PackageHead, VersionRow, split
from r13core.storage.packages import JSONDict, PackageStorage, TarballRecord, WriteTxn
from r13core.tarball import Limits


def publish(
    storage: PackageStorage,
    blobs: BlobStore,
    name: PackageName,
    body: dict[str, Any],
    limits: Limits,
    *,
    publisher: str,
    mark_types: bool,
    check_owner: OwnerCheck | None,
    signer: Signer | None = None,
    sender: str | None = None,
    audit: Callable[[WriteTxn], None] | None = None,
) -> Committed[str | None]:
    """``PUT /:pkg`` with ``_attachments``; the committed change (value: the new version).

    ``audit(tx)`` is called last inside the commit's transaction (to append the audit
    event there); an identical retry answered before any transaction does not call it.

    ``sender`` names who acts in the webhooks' events (None: none queued).
    ``signer`` signs the new version (``dist.signatures``, r13core/registry/signing.py)
    before the commit; without one the version is stored unsigned.

    ``check_owner`` is asked once before any work (a fast refusal, before any
    file is written) and again inside the commit's transaction. An identical
    retry commits nothing (value None) and answers the package as it is.

    The checks before the transaction read the package's head row and only the versions
    the body names (r13core/storage/package_rows.py), never the whole document.
    """
    key = str(name)
    with blobs.hold():
        head = storage.head(key)
        if head is not None and check_owner is not None:
            check_owner(owner_names(head.top))
        plan = check_publish(
            name,
            body,
            limits,
            current=None if head is None else _current(storage, key, head, body),
            used=lambda version: storage.used_version(key, version),
            publisher=publisher,
            mark_types=mark_types,
        )
        if plan.retry:
            assert head is not None  # check_publish: a retry is of a version still there
            return Committed(key, None, head.rev)
        if signer is not None:
            plan = replace(plan, document=signed(plan.document, key, plan.version, signer))
        return commit_publish(storage, blobs, plan, check_owner, sender=sender, audit=audit)


def _named_versions(body: dict[str, Any]) -> set[str]:
    """The versions a publish body names: its ``versions`` and its tags' targets (strings
    only: anything else fails the checks, which say why)."""
    named: set[str] = set()
    versions, tags = body.get("versions"), body.get("dist-tags")
    if isinstance(versions, dict):
        named.update(v for v in versions if isinstance(v, str))
    if isinstance(tags, dict):
        named.update(t for t in tags.values() if isinstance(t, str))
    return named


def _current(
    storage: PackageStorage, key: str, head: PackageHead, body: dict[str, Any]
) -> list[str]:
    """Those of the versions the body names that the package has (all a check asks)."""
    if head.layout != ROWS:
        record = storage.package(key)
        return [] if record is None else list(record.doc.get("versions") or ())
    return sorted(storage.existing_versions(key, _named_versions(body)))


def _new_document(plan: PublishPlan, now: str) -> JSONDict:
    return {
        "name": plan.name,
        "created": now,
        "modified": now,
        "dist-tags": {},
        "versions": {},
        "time": {},
        "maintainers": [{"name": plan.publisher, "email": ""}],
    }


def commit_publish(
    storage: PackageStorage,
    blobs: BlobStore,
    plan: PublishPlan,
    check_owner: OwnerCheck | None,
    *,
    sender: str | None = None,
    audit: Callable[[WriteTxn], None] | None = None,
) -> Committed[str | None]:
    """Write the tarball, then commit the new version (the caller holds ``blobs.hold()``).

    Inside the transaction the package may have changed since the checks:
    ownership, the version number and the body's other versions and tags are
    decided again against it. A racing identical publish that committed first
    is a success with nothing more written (value None).

    The commit reads the head row and the versions it checks, and writes one version
    row, the tarball and tombstone rows and the head (and queues the webhook deliveries,
    derived from the head and the new version alone): its cost does not grow with the
    number of versions. A stored document not in rows (r13core/storage/package_rows.py)
    takes the whole-document path (r13core/registry/changes.py), same decisions.
    """
    blobs.put(plan.data)  # durable and verified before the commit below
    with storage.write() as tx:
        head = tx.head(plan.name)
        if head is not None and head.layout != ROWS:
            done = _whole_document(tx, plan, check_owner, sender)
        else:
            done = _add_version_row(tx, plan, head, check_owner, sender)
        if audit is not None:
            audit(tx)
    return done


def _whole_document(
    tx: WriteTxn, plan: PublishPlan, check_owner: OwnerCheck | None, sender: str | None
) -> Committed[str | None]:
    """The publish as a change of the whole document (r13core/registry/changes.py)."""

    def add_version(draft: Draft) -> str | None:
        doc, version = draft.doc, plan.version
        used = draft.tx.used_version(plan.name, version)
        if used is not None:  # another worker published it meanwhile
            if used == plan.sha512 and not draft.new and version in doc["versions"]:
                return None
            raise VersionExists(f"{plan.name}@{version} was already published")
        _check_named(plan, set(doc["versions"]))
        stored = {**plan.document, "maintainers": doc["maintainers"]}
        doc["versions"][version] = stored
        if plan.attestation is not None:
            # Kept beside the versions, never rendered: served by the attestations route.
            doc.setdefault("attestations", {})[version] = [plan.attestation.as_json()]
        doc["time"][version] = draft.now
        doc["dist-tags"].update(plan.tags)
        doc["dist-tags"].setdefault("latest", version)
        if doc["dist-tags"]["latest"] == version:
            copy_top_fields(doc, stored, plan.readme)
        draft.tx.add_tarball(TarballRecord(plan.name, version, plan.sha512, len(plan.data)))
        draft.tx.mark_used(plan.name, version, plan.sha512)
        draft.touch()
        return version

    done, _ = change_in(
        tx,
        plan.name,
        add_version,
        check_owner=check_owner,
        create=lambda now: _new_document(plan, now),
        sender=sender,
    )
    return done


def _check_named(plan: PublishPlan, have: Collection[str]) -> None:
    """Every other version the body carries, and every tag's target, must exist now."""
    for v in plan.versions:
        if v != plan.version and v not in have:
            raise InvalidPublish(f"a publish carries exactly one new version ({v})")
    for tag, target in plan.tags.items():
        if target != plan.version and target not in have:
            raise InvalidPublish(f"dist-tag {tag!r} points at unknown version {target!r}")


def _add_version_row(
    tx: WriteTxn,
    plan: PublishPlan,
    head: PackageHead | None,
    check_owner: OwnerCheck | None,
    sender: str | None,
) -> Committed[str | None]:
    """The publish as rows: the same decisions as :func:`_whole_document`'s, on the head
    alone."""
    stamp, key, version = now(), plan.name, plan.version
    if head is None:
        _, top, _ = split(_new_document(plan, stamp))
    else:
        top = head.top  # freshly read: this change's own copy
        if check_owner is not None:
            check_owner(owner_names(top))
    used = tx.used_version(key, version)
    if used is not None:  # another worker published it meanwhile
        if used == plan.sha512 and head is not None and tx.version(key, version) is not None:
            return Committed(key, None, head.rev)
        raise VersionExists(f"{key}@{version} was already published")
    named = {v for v in plan.versions if v != version} | set(plan.tags.values())
    _check_named(plan, set() if head is None else tx.existing_versions(key, named))
    # Webhook events compare before and after (r13core/hooks/events.py); a publish changes
    # no other version, so the versions before need not be read: no deprecation changes.
    before = None
    if sender and tx.any_hooks():
        before = snapshot({"dist-tags": top["dist-tags"], "maintainers": top["maintainers"]})
    stored = {**plan.document, "maintainers": top["maintainers"]}
    attestations = None if plan.attestation is None else [plan.attestation.as_json()]
    row_time: str | None = stamp
    if "time" in top:  # times kept whole in the head (r13core/storage/package_rows.py)
        top["time"][version], row_time = stamp, None
    if attestations is not None and "attestations" in top:
        top["attestations"][version], attestations = attestations, None
    tx.add_version(key, VersionRow(version, stored, row_time, attestations))
    tags = top["dist-tags"]
    tags.update(plan.tags)
    tags.setdefault("latest", version)
    if tags["latest"] == version:
        copy_top_fields(top, stored, plan.readme)
    tx.add_tarball(TarballRecord(key, version, plan.sha512, len(plan.data)))
    tx.mark_used(key, version, plan.sha512)
    top["modified"] = stamp
    view = _latest_view(tx, key, top, (version, stored, stamp))
    rev = tx.save_head(key, top, summary=summarize(key, view))
    if before is not None and sender:
        after = {**top, "versions": {version: stored}, "time": top.get("time", {version: stamp})}
        events = derive(key, before, after, sender=sender, time=stamp, new=head is None)
        owners = sorted(set(before.maintainers) | set(snapshot(after).maintainers))
        hooks = tx.hooks_for(key, owners) if events else []
        if hooks:
            now_ms = int(time.time() * 1000)
            tx.enqueue_hooks([(hook, event) for event in events for hook in hooks], now_ms)
    return Committed(key, version, rev, (), True)


def _latest_view(tx: WriteTxn, key: str, top: JSONDict, new: tuple[str, JSONDict, str]) -> JSONDict:
    """The document as search's summary reads it: the head and the ``latest`` version
    (``new``: the version this publish adds, its manifest and time)."""
    latest = top["dist-tags"].get("latest", "")
    manifest: Any = None
    when: Any = None
    if latest == new[0]:
        _, manifest, when = new
    else:
        row = tx.version(key, latest)
        if row is not None:
            manifest, when = row.manifest, row.time
    versions = {} if manifest is None else {latest: manifest}
    times = top.get("time", {} if manifest is None else {latest: when})
    return {**top, "versions": versions, "time": times}


__all__ = ["PublishPlan", "check_publish", "commit_publish", "publish"]
