"""Security advisories and npm audit: the bulk endpoint and the legacy tree report.

Advisories are entered by admins (``/_api/advisories``); npm, pnpm and bun ask
about them in two ways:

* ``POST /-/npm/v1/security/advisories/bulk`` ``{name: [versions]}`` (npm 7+, bun);
* ``POST /-/npm/v1/security/audits(/quick)`` with the lockfile's dependency tree
  (pnpm 10, npm's fallback), answered with the old report.

The tree comes from the client, so it is hostile until measured. Before it is
walked, :func:`measure_tree` checks it against :class:`AuditLimits` (module
instances, depth, name length) without building anything; beyond a bound the
audit is refused (PayloadTooLarge for size, BadRequest for shape). The walk
then keeps each module instance as a name, a version and the index of its
parent (no ``a>b>c`` string per node, which made memory grow with depth times
width); a path is spelled out only for a vulnerable instance, and at most
``max_paths`` per finding. :func:`parse_audit_body` parses the JSON itself
counting objects, so not even the parse can outgrow the bounds.

Both answers leave out packages the caller may not read (``visible``): an
audit must not reveal a package that a GET would refuse.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from r13core.errors import BadRequest, InvalidValue, NotFound, PayloadTooLarge
from r13core.jsonsafe import check_document, refuse_surrogates
from r13core.names import MAX_NAME_LENGTH, PackageName
from r13core.registry import documents
from r13core.semver import Range
from r13core.storage.advisories import AdvisoryRecord, AdvisoryStorage
from r13core.storage.packages import JSONDict

SEVERITIES: Final = ("info", "low", "moderate", "high", "critical")
_DEV, _OPTIONAL, _BUNDLED = 1, 2, 4

Visible = Callable[[str], bool]


def everything(package: str) -> bool:
    """The ``visible`` of a caller who may read every package."""
    return True


@dataclass(frozen=True)
class AuditLimits:
    """Bounds on a legacy audit tree (docs/registry-api.md, "Audit").

    ``max_nodes`` module instances (a very large application has a few
    thousand), ``max_depth`` levels of ``dependencies``, ``max_name_length``
    characters per name (npm's limit), ``max_paths`` paths shown per finding
    (the counts still count every path), ``max_body`` bytes of JSON after
    decompression, ``max_objects`` JSON objects in it.
    """

    max_nodes: int = 50_000
    max_depth: int = 64
    max_name_length: int = MAX_NAME_LENGTH
    max_paths: int = 100
    max_body: int = 16 * 1024 * 1024
    max_objects: int = 200_000


# -- the tree ---------------------------------------------------------------------------------


def parse_audit_body(data: bytes, limits: AuditLimits) -> JSONDict:
    """The audit body as a JSON object, refusing more than ``limits.max_objects`` objects.

    Objects are counted as the parser makes them, so a body of many tiny
    objects is stopped before it is all in memory. PayloadTooLarge past a bound,
    BadRequest for anything that is not one JSON object.
    """
    if len(data) > limits.max_body:
        raise PayloadTooLarge(f"an audit body is at most {limits.max_body} bytes")
    count = 0

    def counted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal count
        count += 1
        if count > limits.max_objects:
            raise PayloadTooLarge(f"the audit body holds more than {limits.max_objects} objects")
        return dict(pairs)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        doc = json.loads(data, object_pairs_hook=counted, parse_constant=constant)
    except (ValueError, RecursionError):
        raise BadRequest("the audit body is not valid JSON (or is nested too deeply)") from None
    refuse_surrogates(data, doc, what="the audit body")
    if not isinstance(doc, dict):
        raise BadRequest("the audit body is a lockfile tree object")
    return doc


def _children(node: JSONDict) -> Iterable[tuple[Any, Any]]:
    deps = node.get("dependencies")
    return deps.items() if isinstance(deps, dict) else ()


def measure_tree(tree: JSONDict, limits: AuditLimits) -> int:
    """How many module instances ``tree`` holds; refuses a tree beyond ``limits``.

    Walks with a stack of (object, depth) and builds nothing, so it costs no
    more memory than the tree's width. PayloadTooLarge for too many modules,
    BadRequest for too deep a tree or too long a name.
    """
    if not isinstance(tree, dict):
        raise BadRequest("the audit body is a lockfile tree object")
    stack: list[tuple[JSONDict, int]] = [(tree, 0)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        for name, child in _children(node):
            if not isinstance(child, dict) or not isinstance(name, str):
                continue
            nodes += 1
            if nodes > limits.max_nodes:
                raise PayloadTooLarge(f"the audit tree has more than {limits.max_nodes} modules")
            if depth + 1 > limits.max_depth:
                raise BadRequest(f"the audit tree is nested deeper than {limits.max_depth} levels")
            if len(name) > limits.max_name_length:
                raise BadRequest(
                    f"the audit tree names a module longer than {limits.max_name_length} characters"
                )
            stack.append((child, depth + 1))
    return nodes


@dataclass
class Tree:
    """Every module instance of a lockfile tree, without its paths.

    Instance ``i`` is ``names[i]@versions[i]`` under instance ``parents[i]``
    (-1 at the top); ``flags[i]`` holds dev/optional/bundled. Only instances
    with a version are modules; the others are kept as path steps.
    """

    names: list[str]
    versions: list[str | None]
    parents: array[int]
    flags: bytearray

    @classmethod
    def walk(cls, tree: JSONDict) -> Tree:
        """Flatten a tree that :func:`measure_tree` has accepted."""
        out = cls([], [], array("l"), bytearray())
        stack: list[tuple[JSONDict, int]] = [(tree, -1)]
        while stack:
            node, parent = stack.pop()
            for name, child in _children(node):
                if not isinstance(child, dict) or not isinstance(name, str):
                    continue
                version = child.get("version")
                index = len(out.names)
                out.names.append(name)
                out.versions.append(version if isinstance(version, str) else None)
                out.parents.append(parent)
                out.flags.append(
                    (_DEV if child.get("dev") else 0)
                    | (_OPTIONAL if child.get("optional") else 0)
                    | (_BUNDLED if child.get("bundled") else 0)
                )
                stack.append((child, index))
        return out

    def path(self, index: int) -> str:
        """``a>b>c``: the names from the top down to instance ``index``."""
        steps = []
        while index >= 0:
            steps.append(self.names[index])
            index = self.parents[index]
        return ">".join(reversed(steps))

    def modules(self) -> Iterable[int]:
        """Indexes of the instances that have a version."""
        return (i for i, v in enumerate(self.versions) if v is not None)


# -- the store ---------------------------------------------------------------------------------


class Advisories:
    """Advisories over an :class:`AdvisoryStorage`, and the audits npm clients ask for."""

    def __init__(self, storage: AdvisoryStorage, limits: AuditLimits | None = None) -> None:
        self.storage = storage
        self.limits = limits or AuditLimits()

    def add(self, advisory: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """Store an advisory (admin API); returns it with its ``id``.

        Fields: ``module_name`` (or ``package``/``name``), ``vulnerable_versions`` (an npm
        range), ``severity`` (info, low, moderate, high, critical), ``title``; optional
        ``url``, ``overview``, ``recommendation``, ``patched_versions`` (a range), ``cwe``
        and ``cves`` (lists of strings), ``github_advisory_id``, ``cvss``
        (``{score, vectorString}``).
        """
        if not isinstance(advisory, dict):
            raise BadRequest("an advisory is a JSON object")
        check_document(advisory, what="advisory")
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
        now = documents.now()
        data.update(created=now, updated=now, created_by=actor)
        advisory_id = self.storage.add_advisory(package, data)
        return {"id": advisory_id, **data}

    def all(self) -> list[dict[str, Any]]:
        """Every advisory, by id."""
        return [{"id": a.id, **a.data} for a in self.storage.advisories()]

    def remove(self, advisory_id: str | int) -> None:
        """Delete an advisory; NotFound if there is none with that id."""
        try:
            number = int(advisory_id)
        except (TypeError, ValueError):
            raise NotFound(f"advisory {advisory_id!r} not found") from None
        if not self.storage.remove_advisory(number):
            raise NotFound(f"advisory {advisory_id!r} not found")

    def bulk(
        self, request: dict[str, list[str]], *, visible: Visible = everything
    ) -> dict[str, Any]:
        """``{name: [advisory]}`` for the requested versions inside an advisory's range.

        ``{}`` when none; packages the caller may not read are left out.
        """
        if not isinstance(request, dict):
            raise BadRequest("the bulk audit body is {name: [versions]}")
        for versions in request.values():
            if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
                raise BadRequest("the bulk audit body is {name: [versions]}")
        names = [str(n) for n in request if isinstance(n, str) and visible(n)]
        out: dict[str, list[JSONDict]] = {}
        for adv in self.storage.advisories(names) if names else []:
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

    def tree_versions(self, tree: dict[str, Any]) -> dict[str, list[str]]:
        """``{name: [versions]}`` of every module in a legacy audit tree (for the upstream)."""
        measure_tree(tree, self.limits)
        flat = Tree.walk(tree)
        out: dict[str, set[str]] = {}
        for i in flat.modules():
            out.setdefault(flat.names[i], set()).add(flat.versions[i] or "")
        return {name: sorted(versions) for name, versions in out.items()}

    def quick(
        self,
        tree: dict[str, Any],
        *,
        visible: Visible = everything,
        extra: Iterable[AdvisoryRecord] = (),
    ) -> dict[str, Any]:
        """The legacy report for a lockfile tree (see the module docstring for the bounds).

        Each vulnerable module instance is a finding (``version`` and at most
        ``max_paths`` of its ``paths``, ``a>b>c``); ``actions`` are ``review``
        actions (r13 does not compute upgrade targets); ``metadata.vulnerabilities``
        counts every vulnerable path per severity. Packages the caller may not
        read get no advisory. ``extra``: advisories from elsewhere (the upstream's,
        r13core/uplink/forward.py) reported beside the stored ones.
        """
        measure_tree(tree, self.limits)
        flat = Tree.walk(tree)
        counts = {"dependencies": 0, "devDependencies": 0, "optionalDependencies": 0}
        by_name: dict[str, list[int]] = {}
        for i in flat.modules():
            if flat.flags[i] & _DEV:
                counts["devDependencies"] += 1
            elif flat.flags[i] & _OPTIONAL:
                counts["optionalDependencies"] += 1
            else:
                counts["dependencies"] += 1
            by_name.setdefault(flat.names[i], []).append(i)
        names = sorted(n for n in by_name if visible(n))
        vulns = dict.fromkeys(SEVERITIES, 0)
        advisories: dict[str, JSONDict] = {}
        actions: list[JSONDict] = []
        stored = list(self.storage.advisories(names)) if names else []
        wanted = set(names)
        for adv in stored + [a for a in extra if a.package in wanted]:
            try:
                matcher = Range.parse(adv.data["vulnerable_versions"])
            except InvalidValue:
                continue  # an upstream range r13 cannot read: not reported as a match
            hit = [i for i in by_name[adv.package] if matcher.matches(flat.versions[i] or "")]
            if not hit:
                continue
            shown: dict[str, list[int]] = {}
            for i in hit:
                same = shown.setdefault(flat.versions[i] or "", [])
                if len(same) < self.limits.max_paths:
                    same.append(i)
            paths = {i: flat.path(i) for indexes in shown.values() for i in indexes}
            advisories[str(adv.id)] = _legacy_advisory(
                adv, [{"version": v, "paths": [paths[i] for i in ix]} for v, ix in shown.items()]
            )
            actions.append(
                {
                    "action": "review",
                    "module": adv.package,
                    "resolves": [
                        {
                            "id": adv.id,
                            "path": path,
                            "dev": bool(flat.flags[i] & _DEV),
                            "optional": bool(flat.flags[i] & _OPTIONAL),
                            "bundled": bool(flat.flags[i] & _BUNDLED),
                        }
                        for i, path in paths.items()
                    ],
                }
            )
            vulns[adv.data["severity"]] += len(hit)
        total = sum(counts.values())
        return {
            "actions": actions,
            "advisories": advisories,
            "muted": [],
            "metadata": {"vulnerabilities": vulns, **counts, "totalDependencies": total},
        }


def _legacy_advisory(adv: AdvisoryRecord, findings: list[JSONDict]) -> JSONDict:
    data = adv.data
    return {
        "findings": findings,
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
