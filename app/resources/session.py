"""``/_api/session``: the dashboard's sign-in and sign-out (r13core/sessions.py).

``POST`` with ``{"username", "password"}`` (an admin user) or ``{"key"}`` (an admin
key) opens a session: its secret goes into the ``r13_session`` cookie (HttpOnly,
SameSite=Strict, Secure when r13 is reached over HTTPS, Path=/), never into the body;
the body carries who signed in and the CSRF token the page sends back in
``X-R13-CSRF`` on every state-changing call. ``GET`` answers the same for the current
session (how the page learns it is still signed in after a reload). ``DELETE`` ends
every session of the caller's principal, on every worker, and clears the cookie.

The cookie is turned into the request's key in one place, the security middleware
(app/security_middleware.py ``_session_token``), which also enforces the CSRF token and
the same-origin rule for cookie-authenticated requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import falcon

from app.auth import Guard
from app.http import read_json_object, send_media
from app.security_middleware import SESSION_COOKIE as COOKIE
from r13core.access import Action
from r13core.errors import BadRequest, Unauthorized
from r13core.sessions import Session, Sessions, csrf_token, principal_of

MAX_BODY: Final = 4096


def secure_request(req: falcon.Request, public_url: str) -> bool:
    """Whether the browser reached r13 over HTTPS (directly or, per the public URL,
    through a TLS-terminating proxy): then the cookie is Secure."""
    return req.scheme == "https" or public_url.lower().startswith("https://")


class SessionResource:
    """Sign in, who am I, sign out."""

    def __init__(
        self, sessions: Sessions, guard: Guard, public_url: str, on_failure: Callable[[str], None]
    ) -> None:
        self.sessions = sessions
        self.guard = guard
        self.public_url = public_url
        self.on_failure = on_failure

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_object(req, MAX_BODY)
        ip = req.context.client_ip
        key, name, password = body.get("key"), body.get("username"), body.get("password")
        try:
            if key is not None:
                if not isinstance(key, str) or not key:
                    raise BadRequest("key must be a non-empty string")
                session = self.sessions.with_key(key, ip)
            else:
                if not isinstance(name, str) or not name:
                    raise BadRequest("username (with password) or key is required")
                if not isinstance(password, str) or not password:
                    raise BadRequest("a password is required")
                session = self.sessions.with_password(name, password, ip)
        except Unauthorized:
            self.on_failure(ip)
            raise
        self._set_cookie(req, resp, session)
        send_media(resp, session.as_dict(), falcon.HTTP_201)
        resp.cache_control = ["no-store"]

    def _set_cookie(self, req: falcon.Request, resp: falcon.Response, session: Session) -> None:
        resp.set_cookie(
            COOKIE,
            session.secret,
            max_age=int(self.sessions.hours * 3600),
            path="/",
            secure=secure_request(req, self.public_url),
            http_only=True,
            same_site="Strict",
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.guard.identity(req) is None:
            # Not signed in is an answer, not an error: the page asks on every load.
            send_media(resp, {"signed_in": False})
            resp.cache_control = ["no-store"]
            return
        identity = self.guard.require(req, Action.ADMIN)
        assert identity is not None  # identity() found one
        principal = principal_of(identity)
        secret = str(getattr(req.context, "token", "") or "")
        expires = identity.expires
        send_media(
            resp,
            {
                "signed_in": True,
                "username": principal.partition(":")[2],
                "principal": principal,
                "session": identity.id,
                "expires": None if expires is None else expires.isoformat(),
                # Only a cookie's holder needs one (a bearer key is no ambient credential).
                "csrf": csrf_token(secret) if getattr(req.context, "via_cookie", False) else None,
            },
        )
        resp.cache_control = ["no-store"]

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        identity = self.guard.require(req, Action.ADMIN)
        if identity is None:
            raise Unauthorized()
        ended = self.sessions.logout(identity, req.context.client_ip)
        resp.unset_cookie(COOKIE, path="/", same_site="Strict")
        send_media(resp, {"ok": True, "ended": ended})
        resp.cache_control = ["no-store"]
