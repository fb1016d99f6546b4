"""Who is calling and whether they may: the app's side of r13core/access.py.

The security middleware (app/security_middleware.py) parses the Authorization header and
authenticates the key once per request; :meth:`Guard.require` hands the
identity, the action, the package, the client address and (when the policy says
ownership decides) the package's maintainers to r13core's :class:`Policy` — the
one place that knows the rules. :meth:`Guard.acting` also
names who acts, as the :class:`r13core.audit.Actor` that r13core's operations audit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import falcon

from app.http import bearer_token
from r13core.access import DEFAULT_POLICY, Action, Policy
from r13core.audit import Actor
from r13core.config import Config13, Feature
from r13core.errors import NotFound, Unauthorized
from r13core.keys import KeyInfo
from r13core.names import PackageName


class Authenticator(Protocol):
    """What the guard needs from r13core's KeyStore."""

    def authenticate(self, secret: str, *, version: object = None) -> KeyInfo: ...


_UNSET = object()


def client_actor(req: falcon.Request, name: str) -> Actor:
    """``name`` acting from this request's client address (as the audit log records it)."""
    return Actor(name, getattr(req.context, "client_ip", "") or "")


class Guard:
    """Authenticates a request's key on demand and asks r13core whether it may act."""

    def __init__(
        self,
        keys: Authenticator,
        config: Callable[[], Config13],
        *,
        policy: Policy = DEFAULT_POLICY,
        owners: Callable[[PackageName], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._keys = keys
        self._config = config
        self._policy = policy
        self._owners = owners

    def identity(self, req: falcon.Request) -> KeyInfo | None:
        """The key behind the request, None without one; Unauthorized for a bad one."""
        ctx = req.context
        error = getattr(ctx, "auth_error", None)
        if error is not None:
            raise error
        cached: Any = getattr(ctx, "identity", _UNSET)
        if cached is not _UNSET:
            return cached  # type: ignore[no-any-return]
        token: str | None = getattr(ctx, "token", None)
        if token is None:
            token = bearer_token(req)
        identity = None if token is None else self.authenticate(token)
        ctx.identity = identity
        return identity

    def authenticate(self, token: str, *, version: object = None) -> KeyInfo:
        """The key behind ``token``; Unauthorized (one message for every cause) otherwise."""
        if not token:
            raise Unauthorized("invalid, revoked or expired key")
        return self._keys.authenticate(token, version=version)

    def require(
        self, req: falcon.Request, action: Action, package: PackageName | None = None
    ) -> KeyInfo | None:
        """The caller's key if it may do ``action`` (on ``package``); else 401 or 403."""
        identity = self.identity(req)
        private = self._config().has(Feature.PRIVATE_REGISTRY)
        name = None if package is None else str(package)
        client_ip = getattr(req.context, "client_ip", None)
        policy = self._policy
        policy.authorize(identity, action, private=private, package=name, client_ip=client_ip)
        if name is not None and self._owners is not None and policy.owner_decides(identity, action):
            try:
                owners = [str(m.get("name", "")) for m in self._owners(package)]  # type: ignore[arg-type]
            except NotFound:
                # A new package: whoever may publish starts it. This early answer is a
                # fast path; the registry decides again at commit (owner_check).
                return identity
            policy.check_owner(identity, action, name, owners)
        return identity

    def owner_check(
        self, req: falcon.Request, action: Action, package: PackageName
    ) -> Callable[[list[str]], None]:
        """The ownership decision for ``action`` on ``package``, for r13core to make later.

        :meth:`require` decides early, before the body is read, against the package
        as it is then ("absent: anyone who may publish starts it"). The registry
        calls the returned check again inside its write transaction, with the
        maintainers the package has at commit time, so a package someone else
        created while this request's body was still arriving is not changed
        (Forbidden). An admin passes; so does a package's maintainer.
        """
        identity = self.identity(req)
        name = str(package)

        def check(owners: list[str]) -> None:
            if identity is None:  # require() let no anonymous write through
                raise Unauthorized()
            self._policy.check_owner(identity, action, name, owners)

        return check

    def allows(
        self, req: falcon.Request, action: Action, package: PackageName | None = None
    ) -> bool:
        """:meth:`require` as a yes/no (ownership aside): for choices, not for refusals."""
        identity = self.identity(req)
        return self._policy.allows(
            identity,
            action,
            private=self._config().has(Feature.PRIVATE_REGISTRY),
            package=None if package is None else str(package),
            client_ip=getattr(req.context, "client_ip", None),
        )

    def may(
        self,
        identity: KeyInfo | None,
        action: Action,
        package: str,
        client_ip: str,
        *,
        private: bool,
    ) -> bool:
        """Whether ``identity`` may do ``action`` on ``package`` with no refusal to explain
        and no maintainers to look up: the hot reads' question (app/hot_reads.py). False
        sends the request the long way, where :meth:`require` says why not."""
        policy = self._policy
        return not policy.owner_decides(identity, action) and policy.allows(
            identity, action, private=private, package=package, client_ip=client_ip
        )

    def reader(self, req: falcon.Request) -> Callable[[str], bool]:
        """``package -> bool``: what this request may read, decided as a GET of it would be.

        For listings (search, audits): a package the caller could not GET is left
        out, as if it did not exist.
        """
        return self._policy.reader(
            self.identity(req),
            private=self._config().has(Feature.PRIVATE_REGISTRY),
            client_ip=getattr(req.context, "client_ip", None),
        )

    def hook_manager(
        self, req: falcon.Request, owner: str | None = None, watches: tuple[str, str] | None = None
    ) -> Actor:
        """Who manages a webhook of ``owner`` (default: the caller's own), if r13core's
        policy lets them (:meth:`Policy.check_hook`: their own hooks, an admin's all)."""
        identity = self.require(req, Action.HOOK)
        if identity is None:  # authorize() lets no anonymous write through
            raise Unauthorized()
        self._policy.check_hook(
            identity,
            owner=identity.username if owner is None else owner,
            watches=watches,
            private=self._config().has(Feature.PRIVATE_REGISTRY),
            client_ip=getattr(req.context, "client_ip", None),
        )
        return client_actor(req, identity.username)

    def actor(self, req: falcon.Request, action: Action, package: PackageName | None = None) -> str:
        """Like :meth:`require` for a write: who acts (the key's owner, else ``key:<id>``)."""
        return self.acting(req, action, package).name

    def acting(
        self, req: falcon.Request, action: Action, package: PackageName | None = None
    ) -> Actor:
        """Like :meth:`require` for a change: who acts, from where, for r13core's audit."""
        identity = self.require(req, action, package)
        if identity is None:  # authorize() lets no anonymous write through
            raise Unauthorized()
        return client_actor(req, identity.username)
