"""``GET /-/whoami``: which key the request carries (npm prints ``username``)."""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import send_media
from r13core.access import Action
from r13core.errors import Unauthorized


class Whoami:
    """The user (a bare key: its id) as npm's username; 401 without a valid key."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        identity = self.guard.identity(req)
        if identity is None:
            raise Unauthorized("whoami needs a key")
        self.guard.require(req, Action.READ)  # the key's CIDR list applies here too
        send_media(resp, {"username": identity.username})
        resp.cache_control = ["no-store"]
