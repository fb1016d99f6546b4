"""Upstream packuments as r13 serves them: tarball links rewritten to r13, dists noted.

A proxied packument is the upstream's document with each version's
``dist.tarball`` pointing at this registry (``<public url>/<name>/-/<file>.tgz``,
the same place a local tarball is served from), so clients fetch every tarball
through r13 and r13 can check and cache it. What the upstream said about each
tarball — its URL there, ``dist.integrity`` and ``dist.shasum`` — is kept apart
as :class:`~r13core.storage.uplink_cache.DistRecord` rows: a tarball request is
checked against them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from r13core.errors import InvalidValue, SignatureError, UpstreamError
from r13core.names import PackageName
from r13core.registry.render import Rendered
from r13core.storage.uplink_cache import DistRecord

log = logging.getLogger("r13.uplink")

VersionCheck = Callable[[PackageName, dict[str, Any], "str | None"], None]
"""Checks one upstream version document (its registry signature) given its publish time;
raises SignatureError to refuse it (r13core/signatures.py ``verify_upstream_version``)."""


def parse_document(name: PackageName, body: bytes) -> dict[str, Any]:
    """The upstream's packument as a dict; UpstreamError if it is not one of ``name``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise UpstreamError(f"the upstream sent a malformed packument for {name}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("versions", {}), dict):
        raise UpstreamError(f"the upstream sent a malformed packument for {name}")
    if doc.get("name") not in (None, str(name)):
        raise UpstreamError(f"the upstream answered for {doc.get('name')!r}, not {name}")
    return doc


def rewrite(
    name: PackageName, doc: dict[str, Any], public_url: str, check: VersionCheck | None = None
) -> tuple[Rendered, list[DistRecord]]:
    """``doc`` with r13's tarball links, rendered; and each version's upstream dist.

    ``check`` refuses a version (its registry signature fails): it is left out of the
    served document, its dist is not noted (so its tarball is never fetched), and a
    dist-tag naming it is dropped — never served unsigned.
    """
    base = public_url.rstrip("/")
    dists: list[DistRecord] = []
    versions: dict[str, Any] = {}
    found_times = doc.get("time")
    times: dict[str, Any] = found_times if isinstance(found_times, dict) else {}
    for version, manifest in (doc.get("versions") or {}).items():
        if not isinstance(manifest, dict):
            continue
        if check is not None:
            published = times.get(version)
            try:
                check(name, manifest, published if isinstance(published, str) else None)
            except SignatureError as exc:
                log.warning("refused %s@%s from the upstream: %s", name, version, exc)
                continue
        try:
            local_path = name.tarball_path(str(version))
        except InvalidValue:
            continue  # not a version r13 can name a tarball by: not served
        out = dict(manifest)
        dist = out.get("dist")
        if isinstance(dist, dict) and isinstance(dist.get("tarball"), str):
            integrity = dist.get("integrity")
            shasum = dist.get("shasum")
            dists.append(
                DistRecord(
                    str(name),
                    str(version),
                    dist["tarball"],
                    integrity if isinstance(integrity, str) else "",
                    shasum if isinstance(shasum, str) else "",
                )
            )
            dist = dict(dist)
            dist["tarball"] = f"{base}/{local_path}"
            out["dist"] = dist
        versions[str(version)] = out
    served = {k: v for k, v in doc.items() if k not in ("_attachments", "versions")}
    served["versions"] = versions
    tags = served.get("dist-tags")
    if isinstance(tags, dict):
        served["dist-tags"] = {t: v for t, v in tags.items() if v in versions}
    if "name" not in served:
        served["name"] = str(name)
    return Rendered.of(served), dists


def version_document(
    name: PackageName, doc: dict[str, Any], version_or_tag: str
) -> dict[str, Any] | None:
    """One version object out of a served packument, by version or dist-tag; None if neither."""
    tags = doc.get("dist-tags") or {}
    version = tags.get(version_or_tag, version_or_tag) if isinstance(tags, dict) else version_or_tag
    manifest = (doc.get("versions") or {}).get(version)
    return manifest if isinstance(manifest, dict) else None


__all__ = ["VersionCheck", "parse_document", "rewrite", "version_document"]
