"""``/-/package/:pkg/dist-tags[/:tag]``, ``/-/package/:pkg/owners`` and ``.../collaborators``.

A sink, like the package routes, because ``:pkg`` may hold an escaped slash.

Owners: pnpm 12.0-12.14 list them with ``GET /-/package/:pkg/owners`` and
parse ``[{username, email}]`` (both strings, required); later pnpm 12 and
npm read the packument's ``maintainers`` (``[{name, email}]``). The owners
route answers ``[{username, name, email}]``, which both shapes accept.
``collaborators`` answers as the npm registry does: ``{name: "read-write"}``.
"""

from __future__ import annotations

from typing import Any, Final

import falcon

from app.auth import Guard
from app.http import (
    decode_segment,
    raw_path,
    read_json,
    refuse_large_body,
    segments,
    send_media,
    split_package,
)
from app.service import RegistryService
from r13core.access import Action
from r13core.errors import BadRequest, InvalidValue
from r13core.names import PackageName

PREFIX = "/-/package/"
# How the monitor counts these requests: names from this fixed set only.
ROUTES: Final = frozenset(
    PREFIX + "{package}/" + rest for rest in ("dist-tags", "dist-tags/{tag}", "owners", "*")
)


def route_template(rest: list[str]) -> str:
    """The route a ``/-/package/...`` URL stands for (never a raw segment of it)."""
    if rest in (["dist-tags"], ["owners"]):
        return PREFIX + "{package}/" + rest[0]
    if len(rest) == 2 and rest[0] == "dist-tags":
        return PREFIX + "{package}/dist-tags/{tag}"
    return PREFIX + "{package}/*"


def _tag(raw: str) -> str:
    tag = decode_segment(raw)
    if not tag or len(tag) > 256 or any(c in tag for c in "/\\ \t\r\n"):
        raise InvalidValue(f"{tag!r} is not a dist-tag")
    return tag


def _owner(maintainer: dict[str, Any]) -> dict[str, str]:
    name = str(maintainer.get("name", ""))
    email = maintainer.get("email")
    return {"username": name, "name": name, "email": email if isinstance(email, str) else ""}


class PackageMeta:
    """The sink for ``/-/package/...``."""

    def __init__(self, registry: RegistryService, guard: Guard, *, max_body: int) -> None:
        self.registry = registry
        self.guard = guard
        self.max_body = max_body

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        parsed = split_package(segments(raw_path(req), PREFIX))
        if parsed is None:
            raise falcon.HTTPNotFound(description="no such route")
        name = PackageName.from_url(parsed[0])
        rest = parsed[1]
        req.context.route = route_template(rest)
        method = "GET" if req.method == "HEAD" else req.method
        if rest == ["owners"] and method == "GET":
            self.guard.require(req, Action.READ, name)
            send_media(resp, [_owner(m) for m in self.registry.owners(name)])
        elif rest == ["collaborators"] and method == "GET":
            self.guard.require(req, Action.READ, name)
            owners = self.registry.owners(name)
            send_media(resp, {_owner(m)["username"]: "read-write" for m in owners})
        elif rest == ["dist-tags"] and method == "GET":
            self.guard.require(req, Action.READ, name)
            send_media(resp, self.registry.dist_tags(name))
            resp.cache_control = ["no-cache"]
        elif len(rest) == 2 and rest[0] == "dist-tags" and method in ("PUT", "POST"):
            actor = self.guard.acting(req, Action.DIST_TAG, name)
            check_owner = self.guard.owner_check(req, Action.DIST_TAG, name)
            version = read_json(req, self.max_body)
            if not isinstance(version, str):
                raise BadRequest("the body must be a JSON string: the version to tag")
            self.registry.set_dist_tag(
                name, _tag(rest[1]), version, actor=actor, check_owner=check_owner
            )
            send_media(resp, {"ok": True}, falcon.HTTP_201)
        elif len(rest) == 2 and rest[0] == "dist-tags" and method == "DELETE":
            actor = self.guard.acting(req, Action.DIST_TAG, name)
            check_owner = self.guard.owner_check(req, Action.DIST_TAG, name)
            refuse_large_body(req, self.max_body)
            self.registry.remove_dist_tag(name, _tag(rest[1]), actor=actor, check_owner=check_owner)
            send_media(resp, {"ok": True})
        elif rest in (["owners"], ["collaborators"], ["dist-tags"]) or (
            len(rest) == 2 and rest[0] == "dist-tags"
        ):
            raise falcon.HTTPMethodNotAllowed(["GET", "PUT", "DELETE"])
        else:
            raise falcon.HTTPNotFound(description="no such route")
