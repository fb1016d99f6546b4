"""Who is calling and whether they may: the app's side of r13core/access.py.

The Authorization header is parsed once per request by :class:`AuthMiddleware`;
the key is checked only when a resource asks (:meth:`Guard.require`), and the
decision itself is r13core's ``authorize`` — the one place that knows the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import falcon

from app.http import bearer_token
from r13core.access import Action, authorize
from r13core.config import Config13, Feature
from r13core.errors import Unauthorized
from r13core.keys import KeyInfo


class Authenticator(Protocol):
    """What the guard needs from r13core's KeyStore."""

    def authenticate(self, secret: str) -> KeyInfo: ...


_UNSET = object()


class AuthMiddleware:
    """Puts the request's key (or None) in ``req.context.token``."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.token = bearer_token(req)
        req.context.identity = _UNSET


class Guard:
    """Authenticates a request's key on demand and asks r13core whether it may act."""

    def __init__(self, keys: Authenticator, config: Callable[[], Config13]) -> None:
        self._keys = keys
        self._config = config

    def identity(self, req: falcon.Request) -> KeyInfo | None:
        """The key behind the request, None without one; Unauthorized for a bad one."""
        cached: Any = getattr(req.context, "identity", _UNSET)
        if cached is not _UNSET:
            return cached  # type: ignore[no-any-return]
        token: str | None = getattr(req.context, "token", None)
        if token is None:
            token = bearer_token(req)
        identity = None if token is None else self._authenticate(token)
        req.context.identity = identity
        return identity

    def _authenticate(self, token: str) -> KeyInfo:
        if not token:
            raise Unauthorized("malformed Authorization header")
        return self._keys.authenticate(token)

    def require(self, req: falcon.Request, action: Action) -> KeyInfo | None:
        """The caller's key if it may do ``action``; else Unauthorized or Forbidden."""
        identity = self.identity(req)
        private = self._config().has(Feature.PRIVATE_REGISTRY)
        authorize(identity, action, private=private)
        return identity

    def actor(self, req: falcon.Request, action: Action) -> str:
        """Like :meth:`require` for a write: the acting key's id (a write always has one)."""
        identity = self.require(req, action)
        if identity is None:  # authorize() lets no anonymous write through
            raise Unauthorized()
        return identity.id
