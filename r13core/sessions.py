"""The dashboard's sessions: an admin signs in once, the browser holds a cookie.

A session is a key of the identity storage (r13core/keys.py) with an id
``session-<8 hex>``, admin permission and a short life (:data:`SESSION_HOURS`): stored
server-side as every key is (only the secret's hash), checked by the same
authenticator on every request and every worker, listed and revocable like any key,
revoked with its owner (a password change, a role change, the user's removal). Its
secret travels only in the HttpOnly cookie (app/resources/session.py). Its
description names the principal it was opened for — ``user:<name>`` or
``key:<id>`` — so that logging out ends every session of that principal, and revoking
a key ends the sessions opened with it (r13core/identity.py ``revoke_key``).

The CSRF token is derived from the session's secret (:func:`csrf_token`): a page on
another site can neither read the cookie nor the token, and the server recomputes it
from the cookie without storing anything more.

Each operation audits itself: ``session.login`` (method password or key),
``session.login.failed``, ``session.logout`` (the ids ended).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from r13core.access import is_admin
from r13core.audit import Actor
from r13core.errors import Forbidden, NameTaken, Unauthorized
from r13core.identity import SESSION_OF, Identity
from r13core.keys import KeyInfo, Permission, new_key_id
from r13core.users import Role

SESSION_HOURS: Final = 12
SESSION_PREFIX: Final = "session-"
_CSRF_CONTEXT: Final = b"r13 dashboard csrf v1\0"
_NOT_ADMIN: Final = "the dashboard is for admins: this user or key does not administer"


def csrf_token(secret: str) -> str:
    """The CSRF token bound to the session ``secret`` (hex, 32 characters)."""
    return hashlib.sha256(_CSRF_CONTEXT + secret.encode()).hexdigest()[:32]


def csrf_matches(secret: str, token: str | None) -> bool:
    """Whether ``token`` is the CSRF token of ``secret`` (constant time)."""
    return token is not None and hmac.compare_digest(csrf_token(secret), token)


def is_session(info: KeyInfo) -> bool:
    """Whether ``info`` is a dashboard session (not a key someone made)."""
    return info.id.startswith(SESSION_PREFIX) and info.description.startswith(SESSION_OF)


def principal_of(info: KeyInfo) -> str:
    """``user:<name>`` or ``key:<id>``: who a session was opened for (or who a key is)."""
    if is_session(info):
        return info.description[len(SESSION_OF) :]
    return f"user:{info.owner}" if info.owner is not None else f"key:{info.id}"


@dataclass(frozen=True, slots=True)
class Session:
    """A session as its holder sees it; ``secret`` goes into the cookie only."""

    info: KeyInfo
    secret: str
    principal: str

    def as_dict(self) -> dict[str, object]:
        """The login's answer (never the secret)."""
        expires = self.info.expires
        return {
            "signed_in": True,
            "username": self.principal.partition(":")[2],
            "principal": self.principal,
            "session": self.info.id,
            "expires": None if expires is None else expires.isoformat(),
            "csrf": csrf_token(self.secret),
        }


class Sessions:
    """Sign-in, sign-out and the CSRF check of the dashboard, over ``identity``."""

    def __init__(self, identity: Identity, *, hours: float = SESSION_HOURS) -> None:
        self.identity = identity
        self.hours = hours

    def _open(
        self, principal: str, owner: str | None, actor: Actor, method: str, like: KeyInfo | None
    ) -> Session:
        keys = self.identity.keys
        for _ in range(8):
            try:
                info, secret = keys.create(
                    new_key_id("session"),
                    Permission.ADMIN,
                    self.hours / 24,
                    owner=owner,
                    # A session opened with a key is bound where that key is.
                    cidr=() if like is None else [str(n) for n in like.cidr],
                    rate_limit=None if like is None else like.rate_limit,
                    description=SESSION_OF + principal,
                )
                break
            except NameTaken:
                continue
        else:
            raise NameTaken("could not find a free session id")
        self.identity.audit.safe_record_by(actor, "session.login", info.id, method=method)
        return Session(info, secret, principal)

    def _failed(self, actor: Actor, method: str) -> None:
        self.identity.audit.safe_record_by(actor, "session.login.failed", method=method)

    def with_password(self, name: str, password: str, address: str) -> Session:
        """A session for admin user ``name``; Unauthorized for a wrong password or an
        unknown name (one message), Forbidden for a user who is not an admin."""
        actor = Actor(str(name), address)
        try:
            user = self.identity.users.authenticate(name, password)
        except Unauthorized:
            self._failed(actor, "password")
            raise
        if user.role is not Role.ADMIN:
            self._failed(actor, "password")
            raise Forbidden(_NOT_ADMIN)
        return self._open(f"user:{user.name}", user.name, actor, "password", None)

    def with_key(self, secret: str, address: str) -> Session:
        """A session for the admin key ``secret`` (a user's admin token: that user's
        session); Unauthorized for a bad key, Forbidden for one that does not administer
        (a session cannot be opened with a session)."""
        try:
            info = self.identity.keys.authenticate(secret)
        except Unauthorized:
            self._failed(Actor("key", address), "key")
            raise
        actor = Actor(info.username, address)
        if not is_admin(info) or is_session(info):
            self._failed(actor, "key")
            raise Forbidden(_NOT_ADMIN)
        principal = principal_of(info)
        return self._open(principal, info.owner, actor, "key", info)

    def logout(self, caller: KeyInfo, address: str) -> list[str]:
        """End every live session of the caller's principal, on every worker; their ids."""
        principal = principal_of(caller)
        ended = self.identity.end_sessions(principal)
        self.identity.audit.safe_record_by(
            Actor(caller.username, address),
            "session.logout",
            principal,
            ended=ended,
        )
        return ended
