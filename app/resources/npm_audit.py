"""npm audit: the bulk advisories endpoint and the legacy quick/full audit routes.

Both answer only about packages the caller may read (the guard's ``reader``).
The legacy tree is read under its own bounds (r13core/registry/advisories.py ``AuditLimits``).
Not r13's own audit log (who did what): that is app/resources/audit_log.py.
"""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import JSON_TYPES, media_type, read_body, read_json_object, send_media
from app.service import RegistryService
from r13core.access import Action
from r13core.errors import BadRequest, UnsupportedMediaType
from r13core.registry.advisories import AuditLimits, parse_audit_body


class AdvisoriesBulk:
    """``POST /-/npm/v1/security/advisories/bulk``: ``{name: [versions]}`` (often gzip)."""

    def __init__(self, registry: RegistryService, guard: Guard, *, max_body: int) -> None:
        self.registry = registry
        self.guard = guard
        self.max_body = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.READ)
        body = read_json_object(req, self.max_body)
        request: dict[str, list[str]] = {}
        for name, versions in body.items():
            if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
                raise BadRequest("each package must map to a list of version strings")
            request[name] = versions
        visible = self.guard.reader(req)
        via = req.get_header("Via") or ""
        send_media(resp, self.registry.audit_bulk(request, visible=visible, via=via))


class AuditQuick:
    """``POST /-/npm/v1/security/audits/quick`` and ``/audits``: the legacy report."""

    def __init__(
        self,
        registry: RegistryService,
        guard: Guard,
        *,
        max_body: int,
        limits: AuditLimits | None = None,
    ) -> None:
        self.registry = registry
        self.guard = guard
        self.limits = limits or AuditLimits()
        self.max_body = min(max_body, self.limits.max_body)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.READ)
        kind = media_type(req)
        if kind not in JSON_TYPES:
            raise UnsupportedMediaType(
                f"expected Content-Type application/json, not {kind or 'nothing'!r}"
            )
        tree = parse_audit_body(read_body(req, self.max_body), self.limits)
        visible = self.guard.reader(req)
        via = req.get_header("Via") or ""
        send_media(resp, self.registry.audit_quick(tree, visible=visible, via=via))
