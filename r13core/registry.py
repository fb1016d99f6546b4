"""The registry service: npm's package semantics over a Storage and a BlobStore.

The app parses requests and calls one method here per request; this module
knows the protocol's rules (docs/registry-api.md) and nothing about HTTP.

Stored document (one per package, :class:`r13core.storage.base.PackageRecord`)::

    {"name", "created", "modified", "dist-tags": {tag: v}, "versions": {v: manifest},
     "time": {v: iso}, "maintainers": [{"name", "email"}], "readme",
     "description", "keywords", "homepage", "repository", "bugs", "license", "author"}

Version manifests keep what the client sent, with r13's own ``dist`` (integrity,
shasum, fileCount, unpackedSize; ``tarball`` is added when rendering, always
under ``public_url``), ``_id``, ``_npmUser``, ``maintainers``,
``hasInstallScript`` when install scripts exist, and ``_hasTypes: true`` when
PREMIUM_TYPES was on at publish and the package ships TypeScript types.

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
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

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
from r13core.names import PackageName
from r13core.semver import Range, Version, is_valid_range, parse_version, version_key
from r13core.storage.base import (
    BlobStore,
    JSONDict,
    PackageRecord,
    RenderRecord,
    Storage,
    WriteTxn,
)
from r13core.storage.base import TarballRecord as _TarballRow
from r13core.tarball import (
    Limits,
    check_integrity,
    decode_attachment,
    inspect_tarball,
    sri_from_hex,
)

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
_INSTALL_SCRIPTS: Final = ("preinstall", "install", "postinstall")
SEVERITIES: Final = ("info", "low", "moderate", "high", "critical")
_CACHE_SIZE: Final = 2048


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


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rev_string(name: str, rev: int) -> str:
    # CouchDB's shape, "<n>-<hex>"; the number alone would do, the hash makes a
    # rev from one package useless for another.
    return f"{rev}-{hashlib.sha256(f'{name}:{rev}'.encode()).hexdigest()[:32]}"


def _check_tag(tag: object) -> str:
    """npm's dist-tag rules: URL-safe, non-empty, not something that reads as a version/range."""
    if not isinstance(tag, str) or not tag or len(tag) > 128:
        raise InvalidValue(f"invalid dist-tag {tag!r}")
    if any(not (c.isascii() and (c.isalnum() or c in "-._~")) for c in tag):
        raise InvalidValue(f"invalid dist-tag {tag!r}: URL-safe characters only")
    if is_valid_range(tag):
        raise InvalidValue(f"invalid dist-tag {tag!r}: a tag cannot look like a version or range")
    return tag


def _latest_of(versions: Iterator[str] | list[str]) -> str | None:
    """The highest non-prerelease version, else the highest one."""
    parsed = sorted(versions, key=version_key)
    stable = [v for v in parsed if not version_key(v).prerelease]
    best = stable or parsed
    return best[-1] if best else None


