"""Packuments and version documents as clients read them, rendered once per change.

A package's full and abbreviated packuments are rendered together (plain and
gzip, with an ETag) the first time they are asked for at a rev, kept in the
storage's render table (so every worker process shares them) and in a small
in-process LRU validated by the package's ``rev`` — one indexed lookup per
request — so a change made by one worker is served by every other on its next
request. ``rev`` comes from one counter that only grows (r13core/storage/packages.py),
so ``(name, rev)`` never names two states and the caches need no invalidation.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from r13core.errors import NotFound
from r13core.names import PackageName
from r13core.registry.attestations import rendered_dist
from r13core.registry.documents import TOP_FIELDS, existing, rev_string
from r13core.storage.packages import JSONDict, PackageRecord, PackageStorage, RenderRecord

FULL: Final = "full"
ABBREVIATED: Final = "abbreviated"
# The install subset of a version (npm's "corgi" document).
ABBREVIATED_FIELDS: Final = (
    "name",
    "version",
    "dist",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "acceptDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "libc",
    "funding",
    "license",
    "_hasShrinkwrap",
    "hasInstallScript",
)
CACHE_SIZE: Final = 2048
# A change-signal value no storage returns: the copy must be checked against its rev.
_NEVER: Final = object()


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


@dataclass(frozen=True)
class Rendered:
    """A rendered JSON document: body, its gzip, and a quoted strong ETag."""

    body: bytes
    gzip: bytes
    etag: str

    @classmethod
    def of(cls, value: Any) -> Rendered:
        """Render ``value`` as compact UTF-8 JSON (gzip with mtime 0: same bytes, same gzip)."""
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(body, gzip.compress(body, compresslevel=6, mtime=0), _etag(body))


@dataclass(frozen=True)
class BlobRef:
    """A stored tarball to send: file path, size, SRI integrity, quoted ETag."""

    path: Path
    size: int
    integrity: str
    etag: str


class Renderer:
    """Renders a storage's packages for ``public_url``, through the two caches."""

    def __init__(
        self, storage: PackageStorage, public_url: str, *, cache_size: int = CACHE_SIZE
    ) -> None:
        self.storage = storage
        self.public_url = public_url.rstrip("/")
        self._cache_size = cache_size
        # key -> (rev, rendered, the package-change signal's value when rev was last checked)
        self._cache: OrderedDict[tuple[str, str], tuple[int, Rendered, object]] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, str], rev: int, seen: object = _NEVER) -> Rendered | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] != rev:
                return None
            self._cache[key] = (rev, hit[1], seen)
            self._cache.move_to_end(key)
            return hit[1]

    def _unchanged(self, key: tuple[str, str], seen: object) -> Rendered | None:
        """The cached copy when no package has changed since it was last checked."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[2] != seen:
                return None
            self._cache.move_to_end(key)
            return hit[1]

    def _remember(
        self, key: tuple[str, str], rev: int, rendered: Rendered, seen: object = _NEVER
    ) -> None:
        with self._lock:
            self._cache[key] = (rev, rendered, seen)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def packument(self, name: PackageName, *, abbreviated: bool) -> Rendered:
        """The full or abbreviated packument (from the render cache); NotFound if absent."""
        key = str(name)
        kind = ABBREVIATED if abbreviated else FULL
        # No package changed anywhere since this copy was checked: no query at all. Read
        # before the rev, so a change committed in between is seen by the next request.
        seen = self.storage.packages_version()
        hit = self._unchanged((key, kind), seen)
        if hit is not None:
            return hit
        rev = self.storage.package_rev(key)
        if rev is None:
            raise NotFound(f"package {name} not found")
        hit = self._cached((key, kind), rev, seen)
        if hit is not None:
            return hit
        stored = self.storage.render(key, kind)
        if stored is not None and stored.rev == rev and stored.key == self.public_url:
            rendered = Rendered(stored.body, stored.gzip, stored.etag)
            self._remember((key, kind), rev, rendered, seen)
            return rendered
        record = existing(self.storage, key)
        renders = {FULL: self.render_full(record), ABBREVIATED: self.render_abbreviated(record)}
        for k, r in renders.items():
            self.storage.save_render(
                key, k, RenderRecord(record.rev, self.public_url, r.body, r.gzip, r.etag)
            )
            self._remember((key, k), record.rev, r, seen if record.rev == rev else _NEVER)
        return renders[kind]

    def version(self, name: PackageName, version_or_tag: str) -> Rendered:
        """One version object, by version or dist-tag; NotFound if neither."""
        record = existing(self.storage, str(name))
        doc = record.doc
        version = doc["dist-tags"].get(version_or_tag, version_or_tag)
        manifest = doc["versions"].get(version)
        if manifest is None:
            raise NotFound(f"version {version_or_tag!r} of {name} not found")
        key = (str(name), "v:" + version)
        hit = self._cached(key, record.rev)
        if hit is not None:
            return hit
        rendered = Rendered.of(self._version_out(record.name, version, manifest))
        self._remember(key, record.rev, rendered)
        return rendered

    def _version_out(self, name: str, version: str, manifest: JSONDict) -> JSONDict:
        out = dict(manifest)
        dist = rendered_dist(dict(out.get("dist") or {}), self.public_url, name, version)
        dist["tarball"] = f"{self.public_url}/{PackageName.parse(name).tarball_path(version)}"
        out["dist"] = dist
        return out

    def render_full(self, record: PackageRecord) -> Rendered:
        """The full packument of ``record`` (``_rev``, every version, readme)."""
        doc, name = record.doc, record.name
        out: JSONDict = {
            "_id": name,
            "_rev": rev_string(name, record.rev),
            "name": name,
        }
        for field in TOP_FIELDS:
            if field in doc:
                out[field] = doc[field]
        out["dist-tags"] = doc["dist-tags"]
        out["versions"] = {v: self._version_out(name, v, m) for v, m in doc["versions"].items()}
        out["time"] = {"created": doc["created"], "modified": doc["modified"], **doc["time"]}
        out["maintainers"] = doc["maintainers"]
        out["readme"] = doc.get("readme", "")
        if doc.get("readmeFilename"):
            out["readmeFilename"] = doc["readmeFilename"]
        return Rendered.of(out)

    def render_abbreviated(self, record: PackageRecord) -> Rendered:
        """The install document of ``record``: each version cut to :data:`ABBREVIATED_FIELDS`."""
        doc, name = record.doc, record.name
        versions = {}
        for v, m in doc["versions"].items():
            full = self._version_out(name, v, m)
            versions[v] = {f: full[f] for f in ABBREVIATED_FIELDS if f in full}
        out = {
            "name": name,
            "modified": doc["modified"],
            "dist-tags": doc["dist-tags"],
            "time": {"created": doc["created"], "modified": doc["modified"], **doc["time"]},
            "versions": versions,
        }
        return Rendered.of(out)


__all__ = ["ABBREVIATED", "ABBREVIATED_FIELDS", "FULL", "BlobRef", "Rendered", "Renderer"]
