"""The checks a publish passes before anything is written, as one pure function.

:func:`check_publish` takes the body npm (or pnpm, yarn, bun) PUTs to ``/:pkg``
and the package as it is now, and returns a :class:`PublishPlan`: everything
the commit (r13core/registry/publish.py) needs — the version, the tarball's
bytes and hashes, the version document to store, the dist-tags — or raises
InvalidPublish with a message that names the failed check (VersionExists for
a version number that was used before with other bytes). The order is
cheapest first; the tarball is decoded and inspected (r13core/tarball.py) only
once the body's shape is right, and the version document is built
(r13core/registry/manifest.py) only for a version that is really new.
docs/registry-api.md lists every check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from r13core.errors import InvalidName, InvalidPublish, InvalidValue, VersionExists
from r13core.names import PackageName
from r13core.registry.attestations import Attestation, check_bundle, stored_dist
from r13core.registry.manifest import version_document
from r13core.semver import is_valid_range
from r13core.tarball import Limits, check_integrity, decode_attachment, inspect_tarball

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class PublishPlan:
    """A publish that passed every check: everything its commit needs.

    ``document`` is the version document to store (built from the tarball's
    package.json, with r13's ``dist``, ``_id`` and ``_npmUser``; the commit adds
    ``maintainers`` as the package has them then). ``attestation`` is the
    provenance bundle that came with it (r13core/registry/attestations.py).
    ``retry`` marks an identical
    retry of a version that is published with these very bytes: there is
    nothing to write, the answer is the package as it is. ``versions`` are every
    version the body names and ``tags`` its dist-tags: the commit checks them
    again against the package inside its transaction.
    """

    name: str
    version: str
    publisher: str
    data: bytes  # the decoded tarball
    sha512: str  # hex, the blob's address
    document: JSONDict
    tags: dict[str, str]
    readme: object
    versions: tuple[str, ...]
    retry: bool = False
    attestation: Attestation | None = None


def _never_used(version: str) -> str | None:
    return None


def check_tag(tag: object) -> str:
    """npm's dist-tag rules: URL-safe, non-empty, not something that reads as a version/range."""
    if not isinstance(tag, str) or not tag or len(tag) > 128:
        raise InvalidValue(f"invalid dist-tag {tag!r}")
    if any(not (c.isascii() and (c.isalnum() or c in "-._~")) for c in tag):
        raise InvalidValue(f"invalid dist-tag {tag!r}: URL-safe characters only")
    if is_valid_range(tag):
        raise InvalidValue(f"invalid dist-tag {tag!r}: a tag cannot look like a version or range")
    return tag


def _attachment(name: PackageName, attachments: object) -> tuple[str, JSONDict, list[str]]:
    """(the .tgz attachment's name, its object, the names of .sigstore bundles)."""
    if not isinstance(attachments, dict):
        raise InvalidPublish("_attachments must be an object")
    tgz = [a for a in attachments if a.endswith(".tgz")]
    sigstore = [a for a in attachments if a.endswith(".sigstore")]
    if len(tgz) != 1 or len(tgz) + len(sigstore) != len(attachments) or len(sigstore) > 1:
        raise InvalidPublish(
            "a publish carries exactly one .tgz attachment (and at most one .sigstore)"
        )
    attachment = attachments[tgz[0]]
    if not isinstance(attachment, dict):
        raise InvalidPublish(f"attachment {tgz[0]!r} must be an object")
    return tgz[0], attachment, sigstore


def _version_of(name: PackageName, attachment_name: str) -> str:
    try:
        return name.version_of_file(attachment_name)
    except InvalidName:
        raise InvalidPublish(
            f"attachment name {attachment_name!r} does not match {name.bare}-<version>.tgz"
        ) from None


def _manifest(key: str, version: str, versions: object, current: Collection[str]) -> JSONDict:
    if not isinstance(versions, dict) or version not in versions:
        raise InvalidPublish(f"versions must contain {version}, the attachment's version")
    extra = [v for v in versions if v != version and v not in current]
    if extra:
        raise InvalidPublish(
            f"a publish carries exactly one new version (also got {sorted(extra)})"
        )
    manifest = versions[version]
    if not isinstance(manifest, dict):
        raise InvalidPublish(f"versions[{version!r}] must be an object")
    if manifest.get("name") != key:
        raise InvalidPublish(f"manifest name {manifest.get('name')!r} is not {key}")
    if manifest.get("version") != version:
        raise InvalidPublish(f"manifest version {manifest.get('version')!r} is not {version}")
    return manifest


