"""npm packages built as the npm CLI builds them: the tarball and the publish document.

:func:`pack` makes the ``.tgz`` that ``npm pack`` makes (every file under
``package/``, gzip'd, reproducible: the same files give the same bytes);
:func:`package_tarball` adds the ``package.json``; :func:`publish_document`
makes the JSON body ``npm publish`` PUTs to ``/:package`` (libnpmpublish's
shape: one version, its ``dist`` with sha512 integrity and sha1 shasum, the
tarball as a base64 attachment). NPM-PROTOCOL.md's publish row says what a
registry checks in it (r13core/publish_checks.py does).

Nothing here checks its input: these build what a client sends, including
what a test wants the registry to refuse. The test suite, the benchmarks and
(to come) the dashboard's "publish a package" and the uplink's fixtures use
it; tests/npm_builders.py keeps the raw-tar builders of hostile archives.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Collection, Mapping
from typing import Any, Final

from r13core.tarball import sha1_hex, sri_sha512

NPM_MTIME: Final = 499162500
"""The time ``npm pack`` gives every entry (1985-10-26T08:15:00Z), so packs are reproducible."""
NODE_VERSION: Final = "20.0.0"
NPM_VERSION: Final = "10.0.0"
DEFAULT_REGISTRY: Final = "http://localhost:4873"

Files = Mapping[str, bytes | str]
"""Path (relative to the package root) → content; ``str`` is written as UTF-8."""


def pack(
    files: Files,
    *,
    top: str = "package",
    mtime: int = NPM_MTIME,
    executable: Collection[str] = (),
    compresslevel: int = 9,
) -> bytes:
    """A gzip'd tar of ``files`` under ``top/`` (``top=""``: the paths as given).

    In the order given, regular files only, mode 0644 (0755 for the paths in
    ``executable``), owner 0, the same ``mtime`` for all, and no time in the
    gzip header: the same arguments always give the same bytes. Long or
    non-ASCII paths get pax headers, as npm's tar writes them.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{top}/{path}" if top else path)
            info.size = len(data)
            info.mode = 0o755 if path in executable else 0o644
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=compresslevel, mtime=0)


def package_json(manifest: Mapping[str, Any]) -> str:
    """``package.json`` text as npm writes it: two-space indent and a final newline."""
    return json.dumps(manifest, indent=2) + "\n"


def package_tarball(
    manifest: Mapping[str, Any], files: Files | None = None, **pack_options: Any
) -> bytes:
    """A package: ``package.json`` from ``manifest``, then ``files`` (see :func:`pack`).

    A ``package.json`` among ``files`` replaces the one made from ``manifest``
    (to build a tarball that disagrees with its publish document).
    """
    everything: dict[str, bytes | str] = {"package.json": package_json(manifest)}
    everything.update(files or {})
    return pack(everything, **pack_options)


SIGSTORE_BUNDLE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
SLSA_PROVENANCE_V1: Final = "https://slsa.dev/provenance/v1"


def provenance_bundle(
    name: str,
    version: str,
    tarball: bytes,
    *,
    predicate_type: str = SLSA_PROVENANCE_V1,
    subject: str | None = None,
    sha512_hex: str | None = None,
) -> dict[str, Any]:
    """A Sigstore bundle shaped as ``npm publish --provenance`` makes one (v0.3, DSSE).

    Its in-toto statement names ``pkg:npm/<name>@<version>`` (or ``subject``) and the
    tarball's sha512 (or ``sha512_hex``). The certificate, signature and log entry
    are placeholders: only Sigstore's CA and log can make real ones.
    """
    purl = "pkg:npm/" + (("%40" + name[1:]) if name.startswith("@") else name) + "@" + version
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {
                "name": subject or purl,
                "digest": {"sha512": sha512_hex or hashlib.sha512(tarball).hexdigest()},
            }
        ],
        "predicateType": predicate_type,
        "predicate": {"buildDefinition": {"buildType": "https://example.invalid/r13-tests"}},
    }
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return {
        "mediaType": SIGSTORE_BUNDLE,
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(b"placeholder certificate").decode()},
            "tlogEntries": [{"logIndex": "1", "integratedTime": "1700000000"}],
        },
        "dsseEnvelope": {
            "payload": payload,
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64.b64encode(b"placeholder signature").decode()}],
        },
    }


def with_provenance(document: dict[str, Any], bundle: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` (a publish body) with ``bundle`` attached as libnpmpublish attaches it:
    ``<name>-<version>.sigstore``, the bundle's JSON text as ``data`` (not base64), its
    length in UTF-16 code units and the bundle's ``mediaType`` as content type."""
    (version,) = document["versions"]
    text = json.dumps(bundle, separators=(",", ":"))
    attachments = dict(document["_attachments"])
    attachments[f"{document['name']}-{version}.sigstore"] = {
        "content_type": bundle.get("mediaType"),
        "data": text,
        "length": len(text.encode("utf-16-le")) // 2,
    }
    return {**document, "_attachments": attachments}


def attachment_name(name: str, version: str) -> str:
    """The attachment key npm uses: ``<name>-<version>.tgz`` (the scope included)."""
    return f"{name}-{version}.tgz"


def publish_document(
    manifest: Mapping[str, Any],
    tarball: bytes,
    *,
    registry: str = DEFAULT_REGISTRY,
    tag: str = "latest",
    access: str | None = "public",
    attachment: str | None = None,
    with_dist: bool = True,
) -> dict[str, Any]:
    """The body of ``npm publish``: ``PUT /<name>`` with one version and its tarball.

    ``manifest`` is the package.json (``name`` and ``version`` required);
    npm adds ``_id``, ``_nodeVersion``, ``_npmVersion`` and ``dist`` (integrity,
    shasum, and the tarball URL under ``registry``). ``attachment`` renames
    the attachment; ``with_dist=False`` leaves ``dist`` out (npm always
    sends it; a registry must compute its own anyway).
    """
    name, version = str(manifest["name"]), str(manifest["version"])
    filename = attachment or attachment_name(name, version)
    version_doc: dict[str, Any] = {
        **manifest,
        "_id": f"{name}@{version}",
        "_nodeVersion": NODE_VERSION,
        "_npmVersion": NPM_VERSION,
    }
    if with_dist:
        version_doc["dist"] = {
            "integrity": sri_sha512(tarball),
            "shasum": sha1_hex(tarball),
            "tarball": f"{registry.rstrip('/')}/{name}/-/{attachment_name(name, version)}",
        }
    document: dict[str, Any] = {"_id": name, "name": name}
    if "description" in manifest:
        document["description"] = manifest["description"]
    document.update(
        {
            "dist-tags": {tag: version},
            "versions": {version: version_doc},
            "access": access,
            "_attachments": {
                filename: {
                    "content_type": "application/octet-stream",
                    "data": base64.b64encode(tarball).decode(),
                    "length": len(tarball),
                }
            },
        }
    )
    return document
