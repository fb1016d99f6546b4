"""``GET /_api/security/audit``: the audit log (admin), read from r13core/audit.py.

Not npm audit (the advisories routes): that is app/resources/npm_audit.py.
"""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import send_media
from r13core.access import Action
from r13core.audit import AuditLog
from r13core.errors import InvalidValue


class SecurityAuditLog:
    """``GET /_api/security/audit?before=&limit=&action=&actor=``: newest first, paged."""

    def __init__(self, audit: AuditLog, guard: Guard) -> None:
        self.audit = audit
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        try:
            before = req.get_param_as_int("before")
            limit = req.get_param_as_int("limit", default=100)
        except falcon.HTTPBadRequest:
            raise InvalidValue("before and limit must be whole numbers") from None
        page = self.audit.page(
            before=before,
            limit=limit if limit is not None else 100,
            action=req.get_param("action"),
            actor=req.get_param("actor"),
        )
        send_media(resp, page)
        resp.cache_control = ["no-store"]