class Registry:
    """npm registry semantics over a :class:`Storage` and a :class:`BlobStore`.

    ``config`` returns the live record; flags are read on every call.
    """

    def __init__(
        self,
        storage: Storage,
        blobs: BlobStore,
        *,
        public_url: str,
        config: Callable[[], Config13],
        limits: Limits | None = None,
    ) -> None:
        self.storage = storage
        self.blobs = blobs
        self.public_url = public_url.rstrip("/")
        self.config = config
        self.limits = limits or Limits()
        self._cache: OrderedDict[tuple[str, str], tuple[int, Rendered]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        public_url: str,
        config: Callable[[], Config13],
        limits: Limits | None = None,
    ) -> Registry:
        """The embedded default: ``data_dir/registry.sqlite3`` and ``data_dir/blobs/``."""
        from r13core.storage.blobs import FileBlobStore
        from r13core.storage.sqlite import SQLiteStorage

        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            SQLiteStorage(data_dir / "registry.sqlite3"),
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
        self, name: PackageName, body: dict[str, Any], *, actor: str
    ) -> tuple[bool, dict[str, Any]]:
        """``PUT /:pkg``: a publish (with ``_attachments``) or a metadata update (without).

        Returns ``(created, json)``: ``created`` is True for a publish (HTTP 201, also
        for an identical retry), False for a metadata update such as deprecate.
        """
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        if body.get("_attachments"):
            return True, self._publish(name, body, actor)
        return False, self._update_metadata(name, body)

    def _check_body_name(self, name: PackageName, body: dict[str, Any]) -> None:
        if body.get("name") != str(name):
            raise InvalidPublish(f"body name {body.get('name')!r} does not match URL name {name}")
        if "_id" in body and body["_id"] != str(name):
            raise InvalidPublish(f"body _id {body['_id']!r} does not match URL name {name}")

    def _publish(self, name: PackageName, body: dict[str, Any], actor: str) -> dict[str, Any]:
        key = str(name)
        self._check_body_name(name, body)
        existing = self.storage.package(key)
        if existing is None:
            try:
                PackageName.parse(key, new=True)
            except InvalidName as exc:
                raise InvalidPublish(str(exc)) from None
        current_versions: dict[str, Any] = existing.doc["versions"] if existing else {}

        attachments = body["_attachments"]
        if not isinstance(attachments, dict):
            raise InvalidPublish("_attachments must be an object")
        tgz = [a for a in attachments if isinstance(a, str) and a.endswith(".tgz")]
        sigstore = [a for a in attachments if isinstance(a, str) and a.endswith(".sigstore")]
        if len(tgz) != 1 or len(tgz) + len(sigstore) != len(attachments) or len(sigstore) > 1:
            raise InvalidPublish(
                "a publish carries exactly one .tgz attachment (and at most one .sigstore)"
            )
        att_name = tgz[0]
        try:
            version = name.version_of_file(att_name)
        except InvalidName:
            raise InvalidPublish(
                f"attachment name {att_name!r} does not match {name.bare}-<version>.tgz"
            ) from None

        versions = body.get("versions")
        if not isinstance(versions, dict) or version not in versions:
            raise InvalidPublish(f"versions must contain {version}, the attachment's version")
        extra = [v for v in versions if v != version and v not in current_versions]
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

        attachment = attachments[att_name]
        if not isinstance(attachment, dict):
            raise InvalidPublish(f"attachment {att_name!r} must be an object")
        data = decode_attachment(
            attachment.get("data"), attachment.get("length"), limit=self.limits.max_tarball
        )
        for extra_name in sigstore:
            bundle = attachments[extra_name]
            if not isinstance(bundle, dict):
                raise InvalidPublish(f"attachment {extra_name!r} must be an object")
            decode_attachment(bundle.get("data"), bundle.get("length"), limit=16 * 1024 * 1024)
        integrity, shasum = check_integrity(data, manifest.get("dist"))
        info = inspect_tarball(data, self.limits)
        if info.manifest.get("name") != key:
            raise InvalidPublish(
                f"package.json in the tarball names {info.manifest.get('name')!r}, not {key}"
            )
        if info.manifest.get("version") != version:
            raise InvalidPublish(
                f"package.json in the tarball has version {info.manifest.get('version')!r}, "
                f"not {version}"
            )
        tags = body.get("dist-tags") or {}
        if not isinstance(tags, dict):
            raise InvalidPublish("dist-tags must be an object")
        for tag, target in tags.items():
            try:
                _check_tag(tag)
            except InvalidValue as exc:
                raise InvalidPublish(str(exc)) from None
            if target != version and target not in current_versions:
                raise InvalidPublish(f"dist-tag {tag!r} points at unknown version {target!r}")

        sha512 = hashlib.sha512(data).hexdigest()
        # Decide what we can before writing a file: most refusals leave nothing behind.
        used = self.storage.used_version(key, version)
        if used is not None:
            return self._publish_again(name, version, sha512, used)

        stored = self._stored_manifest(name, version, manifest, body, actor, info)
        stored["dist"] = {
            "integrity": integrity,
            "shasum": shasum,
            "fileCount": info.entries,
            "unpackedSize": info.unpacked_size,
        }
        readme = body.get("readme", manifest.get("readme"))
        stored.pop("readme", None)
        if self.config().has(Feature.PREMIUM_TYPES) and info.has_types:
            stored["_hasTypes"] = True

        self.blobs.put(data)  # durable and verified before the commit below
        with self.storage.write() as tx:
            used = tx.used_version(key, version)
            if used is not None:  # another worker published it meanwhile
                record = tx.package(key)
                if used == sha512 and record is not None and version in record.doc["versions"]:
                    return {"ok": True, "id": key, "rev": _rev_string(key, record.rev)}
                raise VersionExists(f"{key}@{version} was already published")
            record = tx.package(key)
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
                for v in versions:  # every other body version must still exist
                    if v != version and v not in doc["versions"]:
                        raise InvalidPublish(f"a publish carries exactly one new version ({v})")
            stored["maintainers"] = doc["maintainers"]
            doc["versions"][version] = stored
            doc["time"][version] = now
            doc["modified"] = now
            doc["dist-tags"].update(tags)
            doc["dist-tags"].setdefault("latest", version)
            if doc["dist-tags"]["latest"] == version:
                self._copy_top_fields(doc, stored, readme)
            rev = self._save(tx, key, doc)
            tx.add_tarball(_TarballRow(key, version, sha512, len(data)))
            tx.mark_used(key, version, sha512)
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
    def _stored_manifest(
        name: PackageName,
        version: str,
        manifest: JSONDict,
        body: JSONDict,
        actor: str,
        info: Any,
    ) -> JSONDict:
        stored = {k: v for k, v in manifest.items() if k not in ("_hasTypes", "hasInstallScript")}
        stored["_id"] = f"{name}@{version}"
        stored["_npmUser"] = {"name": actor, "email": ""}
        scripts = info.manifest.get("scripts")
        if isinstance(scripts, dict) and any(s in scripts for s in _INSTALL_SCRIPTS):
            stored["hasInstallScript"] = True
        return stored

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

    def _update_metadata(self, name: PackageName, body: dict[str, Any]) -> dict[str, Any]:
        key = str(name)
        if body.get("name", key) != key or body.get("_id", key) != key:
            raise BadRequest(f"body name does not match URL name {name}")
        with self.storage.write() as tx:
            record = _existing(tx, name)
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

    def put_package_rev(
        self, name: PackageName, rev: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """``PUT /:pkg/-rev/:rev``: the document minus unpublished versions, or new maintainers.

        Versions missing from ``body.versions`` are unpublished (tombstones keep their
        numbers); when none is left the package goes. RevConflict for a stale ``rev``.
        """
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        key = str(name)
        with self.storage.write() as tx:
            record = _existing(tx, name)
            self._check_rev(record, rev)
            doc = record.doc
            changed = False
            versions = body.get("versions")
            if versions is not None:
                changed |= self._apply_deprecations(doc, versions)
                assert isinstance(versions, dict)
                gone = [v for v in doc["versions"] if v not in versions]
                if gone and len(gone) == len(doc["versions"]):
                    tx.delete_package(key)
                    return {"ok": True, "id": key}
                if gone:
                    self._remove_versions(tx, key, doc, gone)
                    changed = True
            if "maintainers" in body:
                maintainers = self._maintainers(body["maintainers"])
                if maintainers != doc["maintainers"]:
                    doc["maintainers"] = maintainers
                    for manifest in doc["versions"].values():
                        manifest["maintainers"] = maintainers
                    changed = True
            if not changed:
                return {"ok": True, "id": key, "rev": _rev_string(key, record.rev)}
            doc["modified"] = _now()
            new_rev = self._save(tx, key, doc)
        return {"ok": True, "id": key, "rev": _rev_string(key, new_rev)}

    def unpublish_package(self, name: PackageName, rev: str, *, actor: str) -> dict[str, Any]:
        """``DELETE /:pkg/-rev/:rev``: remove the whole package (its versions stay used)."""
        key = str(name)
        with self.storage.write() as tx:
            record = _existing(tx, name)
            self._check_rev(record, rev)
            tx.delete_package(key)
        return {"ok": True}

    def remove_tarball(
        self, name: PackageName, filename: str, rev: str, *, actor: str
    ) -> dict[str, Any]:
        """``DELETE /:pkg/-/:file/-rev/:rev``, the last step of npm's unpublish.

        If the version is already gone (the usual case: the PUT before removed it)
        this only checks the rev; if it is still there, it is unpublished here. The
        file itself goes at the next :meth:`sweep` (blobs may be shared).
        """
        key = str(name)
        version = name.version_of_file(filename)
        with self.storage.write() as tx:
            record = _existing(tx, name)
            self._check_rev(record, rev)
            doc = record.doc
            if version not in doc["versions"]:
                tx.remove_tarball(key, version)
                return {"ok": True}
            if len(doc["versions"]) == 1:
                tx.delete_package(key)
                return {"ok": True}
            self._remove_versions(tx, key, doc, [version])
            doc["modified"] = _now()
            self._save(tx, key, doc)
        return {"ok": True}

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
        return tx.save_package(key, doc, summary=_summary(key, doc))

    def search(self, text: str, size: int = 20, offset: int = 0) -> dict[str, Any]:
        """npm's ``/-/v1/search``: packages ranked by name, keyword and description matches.

        Terms must all match (name, keyword, description, or maintainer); name matches
        weigh most, exact before prefix before substring. Qualifiers: ``keywords:a,b``,
        ``author:x``/``maintainer:x``, ``scope:s``. Empty text lists every package.
        Works on the per-package summaries saved with every change.
        """
        size = max(1, min(int(size), 250))
        offset = max(0, int(offset))
        terms, quals = _parse_query(text if isinstance(text, str) else "")
        hits: list[tuple[float, float, str, JSONDict, float]] = []
        for name, summary in self.storage.summaries():
            if not summary:  # saved by a backend or version that kept none
                record = self.storage.package(name)
                if record is None:
                    continue
                summary = _summary(name, record.doc)
            scored = _score(summary, terms, quals)
            if scored is None:
                continue
            relevance, maintenance = scored
            hits.append((relevance, float(summary["quality"]), name, summary, maintenance))
        best = max((h[0] for h in hits), default=1.0) or 1.0
        hits.sort(key=lambda h: (-h[0], -h[1], h[2]))
        objects = []
        for relevance, quality, _, summary, maintenance in hits[offset : offset + size]:
            norm = relevance / best
            final = norm * (0.7 + 0.15 * quality + 0.15 * maintenance)
            objects.append(
                {
                    "package": self._search_package(summary),
                    "score": {
                        "final": round(final, 6),
                        "detail": {
                            "quality": quality,
                            "popularity": 0.0,
                            "maintenance": maintenance,
                        },
                    },
                    "searchScore": round(relevance, 6),
                }
            )
        return {"objects": objects, "total": len(hits), "time": _now()}

    def _search_package(self, summary: JSONDict) -> JSONDict:
        name = PackageName.parse(summary["name"])
        pkg: JSONDict = {
            "name": summary["name"],
            "scope": name.scope or "unscoped",
            "version": summary["version"],
            "description": summary["description"],
            "keywords": summary["keywords"],
            "date": summary["date"],
            "links": {"npm": f"{self.public_url}/{name.url}", **summary["links"]},
            "publisher": summary["publisher"],
            "maintainers": summary["maintainers"],
        }
        if summary.get("hasTypes"):
            pkg["hasTypes"] = True
        return pkg

    # -- audit ----------------------------------------------------------------------------

    def add_advisory(self, advisory: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """Store an advisory (admin API); returns it with its ``id``.

        Fields: ``module_name`` (or ``package``/``name``), ``vulnerable_versions`` (an npm
        range), ``severity`` (info, low, moderate, high, critical), ``title``; optional
        ``url``, ``overview``, ``recommendation``, ``patched_versions`` (a range), ``cwe``
        and ``cves`` (lists of strings), ``github_advisory_id``, ``cvss``
        (``{score, vectorString}``).
        """
        if not isinstance(advisory, dict):
            raise BadRequest("an advisory is a JSON object")
        package = advisory.get("module_name", advisory.get("package", advisory.get("name")))
        if not isinstance(package, str):
            raise BadRequest("an advisory needs module_name (the package it affects)")
        PackageName.parse(package)
        vulnerable = advisory.get("vulnerable_versions")
        if not isinstance(vulnerable, str) or not vulnerable.strip():
            raise BadRequest("an advisory needs vulnerable_versions (an npm range)")
        Range.parse(vulnerable)
        severity = advisory.get("severity")
        if severity not in SEVERITIES:
            raise BadRequest(f"severity must be one of {', '.join(SEVERITIES)}")
        title = advisory.get("title")
        if not isinstance(title, str) or not title:
            raise BadRequest("an advisory needs a title")
        patched = advisory.get("patched_versions", "<0.0.0")
        if not isinstance(patched, str):
            raise BadRequest("patched_versions must be a range string")
        Range.parse(patched)
        data: JSONDict = {
            "module_name": package,
            "vulnerable_versions": vulnerable,
            "patched_versions": patched,
            "severity": severity,
            "title": title,
        }
        for field in ("url", "overview", "recommendation", "github_advisory_id"):
            value = advisory.get(field, "")
            if not isinstance(value, str):
                raise BadRequest(f"{field} must be a string")
            data[field] = value
        for field in ("cwe", "cves"):
            value = advisory.get(field, [])
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise BadRequest(f"{field} must be a list of strings")
            data[field] = value
        cvss = advisory.get("cvss", {"score": 0, "vectorString": None})
        if not isinstance(cvss, dict):
            raise BadRequest("cvss must be an object")
        data["cvss"] = cvss
        now = _now()
        data.update(created=now, updated=now, created_by=actor)
        advisory_id = self.storage.add_advisory(package, data)
        return {"id": advisory_id, **data}

    def list_advisories(self) -> list[dict[str, Any]]:
        """Every advisory, by id."""
        return [{"id": a.id, **a.data} for a in self.storage.advisories()]

    def remove_advisory(self, advisory_id: str | int, *, actor: str) -> None:
        """Delete an advisory; NotFound if there is none with that id."""
        try:
            number = int(advisory_id)
        except (TypeError, ValueError):
            raise NotFound(f"advisory {advisory_id!r} not found") from None
        if not self.storage.remove_advisory(number):
            raise NotFound(f"advisory {advisory_id!r} not found")

    def audit_bulk(self, request: dict[str, list[str]]) -> dict[str, Any]:
        """``POST /-/npm/v1/security/advisories/bulk``: ``{name: [advisory]}`` for the
        requested versions that fall in an advisory's range; ``{}`` when none."""
        if not isinstance(request, dict):
            raise BadRequest("the bulk audit body is {name: [versions]}")
        for versions in request.values():
            if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
                raise BadRequest("the bulk audit body is {name: [versions]}")
        out: dict[str, list[JSONDict]] = {}
        for adv in self.storage.advisories([str(n) for n in request]):
            versions = request.get(adv.package, [])
            matcher = Range.parse(adv.data["vulnerable_versions"])
            if any(matcher.matches(v) for v in versions):
                out.setdefault(adv.package, []).append(
                    {
                        "id": adv.id,
                        "url": adv.data.get("url", ""),
                        "title": adv.data["title"],
                        "severity": adv.data["severity"],
                        "vulnerable_versions": adv.data["vulnerable_versions"],
                        "cwe": adv.data.get("cwe", []),
                        "cvss": adv.data.get("cvss", {"score": 0, "vectorString": None}),
                    }
                )
        return out

    def audit_quick(self, tree: dict[str, Any]) -> dict[str, Any]:
        """Legacy ``/-/npm/v1/security/audits(/quick)``: the old report for a lockfile tree.

        Each vulnerable module instance is a finding (``version`` and its ``paths``,
        ``a>b>c``); ``actions`` are ``review`` actions (r13 does not compute upgrade
        targets); ``metadata.vulnerabilities`` counts vulnerable paths per severity.
        """
        if not isinstance(tree, dict):
            raise BadRequest("the audit body is a lockfile tree object")
        nodes = list(_walk_tree(tree))
        counts = {"dependencies": 0, "devDependencies": 0, "optionalDependencies": 0}
        for node in nodes:
            if node.dev:
                counts["devDependencies"] += 1
            elif node.optional:
                counts["optionalDependencies"] += 1
            else:
                counts["dependencies"] += 1
        vulns = dict.fromkeys(SEVERITIES, 0)
        advisories: dict[str, JSONDict] = {}
        actions: list[JSONDict] = []
        names = sorted({n.name for n in nodes})
        for adv in self.storage.advisories(names) if names else []:
            matcher = Range.parse(adv.data["vulnerable_versions"])
            hit = [n for n in nodes if n.name == adv.package and matcher.matches(n.version)]
            if not hit:
                continue
            findings: dict[str, list[str]] = {}
            for n in hit:
                findings.setdefault(n.version, []).append(n.path)
            data = adv.data
            advisories[str(adv.id)] = {
                "findings": [{"version": v, "paths": p} for v, p in findings.items()],
                "id": adv.id,
                "created": data.get("created"),
                "updated": data.get("updated"),
                "deleted": None,
                "title": data["title"],
                "found_by": None,
                "reported_by": None,
                "module_name": adv.package,
                "cves": data.get("cves", []),
                "vulnerable_versions": data["vulnerable_versions"],
                "patched_versions": data.get("patched_versions", "<0.0.0"),
                "overview": data.get("overview", ""),
                "recommendation": data.get("recommendation", ""),
                "references": "",
                "access": "public",
                "severity": data["severity"],
                "cwe": data.get("cwe", []),
                "github_advisory_id": data.get("github_advisory_id", ""),
                "metadata": {"module_type": "", "exploitability": 0, "affected_components": ""},
                "url": data.get("url", ""),
            }
            actions.append(
                {
                    "action": "review",
                    "module": adv.package,
                    "resolves": [
                        {
                            "id": adv.id,
                            "path": n.path,
                            "dev": n.dev,
                            "optional": n.optional,
                            "bundled": n.bundled,
                        }
                        for n in hit
                    ],
                }
            )
            vulns[data["severity"]] += len(hit)
        return {
            "actions": actions,
            "advisories": advisories,
            "muted": [],
            "metadata": {
                "vulnerabilities": vulns,
                **counts,
                "totalDependencies": len(nodes),
            },
        }

    # -- maintenance ----------------------------------------------------------------------

    def sweep(self, *, min_age: float = 3600.0) -> int:
        """Remove blob files no tarball row refers to (and stale temp files).

        Only files older than ``min_age`` seconds go, so a publish that has written
        its file but not yet committed keeps it. Returns how many files went.
        """
        return self.blobs.sweep_orphans(self.storage.blob_refs(), min_age=min_age)


# -- search helpers ---------------------------------------------------------------------------


_FILTERS: Final = ("keywords", "author", "maintainer", "scope")
# Accepted and ignored (they tune npm's own ranking).
_QUALIFIERS: Final = (*_FILTERS, "is", "not", "boost-exact")


def _parse_query(text: str) -> tuple[list[str], dict[str, list[str]]]:
    terms: list[str] = []
    quals: dict[str, list[str]] = {}
    for token in text.lower().split():
        qual, colon, value = token.partition(":")
        if colon and qual in (
            "keywords",
            "author",
            "maintainer",
            "scope",
            "is",
            "not",
            "boost-exact",
        ):
            if qual in ("keywords", "author", "maintainer", "scope"):
                quals.setdefault(qual, []).extend(v for v in value.split(",") if v)
            continue
        terms.append(token)
    return terms, quals


def _summary(name: str, doc: JSONDict) -> JSONDict:
    """What search needs of a package, computed once per change."""
    latest = doc["dist-tags"].get("latest", "")
    manifest = doc["versions"].get(latest, {})
    raw_keywords = manifest.get("keywords") or doc.get("keywords") or []
    keywords = [str(k) for k in raw_keywords] if isinstance(raw_keywords, list) else []
    description = manifest.get("description") or doc.get("description") or ""
    links: dict[str, str] = {}
    for field in ("homepage", "bugs", "repository"):
        value = manifest.get(field)
        if isinstance(value, dict):
            value = value.get("url")
        if isinstance(value, str) and value:
            links[field] = value
    people = {str(m.get("name", "")).lower() for m in doc.get("maintainers", [])}
    author = manifest.get("author")
    if isinstance(author, dict):
        people.add(str(author.get("name", "")).lower())
    elif isinstance(author, str):
        people.add(author.split("<")[0].strip().lower())
    publisher = manifest.get("_npmUser") or {}
    present = [
        bool(description),
        bool(keywords),
        bool(manifest.get("repository")),
        bool(manifest.get("license")),
        bool(doc.get("readme")),
    ]
    return {
        "name": name,
        "version": latest,
        "description": str(description),
        "keywords": keywords,
        "date": doc["time"].get(latest, doc["modified"]),
        "modified": doc["modified"],
        "links": links,
        "publisher": {
            "username": str(publisher.get("name", "")),
            "email": str(publisher.get("email", "")),
        },
        "maintainers": [
            {"username": m["name"], "email": m.get("email", "")} for m in doc["maintainers"]
        ],
        "people": sorted(p for p in people if p),
        "hasTypes": bool(manifest.get("_hasTypes")),
        "quality": round(sum(present) / len(present), 4),
    }


def _score(
    summary: JSONDict, terms: list[str], quals: dict[str, list[str]]
) -> tuple[float, float] | None:
    """(relevance, maintenance) of a package for a query, or None if it does not match."""
    name = summary["name"].lower()
    bare = name.rsplit("/", 1)[-1]
    description = summary["description"].lower()
    keywords = [k.lower() for k in summary["keywords"]]
    people = set(summary["people"])

    if any(k not in keywords for k in quals.get("keywords", [])):
        return None
    for who in quals.get("author", []) + quals.get("maintainer", []):
        if who not in people:
            return None
    scopes = quals.get("scope", [])
    if scopes and not any(name.startswith(f"@{s.lstrip('@')}/") for s in scopes):
        return None

    relevance = 0.0
    for term in terms:
        best = 0.0
        if term in (name, bare):
            best = 10.0
        elif name.startswith(term) or bare.startswith(term):
            best = 6.0
        elif term in name:
            best = 4.0
        if term in keywords:
            best = max(best, 4.0)
        elif any(term in k for k in keywords):
            best = max(best, 2.0)
        if term in description:
            best = max(best, 1.5)
        if best == 0.0 and term in people:
            best = 1.0
        if best == 0.0:
            return None
        relevance += best
    if not terms:
        relevance = 1.0
    try:
        modified = datetime.fromisoformat(summary["modified"].replace("Z", "+00:00"))
        age_days = (datetime.now(UTC) - modified).total_seconds() / 86400
    except (KeyError, ValueError):
        age_days = 1e9
    maintenance = 1.0 if age_days < 365 else 0.5 if age_days < 3 * 365 else 0.1
    return relevance, maintenance


# -- audit helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    name: str
    version: str
    path: str
    dev: bool
    optional: bool
    bundled: bool


def _walk_tree(tree: JSONDict) -> Iterator[_Node]:
    """Every module instance in an npm/pnpm lockfile tree (iterative: trees can be deep)."""
    stack: list[tuple[JSONDict, str]] = [(tree, "")]
    seen = 0
    while stack:
        node, prefix = stack.pop()
        deps = node.get("dependencies")
        if not isinstance(deps, dict):
            continue
        for dep_name, dep in deps.items():
            if not isinstance(dep, dict) or not isinstance(dep_name, str):
                continue
            seen += 1
            if seen > 1_000_000:
                raise BadRequest("the audit tree has too many modules")
            path = f"{prefix}>{dep_name}" if prefix else dep_name
            version = dep.get("version")
            if isinstance(version, str):
                yield _Node(
                    dep_name,
                    version,
                    path,
                    bool(dep.get("dev")),
                    bool(dep.get("optional")),
                    bool(dep.get("bundled")),
                )
            stack.append((dep, path))


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
