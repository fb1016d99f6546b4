"""The registry service with its changes written to the audit log.

A thin wrapper: each change is passed on unchanged and, once it has committed,
recorded (who, what, which package, from which address). Reads pass straight
through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.security_middleware import REQUEST_IP
from app.service import RegistryService
from r13core.audit import AuditLog
from r13core.names import PackageName


class AuditedRegistry:
    """Wraps a :class:`RegistryService`; see the module docstring."""

    def __init__(self, registry: RegistryService, audit: AuditLog) -> None:
        self._registry = registry
        self._audit = audit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def _record(self, actor: str, action: str, target: str, **detail: Any) -> None:
        self._audit.safe_record(actor, action, target, ip=REQUEST_IP.get(), **detail)

    def put_package(
        self,
        name: PackageName,
        body: dict[str, Any],
        *,
        actor: str,
        check_owner: Callable[[list[str]], None] | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        created, result = self._registry.put_package(
            name, body, actor=actor, check_owner=check_owner
        )
        versions = sorted(body.get("versions") or {}) if created else []
        self._record(
            actor, "publish" if created else "package.update", str(name), versions=versions
        )
        return created, result

    def put_package_rev(
        self, name: PackageName, rev: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        result = self._registry.put_package_rev(name, rev, body, actor=actor)
        self._record(actor, "package.change", str(name))
        return result

    def unpublish_package(self, name: PackageName, rev: str, *, actor: str) -> dict[str, Any]:
        result = self._registry.unpublish_package(name, rev, actor=actor)
        self._record(actor, "unpublish", str(name))
        return result

    def remove_tarball(
        self, name: PackageName, filename: str, rev: str, *, actor: str
    ) -> dict[str, Any]:
        result = self._registry.remove_tarball(name, filename, rev, actor=actor)
        self._record(actor, "unpublish.tarball", str(name), file=filename)
        return result

    def set_dist_tag(self, name: PackageName, tag: str, version: str, *, actor: str) -> None:
        self._registry.set_dist_tag(name, tag, version, actor=actor)
        self._record(actor, "dist-tag.set", str(name), tag=tag, version=version)

    def remove_dist_tag(self, name: PackageName, tag: str, *, actor: str) -> None:
        self._registry.remove_dist_tag(name, tag, actor=actor)
        self._record(actor, "dist-tag.remove", str(name), tag=tag)

    def add_advisory(self, advisory: dict[str, Any], *, actor: str) -> dict[str, Any]:
        result = self._registry.add_advisory(advisory, actor=actor)
        self._record(actor, "advisory.add", str(advisory.get("package", "")))
        return result

    def remove_advisory(self, advisory_id: str, *, actor: str) -> None:
        self._registry.remove_advisory(advisory_id, actor=actor)
        self._record(actor, "advisory.remove", advisory_id)
