"""npm's tokens API: ``GET|POST /-/npm/v1/tokens``, ``DELETE /-/npm/v1/tokens/token/{key}``.

Tokens are keys owned by the user (the role caps them). Creating one needs the
user's password again, as on the public registry. Both body shapes are read:
npm 10 (``password, readonly, cidr_whitelist``) and npm 11 (``name, password,
description, packages, scopes, packages_and_scopes_permission, expires`` in
days, ``cidr_whitelist``); ``cidr`` is accepted as well.

A token lives at most SECURITY_API_KEY_EXPIRY (a longer ``expires`` is cut to it;
the answer's ``expires`` says when it ends). Revoking someone else's token needs
an admin: a key limited to packages never is one.
"""

from __future__ import annotations

from typing import Any, Final

import falcon

from app.auth import Guard
from app.http import read_json_object, send_media
from r13core.access import Action, grants
from r13core.errors import BadRequest, Unauthorized
from r13core.identity import Identity
from r13core.keys import MAX_DAYS, KeyInfo, Permission

MAX_TOKEN_BODY: Final = 64 * 1024


def _iso(info: KeyInfo, field: str) -> Any:
    return info.as_dict()[field]


def token_object(info: KeyInfo) -> dict[str, Any]:
    """One entry of npm's token list (never the secret)."""
    return {
        "key": info.id,
        "token": "r13_…",
        "name": info.description or info.id,
        "readonly": not grants(info, Permission.WRITE),
        "automation": False,
        "cidr_whitelist": [str(n) for n in info.cidr] or None,
        "packages": list(info.packages),
        "created": _iso(info, "created"),
        "updated": _iso(info, "created"),
        "expires": _iso(info, "expires"),
    }


def _strings(body: dict[str, Any], *names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise BadRequest(f"{name} must be a list of strings")
        out.extend(v for v in items if v)
    return out


class Tokens:
    """The tokens routes (``suffix="item"`` for DELETE by key); r13core/identity.py decides."""

    def __init__(self, identity: Identity, guard: Guard) -> None:
        self.identity = identity
        self.guard = guard

    def _caller(self, req: falcon.Request) -> KeyInfo:
        identity = self.guard.require(req, Action.READ)
        if identity is None:
            raise Unauthorized("the tokens API needs a token")
        return identity

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        objects = [token_object(k) for k in self.identity.tokens_of(self._caller(req))]
        send_media(resp, {"objects": objects, "total": len(objects), "urls": {}})
        resp.cache_control = ["no-store"]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        owner = self.identity.token_owner(self._caller(req))
        body = read_json_object(req, MAX_TOKEN_BODY)
        password = body.get("password")
        if not isinstance(password, str):
            raise BadRequest("creating a token needs your password")
        readonly = body.get("readonly") is True or (
            body.get("packages_and_scopes_permission") == "read-only"
        )
        expires = body.get("expires")
        if expires is None:
            requested = None
        elif isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
            requested = min(float(expires), float(MAX_DAYS))
        else:
            raise BadRequest("expires must be a positive number of days")
        cidr = _strings(body, "cidr_whitelist", "cidr")
        packages = _strings(body, "packages")
        packages += [s if "/" in s else f"{s.rstrip('/')}/*" for s in _strings(body, "scopes")]
        label = body.get("name") or body.get("description") or "npm token"
        if not isinstance(label, str):
            raise BadRequest("name must be a string")
        info, secret = self.identity.create_token(
            owner,
            password,
            req.context.client_ip,
            readonly=readonly,
            expires_days=requested,
            cidr=cidr,
            packages=packages,
            label=label,
        )
        out = token_object(info)
        out["token"] = secret
        send_media(resp, out, falcon.HTTP_201)
        resp.cache_control = ["no-store"]

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        self.identity.revoke_token(self._caller(req), key, req.context.client_ip)
        resp.status = falcon.HTTP_204
