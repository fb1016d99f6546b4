"""npm's login flows: legacy (``PUT /-/user/org.couchdb.user:<name>``), web, logout, whoami.

Both flows end in the same place: a key owned by the user, with the user's role as
its ceiling and the default expiry (SECURITY_API_KEY_EXPIRY).

Web login (npm's default): ``POST /-/v1/login`` answers ``{loginUrl, doneUrl}``; the
user opens loginUrl, a plain HTML form on r13, and signs in with name and password;
npm polls doneUrl (202 + Retry-After) until it gets ``{token}``, which is handed
out once. The doneUrl carries a secret of its own, so knowing the loginUrl is
not enough to collect the token. The token is made when npm collects it, not
when the user approves: an approval nobody collects expires with the login
(WEB_LOGIN_SECONDS) and leaves no token anywhere.

Logout (``DELETE /-/user/token/<token>``) puts the token in the URL: logs keep
that path redacted (app/http.py ``redact_path``), and the security middleware
never refuses a logout of a live token (app/security_middleware.py).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qs

import falcon

from app.http import read_body, read_json_object, send_media
from app.security_middleware import SecurityServices
from r13core.errors import BadRequest, NotFound, Unauthorized
from r13core.keys import capped_days
from r13core.storage.base import WebLoginRecord
from r13core.users import User, check_name

WEB_LOGIN_SECONDS: Final = 600
MAX_LOGIN_BODY: Final = 64 * 1024


class TokenIssuer:
    """Makes the key a login hands to npm: owned by the user, capped by its role."""

    def __init__(self, services: SecurityServices, default_expiry_ms: int) -> None:
        self.services = services
        self.default_days = default_expiry_ms / 86_400_000 if default_expiry_ms else None

    def issue(self, user: User, how: str, ip: str) -> str:
        """A new token for ``user``; the login is audited."""
        info, secret = self.services.keys.create_token(
            user.name,
            user.role.ceiling,
            capped_days(None, self.default_days),
            description=f"npm login ({how})",
        )
        self.services.audit.safe_record(user.name, "login", info.id, ip=ip, method=how)
        return secret


class CouchUser:
    """``PUT /-/user/org.couchdb.user:{name}``: legacy login, and adduser when signup is open."""

    def __init__(
        self,
        services: SecurityServices,
        issuer: TokenIssuer,
        on_failure: Callable[[str], None],
    ) -> None:
        self.services = services
        self.issuer = issuer
        self.on_failure = on_failure

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        body = read_json_object(req, MAX_LOGIN_BODY)
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise BadRequest("a password is required")
        if body.get("name", name) != name:
            raise BadRequest("the name in the body differs from the URL")
        ip = req.context.client_ip
        users = self.services.users
        try:
            if users.exists(name):
                user = users.authenticate(name, password)
            elif self.services.settings.open_signup:
                email = body.get("email")
                email = email if isinstance(email, str) else ""
                user = users.add(
                    check_name(name), password, self.services.settings.signup_role, email
                )
                self.services.audit.safe_record(
                    name, "user.signup", name, ip=ip, role=user.role.value
                )
            else:
                users.authenticate(name, password)  # same time and answer as a wrong password
                raise Unauthorized("wrong user name or password")
        except Unauthorized:
            self.on_failure(ip)
            self.services.audit.safe_record(name, "login.failed", name, ip=ip, method="legacy")
            raise
        token = self.issuer.issue(user, "legacy", ip)
        send_media(
            resp,
            {"ok": True, "id": f"org.couchdb.user:{name}", "rev": "1-0", "token": token},
            falcon.HTTP_201,
        )
        resp.cache_control = ["no-store"]

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        raise NotFound(f"no user document {name!r}")


class Logout:
    """``DELETE /-/user/token/{token}``: revoke that token at once (npm logout, yarn).

    200 whatever the token was (npm ignores the answer; a 404 would tell a prober
    which strings are live tokens).
    """

    def __init__(self, services: SecurityServices) -> None:
        self.services = services

    def on_delete(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        info = self.services.keys.revoke_secret(token)
        if info is not None:
            self.services.audit.safe_record(
                info.username, "logout", info.id, ip=req.context.client_ip
            )
        send_media(resp, {"ok": True})


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>r13 — npm login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1rem}}.msg{{color:#a00}}</style></head>
<body><h1>Sign in to r13</h1><p>npm is waiting for you to approve a login.</p>
{message}<form method="post" action="{action}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>
"""
_DONE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>r13 — signed in</title></head>
<body><h1>Signed in as {username}</h1><p>You can close this page; npm has its token.</p>
</body></html>
"""


class WebLogin:
    """``POST /-/v1/login``, ``GET|POST /-/v1/login/{id}``, ``GET /-/v1/done/{id}``."""

    def __init__(
        self,
        services: SecurityServices,
        issuer: TokenIssuer,
        public_url: str,
        on_failure: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = services
        self.issuer = issuer
        self.public_url = public_url.rstrip("/")
        self.on_failure = on_failure
        self.clock = clock

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        read_body(req, MAX_LOGIN_BODY)  # {} or {"create": true}; nothing in it matters
        login_id = secrets.token_urlsafe(18)
        done = secrets.token_urlsafe(32)
        now = self.clock()
        self.services.storage.add_web_login(
            WebLoginRecord(login_id, _digest(done), now, now + WEB_LOGIN_SECONDS)
        )
        send_media(
            resp,
            {
                "loginUrl": f"{self.public_url}/-/v1/login/{login_id}",
                "doneUrl": f"{self.public_url}/-/v1/done/{login_id}?secret={done}",
            },
        )
        resp.cache_control = ["no-store"]

    def _pending(self, login_id: str) -> WebLoginRecord:
        record = self.services.storage.get_web_login(login_id)
        if record is None or record.expires <= self.clock():
            raise NotFound("no such login, or it has expired; run npm login again")
        return record

    def _page(
        self, resp: falcon.Response, login_id: str, *, message: str = "", username: str = ""
    ) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-store"]
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        resp.text = _PAGE.format(
            action=html.escape(f"/-/v1/login/{login_id}", quote=True),
            username=html.escape(username, quote=True),
            message=f'<p class="msg">{html.escape(message)}</p>' if message else "",
        )

    def on_get_page(self, req: falcon.Request, resp: falcon.Response, login_id: str) -> None:
        record = self._pending(login_id)
        if record.username is not None:
            raise NotFound("this login is already approved")
        self._page(resp, login_id)

    def on_post_page(self, req: falcon.Request, resp: falcon.Response, login_id: str) -> None:
        record = self._pending(login_id)
        if record.username is not None:
            raise NotFound("this login is already approved")
        form = parse_qs(read_body(req, MAX_LOGIN_BODY).decode("utf-8", "replace"))
        username = (form.get("username") or [""])[0].strip()
        password = (form.get("password") or [""])[0]
        ip = req.context.client_ip
        try:
            user = self.services.users.authenticate(username, password)
        except Unauthorized:
            self.on_failure(ip)
            self.services.audit.safe_record(username, "login.failed", username, ip=ip, method="web")
            self._page(resp, login_id, message="Wrong user name or password.", username=username)
            resp.status = falcon.HTTP_401
            return
        if not self.services.storage.approve_web_login(login_id, user.name):
            raise NotFound("this login is already approved")
        self.services.audit.safe_record(user.name, "login.approve", login_id, ip=ip)
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-store"]
        resp.text = _DONE.format(username=html.escape(user.name))

    def on_get_done(self, req: falcon.Request, resp: falcon.Response, login_id: str) -> None:
        secret = req.get_param("secret") or ""
        record = self._pending(login_id)
        if not hmac.compare_digest(_digest(secret), record.done_hash):
            raise NotFound("no such login")
        resp.cache_control = ["no-store"]
        if record.username is None:
            resp.set_header("Retry-After", "1")
            send_media(resp, {}, falcon.HTTP_202)
            return
        taken = self.services.storage.take_web_login(login_id, self.clock())
        if taken is None or taken.username is None:
            raise NotFound("this login's token was already collected, or the login expired")
        # The token exists from here on only: an approval never collected leaves none.
        user = self.services.users.get(taken.username)
        token = self.issuer.issue(user, "web", req.context.client_ip)
        send_media(resp, {"token": token, "username": user.name})
