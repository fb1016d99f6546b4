"""npm's publish document for raw-HTTP e2e checks and the crash test (r13core/npm_pack.py)."""

from __future__ import annotations

from typing import Any

from r13core import npm_pack


def tarball(name: str, version: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A gzip tarball like `npm pack` makes: package.json and ``extra`` under ``package/``."""
    return npm_pack.package_tarball({"name": name, "version": version}, extra)


def publish_body(name: str, version: str, data: bytes) -> dict[str, Any]:
    """The JSON npm PUTs to ``/:pkg`` for one new version with its tarball ``data``."""
    return npm_pack.publish_document({"name": name, "version": version}, data)
