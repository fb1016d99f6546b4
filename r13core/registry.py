"""The registry service: npm's package semantics over a Storage and a BlobStore.

The app parses requests and calls one method here per request; this module
knows the protocol's rules (docs/registry-api.md) and nothing about HTTP.

Stored document (one per package, :class:`r13core.storage.packages.PackageRecord`)::

    {"name", "created", "modified", "dist-tags": {tag: v}, "versions": {v: manifest},
     "time": {v: iso}, "maintainers": [{"name", "email"}], "readme",
     "description", "keywords", "homepage", "repository", "bugs", "license", "author"}

Version manifests keep the descriptive fields the client sent and, for every
field that changes what gets installed or run, the tarball's own package.json
(r13core/manifest.py; the body checks are in r13core/publish_checks.py), with
r13's own ``dist`` (integrity, shasum, fileCount, unpackedSize; ``tarball`` is
added when rendering, always under ``public_url``), ``_id``, ``_npmUser``,
``maintainers``, ``hasInstallScript`` and ``_hasShrinkwrap`` derived from the
tarball, and ``_hasTypes: true`` when PREMIUM_TYPES was on at publish and the
package ships TypeScript types.

Packuments are rendered once per change (full and abbreviated, plain and
gzip, with an ETag), kept in the storage's render table (so every worker
process shares them) and in a small in-process LRU validated by the
package's ``rev`` (one indexed lookup per request), so a change made by one
worker is served by every other on its next request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from r13core.advisories import SEVERITIES, Advisories, AuditLimits, Visible
from r13core.config import Config13, Feature
from r13core.errors import (
    BadRequest,
    InvalidName,
    InvalidPublish,
    InvalidValue,
    NotFound,
    RevConflict,
    VersionExists,
)
from r13core.jsonsafe import check_document
from r13core.keys import KEY_PRINCIPAL
from r13core.manifest import version_document
from r13core.names import PackageName
from r13core.publish_checks import check_publish
from r13core.publish_checks import check_tag as _check_tag
from r13core.search import search as search_packages
from r13core.search import summarize
from r13core.semver import Version, parse_version, version_key
from r13core.storage.advisories import AdvisoryStorage
from r13core.storage.blobs import BlobStore
from r13core.storage.identity import IdentityStorage
from r13core.storage.packages import JSONDict, PackageRecord, PackageStorage, RenderRecord, WriteTxn
from r13core.storage.packages import TarballRecord as _TarballRow
from r13core.tarball import Limits, sri_from_hex


class RegistryStorage(PackageStorage, AdvisoryStorage, IdentityStorage, Protocol):
    """What the registry uses: packages, advisories, and keys and users (as maintainers)."""


# Raises (Forbidden) unless the caller may change a package with these maintainers.
OwnerCheck = Callable[[list[str]], None]

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
# Top-level fields copied from the `latest` version's manifest.
_TOP_FIELDS: Final = (
    "description",
    "keywords",
    "homepage",
    "repository",
    "bugs",
    "license",
    "author",
)
_CACHE_SIZE: Final = 2048

log = logging.getLogger("r13.registry")


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


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rev_string(name: str, rev: int) -> str:
    # CouchDB's shape, "<n>-<hex>"; the number alone would do, the hash makes a
    # rev from one package useless for another.
    return f"{rev}-{hashlib.sha256(f'{name}:{rev}'.encode()).hexdigest()[:32]}"


def _latest_of(versions: Iterator[str] | list[str]) -> str | None:
    """The highest non-prerelease version, else the highest one."""
    parsed = sorted(versions, key=version_key)
    stable = [v for v in parsed if not version_key(v).prerelease]
    best = stable or parsed
    return best[-1] if best else None


class Registry:
    """npm registry semantics over a :class:`RegistryStorage` and a :class:`BlobStore`.

    ``config`` returns the live record; flags are read on every call.
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
    ) -> None:
        self.storage = storage
        self.advisories = Advisories(storage, audit_limits)
        self.blobs = blobs
        self.public_url = public_url.rstrip("/")
        self.config = config
        self.limits = limits or Limits()
        self._cache: OrderedDict[tuple[str, str], tuple[int, Rendered]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every committed publish and unpublish (in that thread)."""
        self._listeners.append(listener)

    def _notify(self, change: PackageChange) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # the change is committed: a listener cannot undo it
                log.exception("a listener failed on %s", change)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        storage: RegistryStorage | None = None,
        public_url: str,
        config: Callable[[], Config13],
        limits: Limits | None = None,
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
        )

    # -- reading --------------------------------------------------------------

    def _record(self, name: PackageName) -> PackageRecord:
        return _existing(self.storage, name)

    def _cached(self, key: tuple[str, str], rev: int) -> Rendered | None:
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] != rev:
                return None
            self._cache.move_to_end(key)
            return hit[1]

    def _remember(self, key: tuple[str, str], rev: int, rendered: Rendered) -> None:
        with self._cache_lock:
            self._cache[key] = (rev, rendered)
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    def packument(self, name: PackageName, *, abbreviated: bool) -> Rendered:
        """The full or abbreviated packument (from the render cache); NotFound if absent."""
        key = str(name)
        kind = ABBREVIATED if abbreviated else FULL
        rev = self.storage.package_rev(key)
        if rev is None:
            raise NotFound(f"package {name} not found")
        hit = self._cached((key, kind), rev)
        if hit is not None:
            return hit
        stored = self.storage.render(key, kind)
        if stored is not None and stored.rev == rev and stored.key == self.public_url:
            rendered = Rendered(stored.body, stored.gzip, stored.etag)
            self._remember((key, kind), rev, rendered)
            return rendered
        record = self._record(name)
        renders = {FULL: self._render_full(record), ABBREVIATED: self._render_abbreviated(record)}
        for k, r in renders.items():
            self.storage.save_render(
                key, k, RenderRecord(record.rev, self.public_url, r.body, r.gzip, r.etag)
            )
            self._remember((key, k), record.rev, r)
        return renders[kind]

    def packument_for_write(self, name: PackageName) -> Rendered:
        """The current full packument with ``_rev`` (for ``?write=true``)."""
        # The cache is validated against the committed rev on every call: already fresh.
        return self.packument(name, abbreviated=False)

    def _tarball_url(self, name: str, version: str) -> str:
        return f"{self.public_url}/{PackageName.parse(name).tarball_path(version)}"

    def _version_out(self, name: str, version: str, manifest: JSONDict) -> JSONDict:
        out = dict(manifest)
        dist = dict(out.get("dist") or {})
        dist["tarball"] = self._tarball_url(name, version)
        out["dist"] = dist
        return out

    def _render_full(self, record: PackageRecord) -> Rendered:
        doc, name = record.doc, record.name
        out: JSONDict = {
            "_id": name,
            "_rev": _rev_string(name, record.rev),
            "name": name,
        }
        for field in _TOP_FIELDS:
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

    def _render_abbreviated(self, record: PackageRecord) -> Rendered:
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

    def version(self, name: PackageName, version_or_tag: str) -> Rendered:
        """One version object, by version or dist-tag; NotFound if neither."""
        record = self._record(name)
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
        return dict(self._record(name).doc["dist-tags"])

    def owners(self, name: PackageName) -> list[dict[str, Any]]:
        """The package's maintainers ``[{name, email}]``; NotFound if absent."""
        return [dict(m) for m in self._record(name).doc["maintainers"]]

    def stats(self) -> dict[str, int]:
        """Counts for monitoring: packages and published versions."""
        packages, versions = self.storage.counts()
        return {"packages": packages, "versions": versions}

    # -- publish and metadata updates -------------------------------------------

    def put_package(
        self,
        name: PackageName,
        body: dict[str, Any],
        *,
        actor: str,
        check_owner: OwnerCheck | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """``PUT /:pkg``: a publish (with ``_attachments``) or a metadata update (without).

        Returns ``(created, json)``: ``created`` is True for a publish (HTTP 201, also
        for an identical retry), False for a metadata update such as deprecate.
        ``check_owner(maintainer_names)`` raises (Forbidden) when the caller may not
        change the package: it is called inside the write transaction with the
        package as it is then (and once before any work, as a fast refusal), so a
        package created by someone else while this request was on its way is not
        changed. Without it anyone may change anything (trusted callers only).
        """
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        check_document(body, what="body")
        if body.get("_attachments"):
            # Held from before the tarball is written until after the commit: a sweep
            # cannot remove a file this publish has written or reused before its row exists.
            with self.blobs.hold():
                return True, self._publish(name, body, actor, check_owner)
        return False, self._update_metadata(name, body, check_owner)

    def _publish(
        self, name: PackageName, body: dict[str, Any], actor: str, check_owner: OwnerCheck | None
    ) -> dict[str, Any]:
        key = str(name)
        existing = self.storage.package(key)
        if existing is None:
            try:
                PackageName.parse(key, new=True)
            except InvalidName as exc:
                raise InvalidPublish(str(exc)) from None
        elif check_owner is not None:
            check_owner(_owner_names(existing.doc))
        current: dict[str, Any] = existing.doc["versions"] if existing else {}
        req = check_publish(name, body, current, self.limits)
        version = req.version
        sha512 = hashlib.sha512(req.data).hexdigest()
        # Decide what we can before writing a file: most refusals leave nothing behind.
        used = self.storage.used_version(key, version)
        if used is not None:
            return self._publish_again(name, version, sha512, used)

        stored = version_document(req.manifest, req.info, name)
        stored["_id"] = f"{name}@{version}"
        stored["_npmUser"] = {"name": actor, "email": ""}
        stored["dist"] = {
            "integrity": req.integrity,
            "shasum": req.shasum,
            "fileCount": req.info.file_count,
            "unpackedSize": req.info.unpacked_size,
        }
        if self.config().has(Feature.PREMIUM_TYPES) and req.info.has_types:
            stored["_hasTypes"] = True

        self.blobs.put(req.data)  # durable and verified before the commit below
        with self.storage.write() as tx:
            record = tx.package(key)
            if record is not None and check_owner is not None:
                # The decision that counts: against the package as this transaction sees it.
                check_owner(_owner_names(record.doc))
            used = tx.used_version(key, version)
            if used is not None:  # another worker published it meanwhile
                if used == sha512 and record is not None and version in record.doc["versions"]:
                    return {"ok": True, "id": key, "rev": _rev_string(key, record.rev)}
                raise VersionExists(f"{key}@{version} was already published")
            now = _now()
            if record is None:
                doc: JSONDict = {
                    "name": key,
                    "created": now,
                    "modified": now,
                    "dist-tags": {},
                    "versions": {},
                    "time": {},
                    "maintainers": [{"name": actor, "email": ""}],
                }
            else:
                doc = record.doc
            # The package may have changed since the checks: re-check against it.
            for v in body["versions"]:  # every other body version must still exist
                if v != version and v not in doc["versions"]:
                    raise InvalidPublish(f"a publish carries exactly one new version ({v})")
            for tag, target in req.tags.items():
                if target != version and target not in doc["versions"]:
                    raise InvalidPublish(f"dist-tag {tag!r} points at unknown version {target!r}")
            stored["maintainers"] = doc["maintainers"]
            doc["versions"][version] = stored
            doc["time"][version] = now
            doc["modified"] = now
            doc["dist-tags"].update(req.tags)
            doc["dist-tags"].setdefault("latest", version)
            if doc["dist-tags"]["latest"] == version:
                self._copy_top_fields(doc, stored, req.readme)
            rev = self._save(tx, key, doc)
            tx.add_tarball(_TarballRow(key, version, sha512, len(req.data)))
            tx.mark_used(key, version, sha512)
        self._notify(PackageChange("publish", key, (version,)))
        return {"ok": True, "id": key, "rev": _rev_string(key, rev)}

    def _publish_again(self, name: PackageName, version: str, sha512: str, used: str) -> JSONDict:
        """A publish of a version that was used before: an identical retry, or refused."""
        key = str(name)
        record = self.storage.package(key)
        if record is not None and version in record.doc["versions"]:
            if used == sha512:
                return {"ok": True, "id": key, "rev": _rev_string(key, record.rev)}
            raise VersionExists(f"{key}@{version} already exists with other contents")
        raise VersionExists(
            f"{key}@{version} was published before and unpublished; a version cannot be reused"
        )

    @staticmethod
    def _copy_top_fields(doc: JSONDict, manifest: JSONDict, readme: object) -> None:
        for field in _TOP_FIELDS:
            if field in manifest:
                doc[field] = manifest[field]
            else:
                doc.pop(field, None)
        if isinstance(readme, str):
            doc["readme"] = readme
        if isinstance(manifest.get("readmeFilename"), str):
            doc["readmeFilename"] = manifest["readmeFilename"]

    def _check_rev(self, record: PackageRecord, rev: object) -> None:
        if rev != _rev_string(record.name, record.rev):
            raise RevConflict(
                f"stale or unknown _rev {rev!r} for {record.name}; fetch it again with ?write=true"
            )

    @staticmethod
    def _apply_deprecations(doc: JSONDict, versions: object) -> bool:
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

    def _update_metadata(
        self, name: PackageName, body: dict[str, Any], check_owner: OwnerCheck | None
    ) -> dict[str, Any]:
        key = str(name)
        if body.get("name", key) != key or body.get("_id", key) != key:
            raise BadRequest(f"body name does not match URL name {name}")
        with self.storage.write() as tx:
            record = _existing(tx, name)
            if check_owner is not None:
                check_owner(_owner_names(record.doc))
            if "_rev" in body:
                self._check_rev(record, body["_rev"])
            doc = record.doc
            if not self._apply_deprecations(doc, body.get("versions")):
                return {"ok": True, "id": key, "rev": _rev_string(key, record.rev)}
            doc["modified"] = _now()
            rev = self._save(tx, key, doc)
        return {"ok": True, "id": key, "rev": _rev_string(key, rev)}

    # -- unpublish, owners ------------------------------------------------------

    @staticmethod
    def _remove_versions(tx: WriteTxn, key: str, doc: JSONDict, gone: list[str]) -> None:
        for v in gone:
            del doc["versions"][v]
            doc["time"].pop(v, None)
            tx.remove_tarball(key, v)
        tags = {t: v for t, v in doc["dist-tags"].items() if v in doc["versions"]}
        if "latest" not in tags:
            latest = _latest_of(list(doc["versions"]))
            if latest is not None:
                tags["latest"] = latest
        doc["dist-tags"] = tags
        latest_manifest = doc["versions"].get(tags.get("latest", ""))
        if latest_manifest is not None:
            Registry._copy_top_fields(doc, latest_manifest, None)

    @staticmethod
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
        self, maintainers: list[dict[str, str]], current: list[dict[str, Any]]
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
                if self.storage.get_key(name[len(KEY_PRINCIPAL) :]) is None:
                    raise BadRequest(f"no key {name[len(KEY_PRINCIPAL) :]!r}: cannot add {name}")
            elif self.storage.get_user(name) is None:
                raise BadRequest(f"no user {name!r}: add the user first, then the owner")

    def put_package_rev(
        self, name: PackageName, rev: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """``PUT /:pkg/-rev/:rev``: the document minus unpublished versions, or new maintainers.

        Versions missing from ``body.versions`` are unpublished (tombstones keep their
        numbers); when none is left the package goes. RevConflict for a stale ``rev``.
        """
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        check_document(body, what="body")
        key = str(name)
        removed: list[str] = []
        result: dict[str, Any] | None = None
        with self.storage.write() as tx:
            record = _existing(tx, name)
            self._check_rev(record, rev)
            doc = record.doc
            changed = False
            versions = body.get("versions")
            if versions is not None:
                changed |= self._apply_deprecations(doc, versions)
                assert isinstance(versions, dict)
                removed = [v for v in doc["versions"] if v not in versions]
                if removed and len(removed) == len(doc["versions"]):
                    tx.delete_package(key)
                    result = {"ok": True, "id": key}
                elif removed:
                    self._remove_versions(tx, key, doc, removed)
                    changed = True
            if result is None and "maintainers" in body:
                maintainers = self._maintainers(body["maintainers"])
                self._check_new_maintainers(maintainers, doc["maintainers"])
                if maintainers != doc["maintainers"]:
                    doc["maintainers"] = maintainers
                    for manifest in doc["versions"].values():
                        manifest["maintainers"] = maintainers
                    changed = True
            if result is None:
                if changed:
                    doc["modified"] = _now()
                    record = PackageRecord(key, self._save(tx, key, doc), doc)
                result = {"ok": True, "id": key, "rev": _rev_string(key, record.rev)}
        self._unpublished(key, removed)
        return result

    def unpublish_package(self, name: PackageName, rev: str, *, actor: str) -> dict[str, Any]:
        """``DELETE /:pkg/-rev/:rev``: remove the whole package (its versions stay used)."""
        key = str(name)
        with self.storage.write() as tx:
            record = _existing(tx, name)
            self._check_rev(record, rev)
            tx.delete_package(key)
        self._unpublished(key, list(record.doc["versions"]))
        return {"ok": True}

    def remove_tarball(
        self, name: PackageName, filename: str, rev: str, *, actor: str
    ) -> dict[str, Any]:
        """``DELETE /:pkg/-/:file/-rev/:rev``, the last step of npm's unpublish.

        If the version is already gone (the usual case: the PUT before removed it)
        this only checks the rev; if it is still there, it is unpublished here, and
        its file deleted (unless another row shares it).
        """
        key = str(name)
        version = name.version_of_file(filename)
        removed: list[str] = []
        with self.storage.write() as tx:
            record = _existing(tx, name)
            self._check_rev(record, rev)
            doc = record.doc
            if version not in doc["versions"]:
                tx.remove_tarball(key, version)
            elif len(doc["versions"]) == 1:
                tx.delete_package(key)
                removed = [version]
            else:
                self._remove_versions(tx, key, doc, [version])
                doc["modified"] = _now()
                self._save(tx, key, doc)
                removed = [version]
        self._unpublished(key, removed)
        return {"ok": True}

    def _unpublished(self, key: str, versions: list[str]) -> None:
        """After the commit that unpublished ``versions``: tell listeners, delete their files.

        A version's tarball is the blob its first publish recorded (the tombstone
        keeps that hash). It is deleted at once unless another row refers to it;
        if this process dies first, the file is an orphan the next sweep removes.
        """
        if not versions:
            return
        self._notify(PackageChange("unpublish", key, tuple(versions)))
        hashes = {h for v in versions if (h := self.storage.used_version(key, v)) is not None}
        try:
            with self.blobs.sweeping():  # no publish is between its put and its commit now
                for sha512 in hashes - self.storage.blobs_in_use(hashes):
                    self.blobs.delete(sha512)
        except OSError:
            log.exception("deleting the tarballs of %s %s; the sweep will", key, versions)

    # -- dist-tags ------------------------------------------------------------------

    def set_dist_tag(self, name: PackageName, tag: str, version: str, *, actor: str) -> None:
        """Point ``tag`` at ``version`` (which must exist); tags that read as ranges refused."""
        _check_tag(tag)
        if not isinstance(version, str):
            raise InvalidValue("a dist-tag's value is a version string")
        parse_version(version)
        key = str(name)
        with self.storage.write() as tx:
            record = _existing(tx, name)
            doc = record.doc
            if version not in doc["versions"]:
                raise NotFound(f"version {version} of {name} not found")
            if doc["dist-tags"].get(tag) == version:
                return
            doc["dist-tags"][tag] = version
            if tag == "latest":
                self._copy_top_fields(doc, doc["versions"][version], None)
            doc["modified"] = _now()
            self._save(tx, key, doc)

    def remove_dist_tag(self, name: PackageName, tag: str, *, actor: str) -> None:
        """Remove ``tag``; ``latest`` cannot be removed; NotFound if the tag is not set."""
        if tag == "latest":
            raise InvalidValue("the latest tag cannot be removed")
        key = str(name)
        with self.storage.write() as tx:
            record = _existing(tx, name)
            doc = record.doc
            if tag not in doc["dist-tags"]:
                raise NotFound(f"dist-tag {tag!r} of {name} not found")
            del doc["dist-tags"][tag]
            doc["modified"] = _now()
            self._save(tx, key, doc)

    # -- search -----------------------------------------------------------------------

    @staticmethod
    def _save(tx: WriteTxn, key: str, doc: JSONDict) -> int:
        """Save ``doc`` with its search summary (so a search never parses whole documents)."""
        return tx.save_package(key, doc, summary=summarize(key, doc))

    def search(
        self, text: str, size: int = 20, offset: int = 0, *, visible: Visible | None = None
    ) -> dict[str, Any]:
        """npm's ``/-/v1/search``: :func:`r13core.search.search` over this storage."""
        return search_packages(
            self.storage, text, size, offset, public_url=self.public_url, visible=visible
        )

    # -- audit (r13core/advisories.py) --------------------------------------------------

    def add_advisory(self, advisory: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """Store an advisory (admin API): :meth:`Advisories.add`."""
        return self.advisories.add(advisory, actor=actor)

    def list_advisories(self) -> list[dict[str, Any]]:
        """Every advisory, by id."""
        return self.advisories.all()

    def remove_advisory(self, advisory_id: str | int, *, actor: str) -> None:
        """Delete an advisory; NotFound if there is none with that id."""
        self.advisories.remove(advisory_id)

    def audit_bulk(
        self, request: dict[str, list[str]], *, visible: Visible | None = None
    ) -> dict[str, Any]:
        """``POST /-/npm/v1/security/advisories/bulk``: :meth:`Advisories.bulk`."""
        return self.advisories.bulk(request, visible=visible or _everything)

    def audit_quick(
        self, tree: dict[str, Any], *, visible: Visible | None = None
    ) -> dict[str, Any]:
        """Legacy ``/-/npm/v1/security/audits(/quick)``: :meth:`Advisories.quick`."""
        return self.advisories.quick(tree, visible=visible or _everything)

    # -- maintenance ----------------------------------------------------------------------

    def sweep(self, *, min_age: float = 3600.0, alone: bool = False) -> int:
        """Remove files in the blob store that no committed tarball row refers to.

        Orphans are blobs of publishes that died before their commit (or whose
        prompt deletion at unpublish did not happen), temp files, and anything
        else in the store. With ``alone`` the caller guarantees that no other
        process uses the data dir (``r13 serve`` holds the instance lock
        exclusively, :mod:`r13core.locks`): every orphan goes whatever its age,
        and empty directories too. Otherwise only files older than ``min_age``
        seconds go. Either way the references are read again under the blob
        store's exclusive lock, which no publish holds between writing its file
        and committing its row. Returns how many files went.
        """
        age = 0.0 if alone else min_age
        candidates = self.blobs.orphans(self.storage.blob_refs(), min_age=age)
        removed = 0
        if candidates:
            with self.blobs.sweeping():
                known = self.storage.blob_refs()
                removed = self.blobs.remove_orphans(candidates, known, min_age=age)
        if alone:
            self.blobs.prune()
        return removed


def _everything(package: str) -> bool:
    return True


__all__ = [
    "ABBREVIATED_FIELDS",
    "SEVERITIES",
    "BlobRef",
    "Limits",
    "Registry",
    "Rendered",
    "Version",
]


class _HasPackages(Protocol):
    def package(self, name: str) -> PackageRecord | None: ...


def _existing(source: _HasPackages, name: PackageName) -> PackageRecord:
    """The package from the store or an open write, or NotFound."""
    record = source.package(str(name))
    if record is None:
        raise NotFound(f"package {name} not found")
    return record


def _owner_names(doc: JSONDict) -> list[str]:
    return [str(m.get("name", "")) for m in doc.get("maintainers", [])]
