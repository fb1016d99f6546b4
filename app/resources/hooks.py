"""Webhooks over HTTP (docs/webhooks.md): npm's hooks API and the admin API.

npm's shape (``npm hook`` is gone from the npm CLI; the API is the known contract):

* ``POST /-/npm/v1/hooks/hook`` ``{type, name, endpoint, secret}`` — a hook of the caller's;
* ``GET /-/npm/v1/hooks`` (``?package=`` those a change to that package reaches) —
  the caller's hooks;
* ``GET|PUT|DELETE /-/npm/v1/hooks/hook/{hook_id}`` — one hook (``PUT``: ``{endpoint,
  secret}``); its owner, or an admin.

The admin API (admin keys): ``GET|POST /_api/hooks`` (every hook with the queue's
counts; a hook for any owner), ``GET|DELETE /_api/hooks/{hook_id}``,
``GET /_api/hooks/{hook_id}/deliveries`` (the deliveries and the attempt log) and
``POST /_api/hooks/{hook_id}/ping`` (queue a ``hook:ping``).

Who may manage which hook is r13core's decision (``Guard.hook_manager`` →
``Policy.check_hook``); every change is one audited call into r13core/hooks/.
"""

from __future__ import annotations

from typing import Any, Final

import falcon

from app.auth import Guard
from app.http import read_json_object, send_media
from r13core.access import Action
from r13core.errors import BadRequest
from r13core.hooks import Hooks, attempt_json, delivery_json, hook_json, npm_hook_json
from r13core.hooks.service import check_target
from r13core.names import PackageName

MAX_HOOK_BODY: Final = 16 * 1024


def _limit(req: falcon.Request, default: int = 100, most: int = 1000) -> int:
    raw = req.get_param("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise BadRequest(f"limit must be a whole number in 1..{most}")
    return int(raw)


class NpmHooks:
    """``/-/npm/v1/hooks``: a caller's own hooks (``suffix="hook"``, ``"item"``)."""

    def __init__(self, hooks: Hooks, guard: Guard) -> None:
        self.hooks = hooks
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        actor = self.guard.hook_manager(req)
        package = req.get_param("package")
        if package is not None:
            package = str(PackageName.parse(package))
        found = self.hooks.find(owner=actor.name, package=package)
        objects = [npm_hook_json(h) for h in found]
        send_media(resp, {"objects": objects, "total": len(objects), "urls": {}})
        resp.cache_control = ["no-store"]

    def on_post_hook(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = self.guard.hook_manager(req)
        body = read_json_object(req, MAX_HOOK_BODY)
        watches = check_target(body.get("type"), body.get("name"))
        actor = self.guard.hook_manager(req, caller.name, watches)
        hook = self.hooks.add(
            actor,
            owner=actor.name,
            kind=watches[0],
            name=watches[1],
            endpoint=body.get("endpoint"),
            secret=body.get("secret"),
        )
        send_media(resp, npm_hook_json(hook), falcon.HTTP_201)
        resp.cache_control = ["no-store"]

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        self.guard.require(req, Action.HOOK)
        hook = self.hooks.get(hook_id)
        self.guard.hook_manager(req, hook.owner)
        send_media(resp, npm_hook_json(hook))
        resp.cache_control = ["no-store"]

    def on_put_item(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        self.guard.require(req, Action.HOOK)
        hook = self.hooks.get(hook_id)
        actor = self.guard.hook_manager(req, hook.owner)
        body = read_json_object(req, MAX_HOOK_BODY)
        changed = self.hooks.update(
            actor, hook.id, endpoint=body.get("endpoint"), secret=body.get("secret")
        )
        send_media(resp, npm_hook_json(changed))

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        self.guard.require(req, Action.HOOK)
        hook = self.hooks.get(hook_id)
        actor = self.guard.hook_manager(req, hook.owner)
        gone = self.hooks.remove(actor, hook.id)
        out = npm_hook_json(gone)
        out["deleted"] = True
        send_media(resp, out)


class AdminHooks:
    """``/_api/hooks``: every hook, the queue, the delivery log, a test ping (admin)."""

    def __init__(self, hooks: Hooks, guard: Guard) -> None:
        self.hooks = hooks
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        owner = req.get_param("owner")
        objects = [hook_json(h) for h in self.hooks.find(owner=owner)]
        send_media(resp, {"objects": objects, "total": len(objects), "queue": self.hooks.queue()})
        resp.cache_control = ["no-store"]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        body = read_json_object(req, MAX_HOOK_BODY)
        watches = check_target(body.get("type"), body.get("name"))
        owner = body.get("owner")
        if owner is not None and (not isinstance(owner, str) or not owner.strip()):
            raise BadRequest("owner must be a user or key name")
        actor = self.guard.hook_manager(req, owner, watches)
        hook = self.hooks.add(
            actor,
            owner=owner or actor.name,
            kind=watches[0],
            name=watches[1],
            endpoint=body.get("endpoint"),
            secret=body.get("secret"),
        )
        send_media(resp, hook_json(hook), falcon.HTTP_201)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, hook_json(self.hooks.get(hook_id)))
        resp.cache_control = ["no-store"]

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        self.hooks.remove(actor, hook_id)
        send_media(resp, {"ok": True})

    def on_get_deliveries(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        self.guard.require(req, Action.ADMIN)
        limit = _limit(req)
        out: dict[str, Any] = {
            "hook": hook_json(self.hooks.get(hook_id)),
            "deliveries": [delivery_json(d) for d in self.hooks.deliveries(hook_id, limit=limit)],
            "attempts": [attempt_json(a) for a in self.hooks.attempts(hook_id, limit=limit)],
        }
        send_media(resp, out)
        resp.cache_control = ["no-store"]

    def on_post_ping(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        delivery = self.hooks.ping(actor, hook_id)
        send_media(resp, {"ok": True, "delivery": delivery}, falcon.HTTP_202)


def add_routes(
    app: falcon.App[falcon.Request, falcon.Response], hooks: Hooks, guard: Guard
) -> None:
    """The routes above."""
    npm = NpmHooks(hooks, guard)
    app.add_route("/-/npm/v1/hooks", npm)
    app.add_route("/-/npm/v1/hooks/hook", npm, suffix="hook")
    app.add_route("/-/npm/v1/hooks/hook/{hook_id}", npm, suffix="item")
    admin = AdminHooks(hooks, guard)
    app.add_route("/_api/hooks", admin)
    app.add_route("/_api/hooks/{hook_id}", admin, suffix="item")
    app.add_route("/_api/hooks/{hook_id}/deliveries", admin, suffix="deliveries")
    app.add_route("/_api/hooks/{hook_id}/ping", admin, suffix="ping")
