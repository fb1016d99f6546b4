"""The stored package document: its shape and the small rules every job shares.

One document per package (:class:`r13core.storage.packages.PackageRecord`)::

    {"name", "created", "modified", "dist-tags": {tag: v}, "versions": {v: manifest},
     "time": {v: iso}, "maintainers": [{"name", "email"}], "readme",
     "description", "keywords", "homepage", "repository", "bugs", "license", "author"}

Version manifests keep the descriptive fields the client sent and, for every
field that changes what gets installed or run, the tarball's own package.json
(r13core/registry/manifest.py), with r13's own ``dist`` (integrity, shasum,
fileCount, unpackedSize; ``tarball`` is added when rendering, always under
``public_url``), ``_id``, ``_npmUser``, ``maintainers``, ``hasInstallScript``
and ``_hasShrinkwrap`` derived from the tarball, and ``_hasTypes: true`` when
PREMIUM_TYPES was on at publish and the package ships TypeScript types.

The top-level descriptive fields (:data:`TOP_FIELDS`) are copies of the
``latest`` version's; every change that moves ``latest`` copies them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, Protocol

from r13core.errors import NotFound, RevConflict
from r13core.semver import version_key
from r13core.storage.packages import JSONDict, PackageRecord

# Top-level fields copied from the `latest` version's manifest.
TOP_FIELDS: Final = (
    "description",
    "keywords",
    "homepage",
    "repository",
    "bugs",
    "license",
    "author",
)


def now() -> str:
    """The current UTC time as npm writes it (``2026-11-28T12:00:00.000Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rev_string(name: str, rev: int) -> str:
    """The ``_rev`` clients see for a package at ``rev``."""
    # CouchDB's shape, "<n>-<hex>"; the number alone would do, the hash makes a
    # rev from one package useless for another.
    return f"{rev}-{hashlib.sha256(f'{name}:{rev}'.encode()).hexdigest()[:32]}"


def check_rev(record: PackageRecord, rev: object) -> None:
    """RevConflict unless ``rev`` is the ``_rev`` of ``record`` as it is now."""
    if rev != rev_string(record.name, record.rev):
        raise RevConflict(
            f"stale or unknown _rev {rev!r} for {record.name}; fetch it again with ?write=true"
        )


def latest_of(versions: Iterable[str]) -> str | None:
    """The highest non-prerelease version, else the highest one."""
    parsed = sorted(versions, key=version_key)
    stable = [v for v in parsed if not version_key(v).prerelease]
    best = stable or parsed
    return best[-1] if best else None


def copy_top_fields(doc: JSONDict, manifest: JSONDict, readme: object) -> None:
    """Make ``doc``'s top-level fields those of ``manifest`` (the new ``latest``)."""
    for field in TOP_FIELDS:
        if field in manifest:
            doc[field] = manifest[field]
        else:
            doc.pop(field, None)
    if isinstance(readme, str):
        doc["readme"] = readme
    if isinstance(manifest.get("readmeFilename"), str):
        doc["readmeFilename"] = manifest["readmeFilename"]


def owner_names(doc: JSONDict) -> list[str]:
    """The maintainers' names (what an ownership check compares)."""
    return [str(m.get("name", "")) for m in doc.get("maintainers", [])]


class HasPackages(Protocol):
    """A storage or an open write: anything that reads a package by name."""

    def package(self, name: str) -> PackageRecord | None: ...


def existing(source: HasPackages, name: str) -> PackageRecord:
    """The package from the store or an open write, or NotFound."""
    record = source.package(name)
    if record is None:
        raise NotFound(f"package {name} not found")
    return record


__all__ = [
    "TOP_FIELDS",
    "check_rev",
    "copy_top_fields",
    "existing",
    "latest_of",
    "now",
    "owner_names",
    "rev_string",
]
