"""Changes to a published package: deprecate, unpublish, owners, dist-tags.

Each function checks what it can before the transaction (malformed input
fails without taking the write lock), then hands one change function to
:func:`r13core.registry.changes.change_package`, which reads the package,
re-checks ownership and the ``_rev``, applies the change and writes it.
They return the :class:`Committed` change; the registry service
(r13core/registry/service.py) answers the client, tells listeners and writes
the audit event.
"""

from __future__ import annotations

from typing import Any

from r13core.errors import BadRequest, InvalidValue, NotFound
from r13core.keys import KEY_PRINCIPAL
from r13core.names import PackageName
from r13core.registry.changes import UNCHECKED, Committed, Draft, OwnerCheck, change_package
from r13core.registry.documents import copy_top_fields
from r13core.registry.publish_checks import check_tag
from r13core.registry.storage import RegistryStorage
from r13core.semver import parse_version
from r13core.storage.packages import JSONDict


def apply_deprecations(doc: JSONDict, versions: object) -> bool:
    """Set or clear ``versions[v].deprecated`` as the body says; whether anything changed.

    An empty string clears; a version without ``deprecated`` is left alone; a
    version the package does not have is BadRequest (publish it with its tarball).
    """
    if versions is None:
        return False
    if not isinstance(versions, dict):
        raise BadRequest("versions must be an object")
    changed = False
    for v, manifest in versions.items():
        if v not in doc["versions"]:
            raise BadRequest(f"version {v!r} does not exist (publish it with its tarball)")
        if not isinstance(manifest, dict) or "deprecated" not in manifest:
            continue
        message = manifest["deprecated"]
        if not isinstance(message, str):
            raise BadRequest(f"versions[{v!r}].deprecated must be a string")
        ours = doc["versions"][v]
        if message:
            changed |= ours.get("deprecated") != message
            ours["deprecated"] = message
        elif "deprecated" in ours:
            del ours["deprecated"]
            changed = True
    return changed


def update_metadata(
    storage: RegistryStorage,
    name: PackageName,
    body: dict[str, Any],
    check_owner: OwnerCheck | None,
    sender: str | None = None,
) -> Committed[None]:
    """``PUT /:pkg`` without attachments: deprecations (a ``_rev`` in the body is checked)."""
    key = str(name)
    if body.get("name", key) != key or body.get("_id", key) != key:
        raise BadRequest(f"body name does not match URL name {name}")

    def deprecate(draft: Draft) -> None:
        if apply_deprecations(draft.doc, body.get("versions")):
            draft.touch()

    rev = body.get("_rev", UNCHECKED)
    return change_package(storage, key, deprecate, rev=rev, check_owner=check_owner, sender=sender)