def _tags(body: JSONDict, version: str, current: Collection[str]) -> dict[str, str]:
    tags = body.get("dist-tags") or {}
    if not isinstance(tags, dict):
        raise InvalidPublish("dist-tags must be an object")
    for tag, target in tags.items():
        try:
            check_tag(tag)
        except InvalidValue as exc:
            raise InvalidPublish(str(exc)) from None
        if target != version and target not in current:
            raise InvalidPublish(f"dist-tag {tag!r} points at unknown version {target!r}")
    return tags


def check_publish(
    name: PackageName,
    body: JSONDict,
    limits: Limits,
    *,
    current: Collection[str] | None,
    used: Callable[[str], str | None] = _never_used,
    publisher: str = "",
    mark_types: bool = False,
) -> PublishPlan:
    """Every check on a publish body (InvalidPublish naming the failed one); the plan.

    ``current`` are the package's versions now (None: no such package yet, so
    the name must be one a new package may take); ``used(version)`` the sha512
    a version number was first published with (versions stay used after an
    unpublish), None if never. ``publisher`` goes into ``_npmUser`` (and is the
    first maintainer of a new package); ``mark_types`` (PREMIUM_TYPES is on)
    marks a version that ships TypeScript types with ``_hasTypes``.
    """
    key = str(name)
    if current is None:
        try:
            PackageName.parse(key, new=True)
        except InvalidName as exc:
            raise InvalidPublish(str(exc)) from None
    versions_now = current or ()
    if body.get("name") != key:
        raise InvalidPublish(f"body name {body.get('name')!r} does not match URL name {name}")
    if "_id" in body and body["_id"] != key:
        raise InvalidPublish(f"body _id {body['_id']!r} does not match URL name {name}")
    att_name, attachment, sigstore = _attachment(name, body["_attachments"])
    version = _version_of(name, att_name)
    manifest = _manifest(key, version, body.get("versions"), versions_now)
    data = decode_attachment(
        attachment.get("data"), attachment.get("length"), limit=limits.max_tarball
    )
    integrity, shasum = check_integrity(data, manifest.get("dist"))
    info = inspect_tarball(data, limits)
    if info.manifest.get("name") != key:
        raise InvalidPublish(
            f"package.json in the tarball names {info.manifest.get('name')!r}, not {key}"
        )
    if info.manifest.get("version") != version:
        raise InvalidPublish(
            f"package.json in the tarball has version {info.manifest.get('version')!r}, "
            f"not {version}"
        )
    tags = _tags(body, version, versions_now)
    readme = body.get("readme", manifest.get("readme"))
    sha512 = hashlib.sha512(data).hexdigest()
    attestation = None
    for bundle_name in sigstore:
        attestation = check_bundle(
            bundle_name,
            body["_attachments"][bundle_name],
            name=name,
            version=version,
            sha512_hex=sha512,
        )
    plan = PublishPlan(
        key,
        version,
        publisher,
        data,
        sha512,
        {},
        tags,
        readme,
        tuple(body["versions"]),
        attestation=attestation,
    )
    # A number used before is decided before the version document is built: an
    # identical retry of a version stored under older rules must still succeed.
    first = used(version)
    if first is not None:
        if version not in versions_now:
            raise VersionExists(
                f"{key}@{version} was published before and unpublished; a version cannot be reused"
            )
        if first != sha512:
            raise VersionExists(f"{key}@{version} already exists with other contents")
        return replace(plan, retry=True)
    document = version_document(manifest, info, name)
    document["_id"] = f"{key}@{version}"
    document["_npmUser"] = {"name": publisher, "email": ""}
    document["dist"] = {
        "integrity": integrity,
        "shasum": shasum,
        "fileCount": info.file_count,
        "unpackedSize": info.unpacked_size,
    }
    if attestation is not None:
        document["dist"]["attestations"] = stored_dist(attestation.predicate_type)
    if mark_types and info.has_types:
        document["_hasTypes"] = True
    return replace(plan, document=document)


__all__ = ["PublishPlan", "check_publish", "check_tag"]
