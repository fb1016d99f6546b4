"""npm audit and search, forwarded to the upstream while PROXY_MODE is on.

* **audit** — the bulk request (``{name: [versions]}``) is sent upstream for the
  names that may be proxied (never a local or private name: the upstream
  learns nothing of what is private), and the upstream's advisories are merged
  with the local ones (local first; an upstream advisory with an id already
  listed is not repeated). The legacy quick/full audit (pnpm, older npm) is
  answered the same way: its tree is flattened to a bulk request for the
  upstream, whose advisories then go into the legacy report beside the local
  ones. If the upstream cannot answer, the audit fails with a 502/504 rather
  than report "no vulnerabilities" from half the data.
* **search** — the upstream's results follow the local ones, each marked with
  ``"flags": {"upstream": true}`` (npm's search objects carry ``flags``); names
  that are local or private are dropped from them. If the upstream fails,
  the local results come alone, with ``"upstream_error"`` saying why.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from r13core.errors import LoopDetected, UpstreamError
from r13core.names import PackageName
from r13core.storage.advisories import AdvisoryRecord
from r13core.uplink.service import Uplink

BULK_PATH = "/-/npm/v1/security/advisories/bulk"
SEARCH_PATH = "/-/v1/search"


def _proxyable(uplink: Uplink, name: str) -> bool:
    try:
        return uplink.policy.may_proxy(PackageName.parse(name))
    except ValueError:
        return False


def upstream_bulk(
    uplink: Uplink, request: dict[str, list[str]], *, via: str = ""
) -> dict[str, list[dict[str, Any]]]:
    """The upstream's bulk audit answer for the proxyable names of ``request``."""
    asked = {n: v for n, v in request.items() if _proxyable(uplink, n)}
    if not asked:
        return {}
    if via and uplink.client.loops(via):
        raise LoopDetected(f"this audit already passed through this registry (Via: {via})")
    path = uplink.client.base_path + BULK_PATH
    answer = uplink.call_upstream(
        lambda: uplink.client.post_json(path, json.dumps(asked).encode(), via=via)
    )
    if answer is None:
        return {}
    try:
        doc = json.loads(answer.body)
    except ValueError:
        raise UpstreamError("the upstream sent a malformed audit answer") from None
    if not isinstance(doc, dict):
        raise UpstreamError("the upstream sent a malformed audit answer")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, advisories in doc.items():
        if name in asked and isinstance(advisories, list):
            out[name] = [a for a in advisories if isinstance(a, dict)]
    return out


def merge_bulk(local: dict[str, Any], upstream: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Local advisories first, then the upstream's not already listed (by id)."""
    out = {name: list(advisories) for name, advisories in local.items()}
    for name, advisories in upstream.items():
        have = out.setdefault(name, [])
        ids = {a.get("id") for a in have}
        have.extend(a for a in advisories if a.get("id") not in ids or a.get("id") is None)
        if not have:
            del out[name]
    return out


def as_records(upstream: dict[str, list[dict[str, Any]]]) -> list[AdvisoryRecord]:
    """Upstream bulk advisories as records the legacy report can list."""
    records = []
    for name, advisories in upstream.items():
        for adv in advisories:
            if not isinstance(adv.get("vulnerable_versions"), str):
                continue
            ident = adv.get("id")
            records.append(
                AdvisoryRecord(
                    int(ident) if isinstance(ident, int) else 0,
                    name,
                    {
                        "title": str(adv.get("title") or ""),
                        "severity": adv.get("severity")
                        if adv.get("severity") in ("info", "low", "moderate", "high", "critical")
                        else "moderate",
                        "vulnerable_versions": adv["vulnerable_versions"],
                        "url": str(adv.get("url") or ""),
                        "cwe": adv.get("cwe") or [],
                    },
                )
            )
    return records


def upstream_search(
    uplink: Uplink, text: str, size: int, offset: int, *, exclude: set[str]
) -> tuple[list[dict[str, Any]], int]:
    """The upstream's search objects (marked), without local/private names; and its total."""
    query = urlencode({"text": text, "size": size, "from": offset})
    path = f"{uplink.client.base_path}{SEARCH_PATH}?{query}"
    answer = uplink.call_upstream(lambda: uplink.client.get_document(path))
    if answer is None or answer.status != 200:
        return [], 0
    try:
        doc = json.loads(answer.body)
    except ValueError:
        raise UpstreamError("the upstream sent a malformed search answer") from None
    objects = []
    for obj in doc.get("objects") or [] if isinstance(doc, dict) else []:
        package = obj.get("package") if isinstance(obj, dict) else None
        name = package.get("name") if isinstance(package, dict) else None
        if not isinstance(name, str) or name in exclude or not _proxyable(uplink, name):
            continue
        marked = dict(obj)
        marked["flags"] = {**(obj.get("flags") or {}), "upstream": True}
        objects.append(marked)
    total = doc.get("total") if isinstance(doc, dict) else 0
    return objects, total if isinstance(total, int) else len(objects)


__all__ = ["as_records", "merge_bulk", "upstream_bulk", "upstream_search"]
