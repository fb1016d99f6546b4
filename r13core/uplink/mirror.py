"""``r13 mirror FILE``: fill the uplink cache ahead of time, for installs without the upstream.

:func:`read_wanted` reads what a project needs from a ``package-lock.json`` (v1
``dependencies`` or v2/v3 ``packages``), a ``pnpm-lock.yaml`` (v5 ``/name/1.0.0``,
v6 ``/name@1.0.0``, v9 ``name@1.0.0`` keys), a ``yarn.lock`` (classic and berry)
or a plain list (one ``name`` or ``name@version`` a line; ``#`` comments). A
name without a version means its ``latest``.

:func:`mirror` fetches each name's abbreviated packument (what installs read)
and each wanted version's tarball through the uplink — checked against its
integrity, kept in the cache — with a few at once (``concurrency``). It
resumes by nature: what is already cached (a tarball; a packument still fresh)
is not asked of the upstream again, so running it again after an interruption
continues where it stopped. Local and private names are never asked upstream
(r13core/uplink/policy.py); they are reported, not mirrored.

The lockfile parsers are small and line-based (no YAML library): they read
only the keys npm, pnpm and yarn write for registry packages; links, git and
file dependencies are skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r13core.errors import InvalidName, InvalidValue, NotFound, PayloadTooLarge, UpstreamError
from r13core.names import PackageName
from r13core.uplink.service import Uplink

Wanted = dict[str, set[str]]
"""name -> versions (empty: the latest)."""


def _add(wanted: Wanted, name: str, version: str | None) -> None:
    name = name.strip()
    if not name:
        return
    versions = wanted.setdefault(name, set())
    if version:
        versions.add(version.strip())


def _split_spec(spec: str) -> tuple[str, str | None]:
    """``@scope/name@1.0.0`` -> (``@scope/name``, ``1.0.0``); ``name`` -> (``name``, None)."""
    at = spec.rfind("@")
    if at <= 0:
        return spec, None
    return spec[:at], spec[at + 1 :] or None


def _package_lock(doc: dict[str, Any]) -> Wanted:
    wanted: Wanted = {}
    packages = doc.get("packages")
    if isinstance(packages, dict):  # lockfile v2 / v3
        for key, meta in packages.items():
            if not key or not isinstance(meta, dict) or meta.get("link"):
                continue
            resolved = meta.get("resolved")
            if isinstance(resolved, str) and not resolved.startswith("http"):
                continue  # file:, git: ...
            name = meta.get("name") or key.rsplit("node_modules/", 1)[-1]
            if isinstance(name, str) and isinstance(meta.get("version"), str):
                _add(wanted, name, meta["version"])
        return wanted

    def walk(deps: Any) -> None:  # lockfile v1
        if not isinstance(deps, dict):
            return
        for name, meta in deps.items():
            if isinstance(meta, dict):
                version = meta.get("version")
                if isinstance(version, str) and not version.startswith(_NOT_REGISTRY):
                    _add(wanted, name, version)
                walk(meta.get("dependencies"))

    walk(doc.get("dependencies"))
    return wanted


_NOT_REGISTRY = ("file:", "git", "link:", "http")
_PNPM_KEY = re.compile(r"  ['\"]?/?([^'\"\s]+?)['\"]?:\s*")
_PNPM_V5 = re.compile(r"(@[^/@]+/[^/@]+|[^/@][^/@]*)/(\d[^/_]*)(?:_.*)?")


def _pnpm_lock(text: str) -> Wanted:
    wanted: Wanted = {}
    section = None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":").strip()
            continue
        if section != "packages":
            continue
        match = _PNPM_KEY.fullmatch(line)
        if match is None:
            continue
        key = match.group(1).split("(", 1)[0]  # v6+: peer suffixes in parentheses
        v5 = _PNPM_V5.fullmatch(key)
        if v5 is not None:  # /name/1.0.0 or /@scope/name/1.0.0_peer@1.0.0
            name, version = v5.group(1), v5.group(2)
        else:  # v6 /name@1.0.0, v9 name@1.0.0
            name, _, version = key.rpartition("@")
        if name and version and version[:1].isdigit():
            _add(wanted, name, version)
    return wanted


def _yarn_lock(text: str) -> Wanted:
    wanted: Wanted = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            first = line.rstrip(":").split(",")[0].strip().strip('"')
            if first.startswith("__metadata"):
                current = None
                continue
            name, spec = _split_spec(first)
            protocol = (spec or "").split(":", 1)[0] if ":" in (spec or "") else "npm"
            current = name if protocol == "npm" else None
            continue
        stripped = line.strip()
        if current and (stripped.startswith("version ") or stripped.startswith("version:")):
            version = stripped.split(None, 1)[1].strip().strip('"')
            _add(wanted, current, version)
            current = None
    return wanted


def _name_list(text: str) -> Wanted:
    wanted: Wanted = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = _split_spec(line)
            _add(wanted, name, version)
    return wanted


def read_wanted(path: Path) -> Wanted:
    """What ``path`` asks for: name -> versions; InvalidValue if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"cannot read {path}: {exc}") from None
    base = path.name
    if base.endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InvalidValue(f"{path} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidValue(f"{path} is not a package-lock.json")
        return _package_lock(doc)
    if base.endswith((".yaml", ".yml")):
        return _pnpm_lock(text)
    if base == "yarn.lock" or text.lstrip().startswith("# THIS IS AN AUTOGENERATED FILE"):
        return _yarn_lock(text)
    return _name_list(text)


@dataclass
class MirrorReport:
    """What a mirror run did, per outcome (``name@version`` labels)."""

    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "fetched": len(self.fetched),
            "already_cached": len(self.cached),
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes,
        }


