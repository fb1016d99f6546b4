"""The registry's signatures on its own versions: made at publish, added once to older ones.

A publish signs the new version before its commit (r13core/registry/publish.py):
``dist.signatures = [{keyid, sig}]`` over ``name@version:integrity`` with the
active key of r13core/signing_keys.py. The signature is stored with the version,
so rendering a packument costs nothing more than its bytes, a rotation leaves
every old signature as it was (the old key stays served), and every worker
serves the same bytes.

Versions published before r13 signed anything get theirs from
:func:`sign_unsigned`, a migration that ``r13 serve`` runs once at start (and
``r13 keys signing backfill`` runs on demand): one write transaction per package
that has an unsigned version, adding signatures and nothing else. Its progress
is kept by the packages themselves (a signed version is skipped), so a crash
half way is finished by the next start. docs/signatures.md compares this with
signing while rendering.
"""

from __future__ import annotations

from typing import Any, Protocol

from r13core.errors import NotFound
from r13core.registry.changes import Draft, change_package
from r13core.signatures import integrity_of
from r13core.storage.packages import JSONDict, PackageStorage


class SignatureLike(Protocol):
    """What a signer returns: one ``dist.signatures`` entry."""

    def as_json(self) -> dict[str, str]: ...


class Signer(Protocol):
    """Signs ``name@version:integrity`` (r13core/signing_keys.py ``SigningKeys``)."""

    def sign(self, name: str, version: str, integrity: str) -> SignatureLike: ...


def signed(document: JSONDict, name: str, version: str, signer: Signer) -> JSONDict:
    """``document`` (a version) with ``dist.signatures`` made by ``signer`` (a new dict)."""
    dist = dict(document.get("dist") or {})
    dist["signatures"] = [signer.sign(name, version, integrity_of(dist)).as_json()]
    return {**document, "dist": dist}


def unsigned_versions(doc: JSONDict) -> list[str]:
    """The versions of a package document that carry no registry signature."""
    out = []
    for version, manifest in doc.get("versions", {}).items():
        dist: Any = manifest.get("dist") if isinstance(manifest, dict) else None
        if isinstance(dist, dict) and not dist.get("signatures"):
            out.append(version)
    return out


def sign_unsigned(storage: PackageStorage, signer: Signer) -> tuple[int, int]:
    """Sign every stored version that has no signature; ``(packages, versions)`` changed.

    Each package is changed in its own transaction, which looks again at the
    versions it holds then (a version published meanwhile is signed already).
    """
    todo = [record.name for record in storage.packages() if unsigned_versions(record.doc)]
    packages = versions = 0
    for name in todo:

        def add(draft: Draft, name: str = name) -> int:
            missing = unsigned_versions(draft.doc)
            for version in missing:
                draft.doc["versions"][version] = signed(
                    draft.doc["versions"][version], name, version, signer
                )
            if missing:
                draft.touch()  # a new rev: every render cache makes the packument again
            return len(missing)

        try:
            done = change_package(storage, name, add)
        except NotFound:
            continue  # unpublished meanwhile
        if done.value:
            packages += 1
            versions += done.value
    return packages, versions


__all__ = ["SignatureLike", "Signer", "sign_unsigned", "signed", "unsigned_versions"]
