"""The admin advisories API: ``GET/POST /_api/advisories``, ``DELETE /_api/advisories/:id``."""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import read_json_object, refuse_large_body, send_media
from app.service import RegistryService
from r13core.access import Action
from r13core.errors import InvalidValue


class Advisories:
    """Security advisories that npm/pnpm/bun audit report (admin key)."""

    def __init__(self, registry: RegistryService, guard: Guard, *, max_body: int) -> None:
        self.registry = registry
        self.guard = guard
        self.max_body = max_body

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, {"objects": self.registry.list_advisories()})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        advisory = read_json_object(req, self.max_body)
        send_media(resp, self.registry.add_advisory(advisory, actor=actor), falcon.HTTP_201)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, advisory_id: str) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        refuse_large_body(req, self.max_body)
        if not advisory_id or len(advisory_id) > 128:
            raise InvalidValue("malformed advisory id")
        self.registry.remove_advisory(advisory_id, actor=actor)
        send_media(resp, {"ok": True})
