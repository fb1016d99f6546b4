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

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from r13core.errors import InvalidPublish, VersionExists
from r13core.names import PackageName
from r13core.registry.changes import Committed, Draft, OwnerCheck, change_package
from r13core.registry.documents import copy_top_fields, owner_names
from r13core.registry.publish_checks import PublishPlan, check_publish
from r13core.registry.recent import RecentRecords
from r13core.registry.signing import Signer, signed
from r13core.storage.blobs import BlobStore
from r13core.storage.packages import JSONDict, PackageStorage, TarballRecord
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
    recent: RecentRecords | None = None,
) -> Committed[str | None]:
    """``PUT /:pkg`` with ``_attachments``; the committed change (value: the new version).

    ``sender`` names who acts in the webhooks' events (None: none queued).
    ``signer`` signs the new version (``dist.signatures``, r13core/registry/signing.py)
    before the commit; without one the version is stored unsigned.

    ``check_owner`` is asked once before any work (a fast refusal, before any
    file is written) and again inside the commit's transaction. An identical
    retry commits nothing (value None) and answers the package as it is.

    ``recent`` answers the checks before the transaction from a remembered document when
    the package has not changed since (r13core/registry/recent.py), and learns the
    committed one.
    """
    key = str(name)
    with blobs.hold():
        found = storage.package(key) if recent is None else recent.package(key)
        if found is not None and check_owner is not None:
            check_owner(owner_names(found.doc))
        plan = check_publish(
            name,
            body,
            limits,
            current=None if found is None else list(found.doc["versions"]),
            used=lambda version: storage.used_version(key, version),
            publisher=publisher,
            mark_types=mark_types,
        )
        if plan.retry:
            assert found is not None  # check_publish: a retry is of a version still there
            return Committed(key, None, found.rev)
        if signer is not None:
            plan = replace(plan, document=signed(plan.document, key, plan.version, signer))
        return commit_publish(
            storage,
            blobs,
            plan,
            check_owner,
            sender=sender,
            saved=None if recent is None else recent.committed,
        )


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
    saved: Callable[[str, int, JSONDict], None] | None = None,
) -> Committed[str | None]:
    """Write the tarball, then commit the new version (the caller holds ``blobs.hold()``).

    Inside the transaction the package may have changed since the checks:
    ownership, the version number and the body's other versions and tags are
    decided again against it. A racing identical publish that committed first
    is a success with nothing more written (value None).
    """
    blobs.put(plan.data)  # durable and verified before the commit below

    def add_version(draft: Draft) -> str | None:
        doc, version = draft.doc, plan.version
        used = draft.tx.used_version(plan.name, version)
        if used is not None:  # another worker published it meanwhile
            if used == plan.sha512 and not draft.new and version in doc["versions"]:
                return None
            raise VersionExists(f"{plan.name}@{version} was already published")
        for v in plan.versions:  # every other body version must still exist
            if v != version and v not in doc["versions"]:
                raise InvalidPublish(f"a publish carries exactly one new version ({v})")
        for tag, target in plan.tags.items():
            if target != version and target not in doc["versions"]:
                raise InvalidPublish(f"dist-tag {tag!r} points at unknown version {target!r}")
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

    return change_package(
        storage,
        plan.name,
        add_version,
        check_owner=check_owner,
        create=lambda now: _new_document(plan, now),
        sender=sender,
        saved=saved,
    )


__all__ = ["PublishPlan", "check_publish", "commit_publish", "publish"]