def _maintainers(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("maintainers must be a non-empty list")
    out = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise BadRequest("each maintainer needs a name")
        email = m.get("email", "")
        out.append({"name": m["name"], "email": email if isinstance(email, str) else ""})
    return out


def _check_new_maintainers(
    storage: RegistryStorage, maintainers: list[dict[str, str]], current: list[dict[str, Any]]
) -> None:
    """A maintainer being added must be a user that exists, or ``key:<id>`` of a key.

    A name nobody has yet would go to whoever signs up with it first.
    """
    known = {str(m.get("name")) for m in current}
    for m in maintainers:
        name = m["name"]
        if name in known:
            continue
        if name.startswith(KEY_PRINCIPAL):
            if storage.get_key(name[len(KEY_PRINCIPAL) :]) is None:
                raise BadRequest(f"no key {name[len(KEY_PRINCIPAL) :]!r}: cannot add {name}")
        elif storage.get_user(name) is None:
            raise BadRequest(f"no user {name!r}: add the user first, then the owner")


def change_by_rev(
    storage: RegistryStorage,
    name: PackageName,
    rev: str,
    body: dict[str, Any],
    check_owner: OwnerCheck | None,
    sender: str | None = None,
) -> Committed[None]:
    """``PUT /:pkg/-rev/:rev``: unpublish the versions missing from the body, set maintainers.

    Deprecations in the body apply too; when no version is left the package goes.
    """

    def change(draft: Draft) -> None:
        doc = draft.doc
        versions = body.get("versions")
        if versions is not None:
            if apply_deprecations(doc, versions):
                draft.touch()
            assert isinstance(versions, dict)
            gone = [v for v in doc["versions"] if v not in versions]
            if gone and len(gone) == len(doc["versions"]):
                draft.delete()
                return
            if gone:
                draft.remove_versions(gone)
        if "maintainers" in body:
            maintainers = _maintainers(body["maintainers"])
            _check_new_maintainers(storage, maintainers, doc["maintainers"])
            if maintainers != doc["maintainers"]:
                doc["maintainers"] = maintainers
                for manifest in doc["versions"].values():
                    manifest["maintainers"] = maintainers
                draft.touch()

    return change_package(
        storage, str(name), change, rev=rev, check_owner=check_owner, sender=sender
    )


def unpublish(
    storage: RegistryStorage,
    name: PackageName,
    rev: str,
    check_owner: OwnerCheck | None,
    sender: str | None = None,
) -> Committed[None]:
    """``DELETE /:pkg/-rev/:rev``: the whole package goes (its version numbers stay used)."""
    return change_package(
        storage, str(name), Draft.delete, rev=rev, check_owner=check_owner, sender=sender
    )


def remove_tarball(
    storage: RegistryStorage,
    name: PackageName,
    filename: str,
    rev: str,
    check_owner: OwnerCheck | None,
    sender: str | None = None,
) -> Committed[None]:
    """``DELETE /:pkg/-/:file/-rev/:rev``, the last step of npm's unpublish.

    If the version is already gone (the usual case: the PUT before removed it)
    this only checks the rev; if it is still there, it is unpublished here.
    """
    version = name.version_of_file(filename)

    def change(draft: Draft) -> None:
        if version not in draft.doc["versions"]:
            draft.tx.remove_tarball(draft.name, version)
        elif len(draft.doc["versions"]) == 1:
            draft.delete()
        else:
            draft.remove_versions([version])

    return change_package(
        storage, str(name), change, rev=rev, check_owner=check_owner, sender=sender
    )


def set_dist_tag(
    storage: RegistryStorage,
    name: PackageName,
    tag: str,
    version: str,
    check_owner: OwnerCheck | None,
    sender: str | None = None,
) -> Committed[None]:
    """Point ``tag`` at ``version`` (which must exist); tags that read as ranges are refused."""
    check_tag(tag)
    if not isinstance(version, str):
        raise InvalidValue("a dist-tag's value is a version string")
    parse_version(version)

    def change(draft: Draft) -> None:
        doc = draft.doc
        if version not in doc["versions"]:
            raise NotFound(f"version {version} of {name} not found")
        if doc["dist-tags"].get(tag) == version:
            return
        doc["dist-tags"][tag] = version
        if tag == "latest":
            copy_top_fields(doc, doc["versions"][version], None)
        draft.touch()

    return change_package(storage, str(name), change, check_owner=check_owner, sender=sender)


def remove_dist_tag(
    storage: RegistryStorage,
    name: PackageName,
    tag: str,
    check_owner: OwnerCheck | None,
    sender: str | None = None,
) -> Committed[None]:
    """Remove ``tag``; ``latest`` cannot be removed; NotFound if the tag is not set."""
    if tag == "latest":
        raise InvalidValue("the latest tag cannot be removed")

    def change(draft: Draft) -> None:
        if tag not in draft.doc["dist-tags"]:
            raise NotFound(f"dist-tag {tag!r} of {name} not found")
        del draft.doc["dist-tags"][tag]
        draft.touch()

    return change_package(storage, str(name), change, check_owner=check_owner, sender=sender)


__all__ = [
    "apply_deprecations",
    "change_by_rev",
    "remove_dist_tag",
    "remove_tarball",
    "set_dist_tag",
    "unpublish",
    "update_metadata",
]
