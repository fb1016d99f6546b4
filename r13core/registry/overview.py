"""One package as the dashboard's Packages section shows it (docs/dashboard.md).

Everything the page shows about a package comes from here, computed from the stored
document: the versions newest first (each with its publish time, deprecation and
whether it ships types), the dist-tags, the owners, the types badge, and the README
rendered and sanitised on the server (r13core/readme.py). Nothing is computed in the
page, and nothing the publisher wrote reaches it unsanitised except as JSON strings.
"""

from __future__ import annotations

from typing import Any

from r13core.readme import render_readme
from r13core.registry.documents import HasPackages, existing
from r13core.semver import version_key


def _ships_types(version: dict[str, Any]) -> bool:
    """A version that declares its own type definitions (``types``/``typings``)."""
    return any(isinstance(version.get(f), str) and version.get(f) for f in ("types", "typings"))


def types_badge(name: str, latest: dict[str, Any] | None, has: HasPackages) -> str:
    """``"included"`` (the latest version ships types), ``"definitely-typed"`` (an
    ``@types/`` package for it is in this registry) or ``"none"``."""
    if latest is not None and _ships_types(latest):
        return "included"
    if not name.startswith("@types/"):
        bare = name[1:].replace("/", "__") if name.startswith("@") else name
        if has.package(f"@types/{bare}") is not None:
            return "definitely-typed"
    return "none"


def package_overview(has: HasPackages, name: str) -> dict[str, Any]:
    """The package's overview; NotFound if there is no such package."""
    doc = existing(has, name).doc
    versions: dict[str, Any] = doc.get("versions") or {}
    times: dict[str, Any] = doc.get("time") or {}
    tags: dict[str, str] = dict(doc.get("dist-tags") or {})
    listed = []
    for number in sorted(versions, key=version_key, reverse=True):
        version = versions[number]
        deprecated = version.get("deprecated")
        listed.append(
            {
                "version": number,
                "published": times.get(number),
                "deprecated": deprecated if isinstance(deprecated, str) and deprecated else None,
                "types": _ships_types(version),
                "tags": sorted(tag for tag, v in tags.items() if v == number),
            }
        )
    latest = versions.get(tags.get("latest", ""))
    return {
        "name": name,
        "description": doc.get("description") if isinstance(doc.get("description"), str) else "",
        "license": doc.get("license") if isinstance(doc.get("license"), str) else None,
        "keywords": [k for k in doc.get("keywords") or [] if isinstance(k, str)]
        if isinstance(doc.get("keywords"), list)
        else [],
        "distTags": tags,
        "versions": listed,
        "maintainers": [dict(m) for m in doc.get("maintainers") or []],
        "created": times.get("created"),
        "modified": times.get("modified"),
        "types": types_badge(name, latest, has),
        "deprecated": bool(listed) and all(v["deprecated"] for v in listed),
        "readmeHtml": render_readme(doc.get("readme")),
    }


__all__ = ["package_overview", "types_badge"]
