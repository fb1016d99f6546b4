"""npm's search (``GET /-/v1/search``) over the per-package summaries storage keeps.

Every change to a package saves a small summary beside its document
(:func:`summarize`), so a search reads one short row per package and never a
whole document. Ranking: every term must match; per term an exact name scores
10, a name prefix 6, a name substring 4, an exact keyword 4, a keyword substring
2, the description 1.5, a maintainer or author 1; ties go by quality (the share
of description, keywords, repository, license and readme present).

``visible`` is the caller's read access (app/auth.py ``Guard.reader``): a
package the caller could not GET is skipped before it is scored or counted,
so neither the objects nor ``total`` reveal it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from r13core.names import PackageName
from r13core.registry.documents import now
from r13core.storage.packages import JSONDict, PackageStorage


def search(
    storage: PackageStorage,
    text: str,
    size: int = 20,
    offset: int = 0,
    *,
    public_url: str,
    visible: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """npm's ``/-/v1/search``: packages ranked by name, keyword and description matches.

    Terms must all match (name, keyword, description, or maintainer); name matches
    weigh most, exact before prefix before substring. Qualifiers: ``keywords:a,b``,
    ``author:x``/``maintainer:x``, ``scope:s``. Empty text lists every package.
    Works on the per-package summaries saved with every change. ``visible``
    says which packages the caller may read (as a GET would decide): the others
    are left out before anything is scored or counted, ``total`` included.
    """
    size = max(1, min(int(size), 250))
    offset = max(0, int(offset))
    terms, quals = _parse_query(text if isinstance(text, str) else "")
    hits: list[tuple[float, float, str, JSONDict, float]] = []
    for name, summary in storage.summaries():
        if visible is not None and not visible(name):
            continue
        if not summary:  # saved by a backend or version that kept none
            record = storage.package(name)
            if record is None:
                continue
            summary = summarize(name, record.doc)
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
                "package": _package(summary, public_url),
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
    return {"objects": objects, "total": len(hits), "time": now()}


def _package(summary: JSONDict, public_url: str) -> JSONDict:
    name = PackageName.parse(summary["name"])
    pkg: JSONDict = {
        "name": summary["name"],
        "scope": name.scope or "unscoped",
        "version": summary["version"],
        "description": summary["description"],
        "keywords": summary["keywords"],
        "date": summary["date"],
        "links": {"npm": f"{public_url}/{name.url}", **summary["links"]},
        "publisher": summary["publisher"],
        "maintainers": summary["maintainers"],
    }
    if summary.get("hasTypes"):
        pkg["hasTypes"] = True
    return pkg


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


def summarize(name: str, doc: JSONDict) -> JSONDict:
    """What search needs of a package, computed once per change (saved with the document)."""
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
