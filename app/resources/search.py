"""``GET /-/v1/search?text=&size=&from=``: npm's search.

Only packages the caller could GET are searched (the guard's ``reader``: the
same access rules and key package scopes), so search reveals nothing a 403 hides.
"""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import send_media
from app.service import RegistryService
from r13core.access import Action
from r13core.errors import InvalidValue

MAX_SIZE = 250
MAX_TEXT = 1000


class Search:
    """npm search (``npm search``, ``pnpm search``)."""

    def __init__(self, registry: RegistryService, guard: Guard) -> None:
        self.registry = registry
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.READ)
        text = req.get_param("text", default="") or ""
        if len(text) > MAX_TEXT:
            raise InvalidValue(f"text is longer than {MAX_TEXT} characters")
        try:
            size = req.get_param_as_int("size", default=20, min_value=1, max_value=MAX_SIZE)
            offset = req.get_param_as_int("from", default=0, min_value=0, max_value=10**6)
        except falcon.HTTPInvalidParam as exc:
            raise InvalidValue(exc.description or "bad size or from") from None
        visible = self.guard.reader(req)
        send_media(resp, self.registry.search(text, size or 20, offset or 0, visible=visible))
        resp.cache_control = ["no-cache"]
