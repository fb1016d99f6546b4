"""``/_api/users``: list, add, change role, reset password, remove (admin).

Each change is one audited call into r13core/identity.py (``user.add``,
``user.role``, ``user.passwd``, ``user.remove``), the same as ``r13 users``.

Routes::

    GET    /_api/users                        {"users": [{name, role, email, created}]}
    POST   /_api/users                        {name, password, role, email?} -> 201 the user
    PATCH  /_api/users/{name}                 {role} -> the user, the revoked token ids
    POST   /_api/users/{name}/password        {password?} -> without one, a generated
                                              password, shown once in the answer
    DELETE /_api/users/{name}                 the user's keys are revoked, its name reserved
"""

from __future__ import annotations

from typing import Final

import falcon

from app.auth import Guard
from app.http import read_json_object, send_media
from r13core.access import Action
from r13core.errors import BadRequest
from r13core.identity import Identity
from r13core.users import Role

MAX_BODY: Final = 16 * 1024


class Users:
    """The routes above (``suffix``: ``item``, ``password``)."""

    def __init__(self, identity: Identity, guard: Guard) -> None:
        self.identity = identity
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, {"users": [u.as_dict() for u in self.identity.users.list()]})
        resp.cache_control = ["no-store"]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        body = read_json_object(req, MAX_BODY)
        email = body.get("email", "")
        if not isinstance(email, str):
            raise BadRequest("email must be a string")
        user = self.identity.add_user(
            actor,
            _text(body, "name"),
            _text(body, "password"),
            Role.parse(_text(body, "role")),
            email,
        )
        send_media(resp, user.as_dict(), falcon.HTTP_201)
        resp.cache_control = ["no-store"]

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, self.identity.users.get(name).as_dict())
        resp.cache_control = ["no-store"]

    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        body = read_json_object(req, MAX_BODY)
        user, revoked = self.identity.set_role(actor, name, Role.parse(_text(body, "role")))
        send_media(resp, {**user.as_dict(), "revoked": revoked})
        resp.cache_control = ["no-store"]

    def on_post_password(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        actor = self.guard.acting(req, Action.ADMIN)
        body = read_json_object(req, MAX_BODY) if req.content_length else {}
        if body.get("password") is None:
            password, revoked = self.identity.reset_password(actor, name)
            send_media(resp, {"name": name, "password": password, "revoked": revoked})
        else:
            revoked = self.identity.set_password(actor, name, _text(body, "password"))
            send_media(resp, {"name": name, "revoked": revoked})
        resp.cache_control = ["no-store"]

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.identity.remove_user(self.guard.acting(req, Action.ADMIN), name)
        send_media(resp, {"ok": True, "removed": name})


def _text(body: dict[str, object], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field} is required (a string)")
    return value
