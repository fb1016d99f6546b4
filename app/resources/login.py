"""npm's login flows: legacy (``PUT /-/user/org.couchdb.user:<name>``), web, logout.

The flows themselves — who may log in, signup, the web login's secrets, the token
and every audit event — are r13core/logins.py; logout is r13core/identity.py. This
side parses requests, shows the sign-in page and counts a wrong password as an
authentication failure (a strike: app/security_middleware.py).

Web login (npm's default): ``POST /-/v1/login`` answers ``{loginUrl, doneUrl}``; the
user opens loginUrl, a plain HTML form on r13, and signs in with name and password;
npm polls doneUrl (202 + Retry-After) until it gets ``{token}``, which is handed
out once.

Logout (``DELETE /-/user/token/<token>``) puts the token in the URL: logs keep
that path redacted (app/http.py ``redact_path``), and the security middleware
never refuses a logout of a live token (app/security_middleware.py).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qs

import falcon

from app.http import read_body, read_json_object, send_media
from r13core.errors import BadRequest, NotFound, Unauthorized
from r13core.identity import Identity
from r13core.logins import Logins

MAX_LOGIN_BODY: Final = 64 * 1024


class CouchUser:
    """``PUT /-/user/org.couchdb.user:{name}``: legacy login, and adduser when signup is open."""

    def __init__(self, logins: Logins, on_failure: Callable[[str], None]) -> None:
        self.logins = logins
        self.on_failure = on_failure

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        body = read_json_object(req, MAX_LOGIN_BODY)
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise BadRequest("a password is required")
        if body.get("name", name) != name:
            raise BadRequest("the name in the body differs from the URL")
        ip = req.context.client_ip
        email = body.get("email")
        try:
            token = self.logins.legacy(
                name, password, ip, email=email if isinstance(email, str) else ""
            )
        except Unauthorized:
            self.on_failure(ip)
            raise
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

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    def on_delete(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        self.identity.logout(token, req.context.client_ip)
        send_media(resp, {"ok": True})


# The sign-in page npm's web login opens, in the dashboard's look: its stylesheet (under
# its digest URL, app/resources/dashboard.py) and its classes; no script, no inline style.
_HEAD: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{stylesheet}"></head>
<body class="signin"><header class="top"><span class="brand">r13</span></header><main>
"""
_PAGE: Final = (
    _HEAD
    + """<form method="post" action="{action}" class="login">
<h1>Sign in to r13</h1><p class="note">npm is waiting for you to approve a login.</p>
<label for="username">User name
<input id="username" name="username" autocomplete="username" required value="{username}">
</label>
<label for="password">Password
<input id="password" name="password" type="password" autocomplete="current-password" required>
</label>
<button type="submit">Sign in and approve</button>
<p class="error" role="alert">{message}</p></form></main></body></html>
"""
)
_DONE: Final = (
    _HEAD
    + """<div class="login" id="approved"><h1>Signed in as {username}</h1>
<p class="note">You can close this page; npm has its token.</p></div></main></body></html>
"""
)
_CSP: Final = (
    "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


class WebLogin:
    """``POST /-/v1/login``, ``GET|POST /-/v1/login/{id}``, ``GET /-/v1/done/{id}``."""

    def __init__(
        self,
        logins: Logins,
        public_url: str,
        on_failure: Callable[[str], None],
        *,
        stylesheet: str = "",
    ) -> None:
        self.logins = logins
        self.stylesheet = stylesheet
        self.public_url = public_url.rstrip("/")
        self.on_failure = on_failure

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        read_body(req, MAX_LOGIN_BODY)  # {} or {"create": true}; nothing in it matters
        start = self.logins.start_web()
        send_media(
            resp,
            {
                "loginUrl": f"{self.public_url}/-/v1/login/{start.login_id}",
                "doneUrl": f"{self.public_url}/-/v1/done/{start.login_id}"
                f"?secret={start.done_secret}",
            },
        )
        resp.cache_control = ["no-store"]

    def _headers(self, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-store"]
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Content-Security-Policy", _CSP)

    def _page(
        self, resp: falcon.Response, login_id: str, *, message: str = "", username: str = ""
    ) -> None:
        self._headers(resp)
        resp.text = _PAGE.format(
            title="r13 — npm login",
            stylesheet=html.escape(self.stylesheet, quote=True),
            action=html.escape(f"/-/v1/login/{login_id}", quote=True),
            username=html.escape(username, quote=True),
            message=html.escape(message),
        )

    def on_get_page(self, req: falcon.Request, resp: falcon.Response, login_id: str) -> None:
        self.logins.awaiting_approval(login_id)
        self._page(resp, login_id)

    def on_post_page(self, req: falcon.Request, resp: falcon.Response, login_id: str) -> None:
        self.logins.awaiting_approval(login_id)
        form = parse_qs(read_body(req, MAX_LOGIN_BODY).decode("utf-8", "replace"))
        username = (form.get("username") or [""])[0].strip()
        password = (form.get("password") or [""])[0]
        ip = req.context.client_ip
        try:
            user = self.logins.approve_web(login_id, username, password, ip)
        except Unauthorized:
            self.on_failure(ip)
            self._page(resp, login_id, message="Wrong user name or password.", username=username)
            resp.status = falcon.HTTP_401
            return
        self._headers(resp)
        resp.text = _DONE.format(
            title="r13 — signed in",
            stylesheet=html.escape(self.stylesheet, quote=True),
            username=html.escape(user.name),
        )

    def on_get_done(self, req: falcon.Request, resp: falcon.Response, login_id: str) -> None:
        done = self.logins.collect_web(
            login_id, req.get_param("secret") or "", req.context.client_ip
        )
        resp.cache_control = ["no-store"]
        if done is None:
            resp.set_header("Retry-After", "1")
            send_media(resp, {}, falcon.HTTP_202)
            return
        username, token = done
        send_media(resp, {"token": token, "username": username})
