"""The uplink's admin API (docs/uplinks.md).

``GET /_api/uplink`` — flags, the circuit breaker, cache sizes;
``POST /_api/uplink/breaker/reset`` — close the breaker now;
``GET /_api/uplink/overrides`` — names allowed to shadow the upstream;
``PUT|DELETE /_api/uplink/overrides/{name}`` (``/@scope/name`` for a scoped one) — allow or
withdraw publishing a name the upstream has. Admin keys only; changes audited.
"""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import refuse_large_body, send_media
from r13core.access import Action
from r13core.errors import NotFound
from r13core.names import PackageName
from r13core.uplink import Uplink


def _name(first: str, bare: str | None) -> PackageName:
    """``name`` alone, or ``@scope/bare`` from the two segments (the ``@`` may be left out)."""
    return PackageName.parse(f"@{first.lstrip('@')}/{bare}" if bare else first)


class UplinkAdmin:
    """Admin view and overrides of the uplink."""

    def __init__(self, uplink: Uplink, guard: Guard, *, max_body: int) -> None:
        self.uplink = uplink
        self.guard = guard
        self.max_body = max_body

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, self.uplink.status())

    def on_post_reset(self, req: falcon.Request, resp: falcon.Response) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        refuse_large_body(req, self.max_body)
        self.uplink.reset_breaker(actor=actor)
        send_media(resp, {"ok": True, "breaker": self.uplink.breaker.state().as_dict()})

    def on_get_overrides(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, {"objects": self.uplink.overrides()})

    def on_put_override(
        self, req: falcon.Request, resp: falcon.Response, name: str, bare: str | None = None
    ) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        refuse_large_body(req, self.max_body)
        package = _name(name, bare)
        added = self.uplink.allow_publish(package, actor=actor)
        send_media(
            resp, {"ok": True, "name": str(package)}, falcon.HTTP_201 if added else falcon.HTTP_200
        )

    def on_delete_override(
        self, req: falcon.Request, resp: falcon.Response, name: str, bare: str | None = None
    ) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        refuse_large_body(req, self.max_body)
        package = _name(name, bare)
        if not self.uplink.disallow_publish(package, actor=actor):
            raise NotFound(f"no override for {package}")
        send_media(resp, {"ok": True})


def add_routes(app: falcon.App[falcon.Request, falcon.Response], resource: UplinkAdmin) -> None:
    """The routes above."""
    app.add_route("/_api/uplink", resource)
    app.add_route("/_api/uplink/breaker/reset", resource, suffix="reset")
    app.add_route("/_api/uplink/overrides", resource, suffix="overrides")
    app.add_route("/_api/uplink/overrides/{name}", resource, suffix="override")
    app.add_route("/_api/uplink/overrides/{name}/{bare}", resource, suffix="override")
