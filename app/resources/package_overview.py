"""``GET /_api/packages/overview?name=``: one package as the dashboard shows it.

The versions (publish time, deprecation, types), dist-tags, owners, the types badge
and the README rendered to HTML and sanitised on the server
(r13core/registry/overview.py, r13core/readme.py). The name is a query parameter so
a scoped name (``@scope/pkg``) needs no escaping in the path. Readable by whoever may
read the package (the same decision as ``GET /:pkg``); the browse list is npm's
search (``GET /-/v1/search``), which already skips what the caller may not read.
"""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import send_media
from app.service import RegistryService
from r13core.access import Action
from r13core.errors import BadRequest
from r13core.names import PackageName


class PackageOverview:
    """The route above."""

    def __init__(self, registry: RegistryService, guard: Guard) -> None:
        self.registry = registry
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.READ)
        raw = req.get_param("name")
        if not raw:
            raise BadRequest("name is required")
        name = PackageName.parse(raw)
        self.guard.require(req, Action.READ, name)
        send_media(resp, self.registry.overview(name))
        resp.cache_control = ["no-store"]
