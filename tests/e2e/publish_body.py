"""npm's publish document, built in Python (for raw-HTTP e2e checks and the crash test)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from typing import Any


def tarball(name: str, version: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A gzip tarball like `npm pack` makes: files under ``package/``."""
    files = {"package/package.json": json.dumps({"name": name, "version": version}).encode()}
    for path, data in (extra or {}).items():
        files[f"package/{path}"] = data
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def publish_body(
    name: str, version: str, data: bytes, *, tarball_url: str = "http://x/t.tgz"
) -> dict[str, Any]:
    """The JSON npm PUTs to ``/:pkg`` for one new version with its tarball."""
    bare = name.rsplit("/", 1)[-1]
    filename = f"{bare}-{version}.tgz"
    manifest = {
        "name": name,
        "version": version,
        "_id": f"{name}@{version}",
        "dist": {
            "integrity": integrity(data),
            "shasum": hashlib.sha1(data).hexdigest(),
            "tarball": tarball_url,
        },
    }
    return {
        "_id": name,
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {version: manifest},
        "access": "public",
        "_attachments": {
            filename: {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(data).decode(),
                "length": len(data),
            }
        },
    }