def _one_name(uplink: Uplink, name: str, versions: set[str], report: MirrorReport) -> int:
    """Mirror one name; the count of work items it stood for (for the progress bar)."""
    items = max(1, len(versions))
    try:
        package = PackageName.parse(name)
    except InvalidName as exc:
        report.failed[name] = str(exc)
        return items
    if not uplink.policy.may_proxy(package):
        report.skipped.append(f"{name} ({uplink.policy.why_not(package)})")
        return items
    try:
        doc_answer = uplink.packument(package, abbreviated=True)
        doc = json.loads(doc_answer.body)
    except (NotFound, UpstreamError, ValueError) as exc:
        report.failed[name] = str(exc) or type(exc).__name__
        return items
    wanted = set(versions)
    if not wanted:
        latest = (doc.get("dist-tags") or {}).get("latest")
        if isinstance(latest, str):
            wanted.add(latest)
    for version in sorted(wanted):
        label = f"{name}@{version}"
        try:
            blob = uplink.tarball(package, package.tarball_file(version))
        except (NotFound, UpstreamError, PayloadTooLarge, InvalidValue) as exc:
            report.failed[label] = str(exc) or type(exc).__name__
            continue
        if blob.cache == "hit":
            report.cached.append(label)
        else:
            report.fetched.append(label)
            report.bytes += blob.size
    return items


def mirror(
    uplink: Uplink,
    wanted: Wanted,
    *,
    concurrency: int = 8,
    progress: Callable[[int], None] | None = None,
) -> MirrorReport:
    """Fetch and cache everything in ``wanted`` (see the module's docstring)."""
    if not uplink.caching():
        raise InvalidValue("CACHE_ENABLED is off: nothing fetched would be kept")
    report = MirrorReport()

    def run(item: tuple[str, set[str]]) -> None:
        done = _one_name(uplink, item[0], item[1], report)
        if progress is not None:
            progress(done)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(run, sorted(wanted.items())))
    report.fetched.sort()
    report.cached.sort()
    report.skipped.sort()
    return report


def work_items(wanted: Wanted) -> int:
    """How many steps :func:`mirror` reports through ``progress`` in all."""
    return sum(max(1, len(v)) for v in wanted.values())


def flatten(wanted: Wanted) -> Iterable[str]:
    """``name@version`` (or ``name``) labels, sorted."""
    for name, versions in sorted(wanted.items()):
        if versions:
            yield from (f"{name}@{v}" for v in sorted(versions))
        else:
            yield name


__all__ = ["MirrorReport", "Wanted", "flatten", "mirror", "read_wanted", "work_items"]
