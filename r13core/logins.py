"""npm's login flows, each audited: legacy login (and adduser), web login, with its approval.

Both flows end in :meth:`r13core.identity.Identity.issue_login_token`: a key owned by
the user, with the user's role as its ceiling, living SECURITY_API_KEY_EXPIRY. The
HTTP side (app/resources/login.py) parses requests, shows the sign-in page and
counts failures as strikes; the decisions and the audit events are here:

=========================  ================  ==========================
step                       action            detail
=========================  ================  ==========================
legacy login / web collect login             method (legacy, web)
adduser (open signup)      user.signup       role (then ``login``)
wrong password             login.failed      method (legacy, web)
web login approved         login.approve
=========================  ================  ==========================

Web login: :meth:`Logins.start_web` makes a login with two secrets in its URLs: the
login id (the page a person opens) and the done secret (what npm polls with, kept only
as a hash). The person approves with name and password (:meth:`Logins.approve_web`);
the token is made when npm collects it (:meth:`Logins.collect_web`), once: an approval
nobody collects expires with the login (WEB_LOGIN_SECONDS) and leaves no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from r13core.audit import Actor
from r13core.errors import NotFound, Unauthorized
from r13core.identity import Identity
from r13core.storage.base import Storage, WebLoginRecord
from r13core.users import Role, User, check_name

WEB_LOGIN_SECONDS: Final = 600
_BAD_LOGIN: Final = "wrong user name or password"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class WebLoginStart:
    """A new web login: its id (the page's) and the secret npm polls with."""

    login_id: str
    done_secret: str


class Logins:
    """The login flows over ``identity`` and ``storage``'s pending web logins.

    ``open_signup``: a legacy login of an unknown name creates that user with
    ``signup_role`` (R13_OPEN_SIGNUP, R13_SIGNUP_ROLE).
    """

    def __init__(
        self,
        identity: Identity,
        storage: Storage,
        *,
        open_signup: bool = False,
        signup_role: Role = Role.READER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._storage = storage
        self.open_signup = open_signup
        self.signup_role = signup_role
        self._clock = clock

    def _failed(self, name: str, address: str, how: str) -> None:
        self.identity.audit.safe_record_by(Actor(name, address), "login.failed", name, method=how)

    def legacy(self, name: str, password: str, address: str, *, email: str = "") -> str:
        """``PUT /-/user/org.couchdb.user:<name>``: the token of a new login of ``name``.

        With open signup, an unknown name becomes a user first. Unauthorized (one
        message, the same time) for a wrong password or an unknown name without
        signup; InvalidValue or NameTaken for a signup that cannot be.
        """
        users = self.identity.users
        try:
            if users.exists(name):
                user = users.authenticate(name, password)
            elif self.open_signup:
                user = users.add(check_name(name), password, self.signup_role, email)
                self.identity.audit.safe_record_by(
                    Actor(name, address), "user.signup", name, role=user.role.value
                )
            else:
                users.authenticate(name, password)  # same time and answer as a wrong password
                raise Unauthorized(_BAD_LOGIN)
        except Unauthorized:
            self._failed(name, address, "legacy")
            raise
        return self.identity.issue_login_token(user, "legacy", address)

    # -- web login ---------------------------------------------------------------------

    def start_web(self) -> WebLoginStart:
        """A new web login, pending for WEB_LOGIN_SECONDS."""
        login_id = secrets.token_urlsafe(18)
        done = secrets.token_urlsafe(32)
        now = self._clock()
        self._storage.add_web_login(
            WebLoginRecord(login_id, _digest(done), now, now + WEB_LOGIN_SECONDS)
        )
        return WebLoginStart(login_id, done)

    def _pending(self, login_id: str) -> WebLoginRecord:
        record = self._storage.get_web_login(login_id)
        if record is None or record.expires <= self._clock():
            raise NotFound("no such login, or it has expired; run npm login again")
        return record

    def awaiting_approval(self, login_id: str) -> None:
        """Return if login ``login_id`` waits for a person to sign in; NotFound otherwise."""
        if self._pending(login_id).username is not None:
            raise NotFound("this login is already approved")

    def approve_web(self, login_id: str, username: str, password: str, address: str) -> User:
        """The person signed in on the login's page: the user; npm may now collect a token.

        Unauthorized for a wrong name or password (audited); NotFound when the login
        is gone or was approved meanwhile.
        """
        self.awaiting_approval(login_id)
        try:
            user = self.identity.users.authenticate(username, password)
        except Unauthorized:
            self._failed(username, address, "web")
            raise
        if not self._storage.approve_web_login(login_id, user.name):
            raise NotFound("this login is already approved")
        self.identity.audit.safe_record_by(Actor(user.name, address), "login.approve", login_id)
        return user

    def collect_web(self, login_id: str, done_secret: str, address: str) -> tuple[str, str] | None:
        """npm polling the doneUrl: ``(user name, token)`` once approved, None until then.

        NotFound for a wrong secret, an expired login, or a token already collected.
        """
        record = self._pending(login_id)
        if not hmac.compare_digest(_digest(done_secret), record.done_hash):
            raise NotFound("no such login")
        if record.username is None:
            return None
        taken = self._storage.take_web_login(login_id, self._clock())
        if taken is None or taken.username is None:
            raise NotFound("this login's token was already collected, or the login expired")
        # The token exists from here on only: an approval never collected leaves none.
        user = self.identity.users.get(taken.username)
        return user.name, self.identity.issue_login_token(user, "web", address)
