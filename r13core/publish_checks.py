"""The checks a publish body passes before anything is written (pure functions).

:func:`check_publish` takes the body npm (or pnpm, yarn, bun) PUTs to ``/:pkg``
and returns what the registry stores, or raises InvalidPublish with a message
that names the failed check. The order is cheapest first; the tarball is
decoded and inspected (r13core/tarball.py) only once the body's shape is right.
docs/registry-api.md lists every check.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from r13core.errors import InvalidName, InvalidPublish, InvalidValue
from r13core.names import PackageName
from r13core.semver import is_valid_range
from r13core.tarball import Limits, TarballInfo, check_integrity, decode_attachment, inspect_tarball

JSONDict = dict[str, Any]
MAX_SIGSTORE: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class Publish:
    """A publish that passed every check: the new version and what to store for it."""

    version: str
    manifest: JSONDict  # versions[version] as the body sent it
    data: bytes  # the decoded tarball
    integrity: str
    shasum: str
    info: TarballInfo
    tags: dict[str, str]
    readme: object


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
    for extra in sigstore:
        bundle = attachments[extra]
        if not isinstance(bundle, dict):
            raise InvalidPublish(f"attachment {extra!r} must be an object")
        decode_attachment(bundle.get("data"), bundle.get("length"), limit=MAX_SIGSTORE)
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
    name: PackageName, body: JSONDict, current: Collection[str], limits: Limits
) -> Publish:
    """Every check on a publish body (InvalidPublish naming the failed one).

    ``current`` are the package's versions now (empty for a new package).
    """
    key = str(name)
    if body.get("name") != key:
        raise InvalidPublish(f"body name {body.get('name')!r} does not match URL name {name}")
    if "_id" in body and body["_id"] != key:
        raise InvalidPublish(f"body _id {body['_id']!r} does not match URL name {name}")
    att_name, attachment, _ = _attachment(name, body["_attachments"])
    version = _version_of(name, att_name)
    manifest = _manifest(key, version, body.get("versions"), current)
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
    tags = _tags(body, version, current)
    readme = body.get("readme", manifest.get("readme"))
    return Publish(version, manifest, data, integrity, shasum, info, tags, readme)


__all__ = ["Publish", "check_publish", "check_tag"]
